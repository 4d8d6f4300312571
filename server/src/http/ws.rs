//! `/api/v1/ws`: the console's WebSocket hub. A browser subscribes to an
//! event's log or to a component's output; the console checks the caller
//! may see that team (through the same service calls, and so the same
//! authorisation gate, as the REST API), then relays the datacenter's
//! stream (history, live lines, "N skipped", closed). Buffers are bounded
//! end to end: a slow browser makes the datacenter skip lines for it.

use super::AppState;
use crate::console::rbac::Action;
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

/// Browser → console: follow one event of a team, or one component's
/// output (`component` is `app/name`).
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Subscribe {
        team: String,
        datacenter: String,
        #[serde(default)]
        event: Option<String>,
        #[serde(default)]
        component: Option<String>,
    },
    Unsubscribe {
        datacenter: String,
        #[serde(default)]
        team: Option<String>,
        #[serde(default)]
        event: Option<String>,
        #[serde(default)]
        component: Option<String>,
    },
}

/// What a subscription follows.
enum Target {
    Event(String),
    Component { app: String, name: String },
}

impl Target {
    fn parse(event: Option<String>, component: Option<String>) -> Result<Target, String> {
        match (event, component) {
            (Some(e), None) => Ok(Target::Event(e)),
            (None, Some(c)) => match c.split_once('/') {
                Some((app, name)) if !app.is_empty() && !name.is_empty() && !name.contains('/') => {
                    Ok(Target::Component {
                        app: app.into(),
                        name: name.into(),
                    })
                }
                _ => Err("component must be app/name".into()),
            },
            _ => Err("give either event or component".into()),
        }
    }

    /// The datacenter's channel name.
    fn upstream(&self, team: &str) -> String {
        match self {
            Target::Event(id) => format!("event:{id}"),
            Target::Component { app, name } => format!("logs:{team}/{app}/{name}"),
        }
    }
}

/// Live event logs and component output (WebSocket). Send
/// `{"op":"subscribe","team":…,"datacenter":…,"event":…}` for an event's log
/// (channel `<datacenter>/event:<id>`, closes with the event), or
/// `{"op":"subscribe","team":…,"datacenter":…,"component":"app/name"}` for a
/// component's output (channel `<datacenter>/logs:<team>/<app>/<name>`: the
/// last 200 lines, then live; never closes). Unsubscribe with the same
/// fields and `"op":"unsubscribe"`.
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
                component,
            }) => {
                let target = match Target::parse(event, component) {
                    Ok(t) => t,
                    Err(message) => {
                        let _ = tx
                            .send(StreamMessage::Error {
                                channel: String::new(),
                                message,
                            })
                            .await;
                        continue;
                    }
                };
                let upstream_channel = target.upstream(&team);
                let channel = format!("{datacenter}/{upstream_channel}");
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
                // The RBAC check: the event or component must belong to a
                // team the caller may see, in that datacenter.
                let allowed = match &target {
                    Target::Event(event) => state
                        .console
                        .team_event(&actor, &team, &datacenter, event)
                        .await
                        .map(|_| ()),
                    Target::Component { app, name } => state
                        .console
                        .locate(&actor, &team, app, name, Action::ViewApps)
                        .await
                        .and_then(|at| {
                            if at.datacenter == datacenter {
                                Ok(())
                            } else {
                                Err(crate::error::Error::NotFound(format!(
                                    "Component {app}/{name} is not in datacenter {datacenter}."
                                )))
                            }
                        }),
                };
                if let Err(e) = allowed {
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
                        let mut upstream = match client.follow(&upstream_channel, 256).await {
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
            Ok(Request::Unsubscribe {
                datacenter,
                team,
                event,
                component,
            }) => {
                let Ok(target) = Target::parse(event, component) else {
                    continue;
                };
                let channel = format!(
                    "{datacenter}/{}",
                    target.upstream(team.as_deref().unwrap_or_default())
                );
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
        StreamMessage::Metrics { sample, .. } => StreamMessage::Metrics { channel, sample },
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn a_subscription_names_an_event_or_an_app_and_component() {
        let t = Target::parse(Some("ev1".into()), None).unwrap();
        assert_eq!(t.upstream("acme"), "event:ev1");
        let t = Target::parse(None, Some("shop/web".into())).unwrap();
        assert_eq!(t.upstream("acme"), "logs:acme/shop/web");
        for bad in ["shop", "/web", "shop/", "shop/web/x"] {
            assert!(Target::parse(None, Some(bad.into())).is_err(), "{bad}");
        }
        assert!(Target::parse(None, None).is_err());
        assert!(Target::parse(Some("e".into()), Some("shop/web".into())).is_err());
    }
}
