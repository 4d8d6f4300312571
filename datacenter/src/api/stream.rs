//! `/v1/stream`: one WebSocket per client, multiplexing any number of
//! channels. A subscription first replays the channel's stored history, then
//! follows it live; lines are stitched by sequence number so none is shown
//! twice. Everything on the way is bounded: the hub's ring per channel and
//! one outgoing queue per connection. A client too slow to keep up is told
//! how many lines it missed.
//!
//! Channels:
//! - `event:<id>`: an operation's log, all of it, then live until the event
//!   reaches its final status (`closed`).
//! - `logs:<team>/<app>/<component>`: a component's output (stdout and
//!   stderr of its replicas), the last [`LOG_HISTORY`] stored lines, then live
//!   for as long as the client stays subscribed (never `closed`).
//! - `metrics:<team>/<app>/<component>`: CPU and memory of each replica,
//!   sampled every [`METRICS_EVERY`] while someone listens (never `closed`).

use super::{StreamMessage, StreamRequest};
use crate::logs::component::ComponentLogs;
use crate::logs::hub::HubMessage;
use crate::service::Datacenter;
use crate::store::components::Key;
use crate::validate::dns_label;
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
/// Stored lines a `logs:` subscription starts with.
pub const LOG_HISTORY: usize = 200;

/// Live log stream (WebSocket). Send `{"op":"subscribe","channel":"event:<id>"}`
/// (an operation's log) or `{"op":"subscribe","channel":"logs:<team>/<app>/<component>"}`
/// (a component's output); receive `{"type":"line"|"skipped"|"closed"|"error", ...}`.
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

/// History, then live lines, of one channel, until it closes (an event) or
/// the client unsubscribes.
pub async fn follow(dc: Arc<Datacenter>, channel: String, tx: mpsc::Sender<StreamMessage>) {
    if let Some(event_id) = channel.strip_prefix("event:").map(str::to_string) {
        follow_event(dc, channel, event_id, tx).await
    } else if let Some(path) = channel.strip_prefix("logs:") {
        match component_key(path) {
            Ok(key) => follow_component(dc, channel, key, tx).await,
            Err(message) => {
                let _ = tx.send(StreamMessage::Error { channel, message }).await;
            }
        }
    } else if let Some(path) = channel.strip_prefix("metrics:") {
        match component_key(path) {
            Ok(key) => follow_metrics(dc, channel, key, tx).await,
            Err(message) => {
                let _ = tx.send(StreamMessage::Error { channel, message }).await;
            }
        }
    } else {
        let _ = tx
            .send(StreamMessage::Error {
                channel,
                message: "unknown channel (use event:<id>, logs:<team>/<app>/<component> or metrics:<team>/<app>/<component>)".into(),
            })
            .await;
    }
}

pub const METRICS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Samples on demand: nothing is measured for a component nobody watches.
async fn follow_metrics(
    dc: Arc<Datacenter>,
    channel: String,
    key: Key,
    tx: mpsc::Sender<StreamMessage>,
) {
    let mut tick = tokio::time::interval(METRICS_EVERY);
    loop {
        tick.tick().await;
        let component = match dc.components.get(&key).await {
            Ok(c) => c,
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
        let sample = crate::api::MetricsSample {
            time: crate::store::now_ms(),
            replicas: dc.runtime.usage(&component).await,
        };
        let msg = StreamMessage::Metrics {
            channel: channel.clone(),
            sample,
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

/// `<team>/<app>/<component>`, each a DNS label.
fn component_key(path: &str) -> Result<Key, String> {
    let parts: Vec<&str> = path.split('/').collect();
    let [team, app, name] = parts[..] else {
        return Err("use logs:<team>/<app>/<component>".into());
    };
    let errors: Vec<String> = [("team", team), ("app", app), ("component name", name)]
        .into_iter()
        .filter_map(|(what, part)| dns_label(what, part).err())
        .collect();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    Ok(Key {
        team: team.into(),
        app: app.into(),
        name: name.into(),
    })
}

/// A component's last stored lines, then its live output. A component's log
/// does not end: this runs until the client unsubscribes or goes away.
async fn follow_component(
    dc: Arc<Datacenter>,
    channel: String,
    key: Key,
    tx: mpsc::Sender<StreamMessage>,
) {
    // Subscribe before reading history, so nothing falls between the two.
    let hub_channel = ComponentLogs::channel(&key);
    let mut live = dc.hub.subscribe(&hub_channel);
    let history = match dc.component_logs.tail(&key, LOG_HISTORY).await {
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
    // Live lines the history already held are skipped; once past it, every
    // line is new (numbering may restart if the component was re-created).
    let mut past_history = false;
    loop {
        let msg = match live.recv().await {
            Ok(HubMessage::Line(line)) if !past_history && line.seq <= last => continue,
            Ok(HubMessage::Line(line)) => {
                past_history = true;
                dc.metrics.stream_lines.inc();
                StreamMessage::Line {
                    channel: channel.clone(),
                    line: (*line).clone(),
                }
            }
            // Not sent for component channels; never end the stream for it.
            Ok(HubMessage::Closed(_)) => continue,
            Err(broadcast::error::RecvError::Lagged(count)) => {
                dc.metrics.stream_skipped.inc_by(count);
                StreamMessage::Skipped {
                    channel: channel.clone(),
                    count,
                }
            }
            Err(broadcast::error::RecvError::Closed) => {
                // The hub dropped the channel; follow its successor.
                live = dc.hub.subscribe(&hub_channel);
                past_history = true;
                continue;
            }
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

/// An event's whole log, then live lines until the event closes.
async fn follow_event(
    dc: Arc<Datacenter>,
    channel: String,
    event_id: String,
    tx: mpsc::Sender<StreamMessage>,
) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_channel_names_are_three_dns_labels() {
        let k = component_key("acme/shop/web-1").unwrap();
        assert_eq!(k.to_string(), "acme/shop/web-1");
        assert_eq!(
            format!("logs:{}", k),
            ComponentLogs::channel(&k),
            "the hub channel is the one clients subscribe to"
        );
        for bad in [
            "acme/shop",
            "acme/shop/web/extra",
            "acme/../web",
            "Acme/shop/web",
            "acme//web",
            "acme/shop/-web",
            "",
        ] {
            assert!(component_key(bad).is_err(), "{bad}");
        }
    }
}
