//! Live fan-out of log lines to any number of subscribers per channel.
//! Each channel is a bounded broadcast ring: a subscriber that falls behind
//! loses the oldest lines and is told how many, and the datacenter never
//! buffers without bound for a slow client.

use crate::api::LogLine;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

pub const CHANNEL_CAPACITY: usize = 1024;

#[derive(Debug, Clone)]
pub enum HubMessage {
    Line(Arc<LogLine>),
    Closed(String),
}

#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<HubMessage>>>,
}

impl Hub {
    pub fn subscribe(&self, channel: &str) -> broadcast::Receiver<HubMessage> {
        let mut channels = self.channels.lock().unwrap();
        channels
            .entry(channel.to_string())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Publishing to a channel nobody listens to costs a map lookup.
    pub fn publish(&self, channel: &str, msg: HubMessage) {
        let channels = self.channels.lock().unwrap();
        if let Some(tx) = channels.get(channel) {
            let _ = tx.send(msg);
        }
    }

    pub fn close(&self, channel: &str, status: &str) {
        if let Some(tx) = self.channels.lock().unwrap().remove(channel) {
            let _ = tx.send(HubMessage::Closed(status.to_string()));
        }
    }

    /// Drops channels whose subscribers have all gone.
    pub fn sweep(&self) {
        self.channels
            .lock()
            .unwrap()
            .retain(|_, tx| tx.receiver_count() > 0);
    }

    pub fn channel_count(&self) -> usize {
        self.channels.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Level;

    fn line(seq: i64) -> HubMessage {
        HubMessage::Line(Arc::new(LogLine {
            seq,
            time: 0,
            level: Level::Info,
            step: "s".into(),
            message: "m".into(),
        }))
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_what_it_missed() {
        let hub = Hub::default();
        let mut rx = hub.subscribe("c");
        for i in 0..(CHANNEL_CAPACITY as i64 + 10) {
            hub.publish("c", line(i));
        }
        match rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("expected lag, got {other:?}"),
        }
        hub.close("c", "succeeded");
        assert_eq!(hub.channel_count(), 0);
    }
}
