//! `/v1/stream`: one WebSocket per client, multiplexing any number of
//! channels. A subscription first replays the channel's stored history, then
//! follows it live; lines are stitched by sequence number so none is shown
//! twice. Everything on the way is bounded: the hub's ring per channel and
//! one outgoing queue per connection. A client too slow to keep up is told
//! how many lines it missed.

use super::{StreamMessage, StreamRequest};
use crate::logs::hub::HubMessage;
use crate::service::Datacenter;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

/// Messages waiting to be written to one client.
const OUTGOING: usize = 512;
/// Subscriptions one connection may hold.
const MAX_SUBSCRIPTIONS: usize = 64;

/// Live log stream (WebSocket). Send `{"op":"subscribe","channel":"event:<id>"}`;
/// receive `{"type":"line"|"skipped"|"closed"|"error", ...}`.
#[utoipa::path(get, path = "/v1/stream", responses((status = 101, description = "WebSocket upgrade; see StreamRequest and StreamMessage")))]
pub async fn stream(State(dc): State<Arc<Datacenter>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(dc, socket))
}

async fn serve(dc: Arc<Datacenter>, socket: WebSocket) {
    let (mut sink, mut source) = socket.split();
    let (tx, mut rx) = mpsc::channel::<StreamMessage>(OUTGOING);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let text = serde_json::to_string(&msg).expect("stream messages serialise");
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
    });
    let mut subs: HashMap<String, JoinHandle<()>> = HashMap::new();
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(text) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        match serde_json::from_str::<StreamRequest>(&text) {
            Ok(StreamRequest::Subscribe { channel }) => {
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
                let task = tokio::spawn(follow(dc.clone(), channel.clone(), tx.clone()));
                subs.insert(channel, task);
            }
            Ok(StreamRequest::Unsubscribe { channel }) => {
                if let Some(t) = subs.remove(&channel) {
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
        subs.retain(|_, t| !t.is_finished());
    }
    for (_, t) in subs {
        t.abort();
    }
    writer.abort();
}

/// History, then live lines, of one channel, until it closes.
pub async fn follow(dc: Arc<Datacenter>, channel: String, tx: mpsc::Sender<StreamMessage>) {
    let Some(event_id) = channel.strip_prefix("event:").map(str::to_string) else {
        let _ = tx
            .send(StreamMessage::Error {
                channel,
                message: "unknown channel (use event:<id>)".into(),
            })
            .await;
        return;
    };
    // Subscribe before reading history, so nothing falls between the two.
    let mut live = dc.hub.subscribe(&channel);
    let history = match dc.events.lines(&event_id, 0).await {
        Ok(h) => h,
        Err(e) => {
            let _ = tx
                .send(StreamMessage::Error {
                    channel,
                    message: e.to_string(),
                })
                .await;
            return;
        }
    };
    let mut last = 0;
    for line in history {
        last = line.seq;
        dc.metrics.stream_lines.inc();
        if tx
            .send(StreamMessage::Line {
                channel: channel.clone(),
                line,
            })
            .await
            .is_err()
        {
            return;
        }
    }
    // Closed before we subscribed: the store already says so.
    match dc.events.get(&event_id).await {
        Ok(ev) if ev.status.is_final() => {
            let _ = tx
                .send(StreamMessage::Closed {
                    channel,
                    status: ev.status.as_str().into(),
                })
                .await;
            return;
        }
        Ok(_) => {}
        Err(e) => {
            let _ = tx
                .send(StreamMessage::Error {
                    channel,
                    message: e.to_string(),
                })
                .await;
            return;
        }
    }
    loop {
        let msg = match live.recv().await {
            Ok(HubMessage::Line(line)) if line.seq <= last => continue,
            Ok(HubMessage::Line(line)) => {
                last = line.seq;
                dc.metrics.stream_lines.inc();
                StreamMessage::Line {
                    channel: channel.clone(),
                    line: (*line).clone(),
                }
            }
            Ok(HubMessage::Closed(status)) => StreamMessage::Closed {
                channel: channel.clone(),
                status,
            },
            Err(broadcast::error::RecvError::Lagged(count)) => {
                dc.metrics.stream_skipped.inc_by(count);
                StreamMessage::Skipped {
                    channel: channel.clone(),
                    count,
                }
            }
            Err(broadcast::error::RecvError::Closed) => {
                let status = dc
                    .events
                    .get(&event_id)
                    .await
                    .map(|e| e.status.as_str().to_string())
                    .unwrap_or_else(|_| "unknown".into());
                StreamMessage::Closed {
                    channel: channel.clone(),
                    status,
                }
            }
        };
        let done = matches!(msg, StreamMessage::Closed { .. });
        if tx.send(msg).await.is_err() || done {
            return;
        }
    }
}
