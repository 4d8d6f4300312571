//! `/api/v1/ws`: the console's WebSocket hub. A browser subscribes to an
//! event's log; the console checks the caller may see that event's team,
//! then relays the datacenter's stream (history, live lines, "N skipped",
//! closed). Buffers are bounded end to end.

use super::AppState;
use crate::console::Actor;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use datacenter::api::StreamMessage;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::collections::HashMap;
use tokio::sync::mpsc;

const OUTGOING: usize = 512;
const MAX_SUBSCRIPTIONS: usize = 32;

/// Browser → console: follow one event of a team.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Subscribe {
        team: String,
        datacenter: String,
        event: String,
    },
    Unsubscribe {
        datacenter: String,
        event: String,
    },
}

/// Live event logs (WebSocket). Send `{"op":"subscribe","team":…,"datacenter":…,"event":…}`;
/// receive the datacenter's stream messages with channel `<datacenter>/event:<id>`.
#[utoipa::path(get, path = "/api/v1/ws", tag = "apps", responses((status = 101, description = "WebSocket upgrade"), (status = 401, body = crate::error::ErrorBody)))]
pub async fn hub(State(state): State<AppState>, actor: Actor, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(16 * 1024)
        .on_upgrade(move |socket| serve(state, actor, socket))
}

async fn serve(state: AppState, actor: Actor, socket: WebSocket) {
    let (mut sink, mut source) = socket.split();
    let (tx, mut rx) = mpsc::channel::<StreamMessage>(OUTGOING);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let text = serde_json::to_string(&msg).expect("serialises");
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
    });
    let mut subs: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(text) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        subs.retain(|_, t| !t.is_finished());
        match serde_json::from_str::<Request>(&text) {
            Ok(Request::Subscribe {
                team,
                datacenter,
                event,
            }) => {
                let channel = format!("{datacenter}/event:{event}");
                if subs.contains_key(&channel) {
                    continue;
                }
                if subs.len() >= MAX_SUBSCRIPTIONS {
                    let _ = tx
                        .send(StreamMessage::Error {
                            channel,
                            message: format!("at most {MAX_SUBSCRIPTIONS} subscriptions"),
                        })
                        .await;
                    continue;
                }
                // The RBAC check: the event must belong to a team the caller may see.
                if let Err(e) = state
                    .console
                    .team_event(&actor, &team, &datacenter, &event)
                    .await
                {
                    let _ = tx
                        .send(StreamMessage::Error {
                            channel,
                            message: e.public_message(),
                        })
                        .await;
                    continue;
                }
                let client = match state.console.client(&datacenter).await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx
                            .send(StreamMessage::Error {
                                channel,
                                message: e.public_message(),
                            })
                            .await;
                        continue;
                    }
                };
                let tx = tx.clone();
                let relay_channel = channel.clone();
                subs.insert(
                    channel,
                    tokio::spawn(async move {
                        let mut upstream = match client.follow(&format!("event:{event}"), 256).await
                        {
                            Ok(rx) => rx,
                            Err(e) => {
                                let _ = tx
                                    .send(StreamMessage::Error {
                                        channel: relay_channel,
                                        message: e.to_string(),
                                    })
                                    .await;
                                return;
                            }
                        };
                        while let Some(msg) = upstream.recv().await {
                            if tx.send(rename(msg, &relay_channel)).await.is_err() {
                                return;
                            }
                        }
                    }),
                );
            }
            Ok(Request::Unsubscribe { datacenter, event }) => {
                if let Some(t) = subs.remove(&format!("{datacenter}/event:{event}")) {
                    t.abort();
                }
            }
            Err(e) => {
                let _ = tx
                    .send(StreamMessage::Error {
                        channel: String::new(),
                        message: format!("bad request: {e}"),
                    })
                    .await;
            }
        }
    }
    for (_, t) in subs {
        t.abort();
    }
    writer.abort();
}

fn rename(msg: StreamMessage, channel: &str) -> StreamMessage {
    let channel = channel.to_string();
    match msg {
        StreamMessage::Line { line, .. } => StreamMessage::Line { channel, line },
        StreamMessage::Skipped { count, .. } => StreamMessage::Skipped { channel, count },
        StreamMessage::Closed { status, .. } => StreamMessage::Closed { channel, status },
        StreamMessage::Error { message, .. } => StreamMessage::Error { channel, message },
    }
}
