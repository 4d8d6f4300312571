//! Event logs: every operation's ordered lines, stored for replay and fanned
//! out live to stream subscribers.

pub mod component;
pub mod hub;

use crate::api::{EventStatus, Level, LogLine};
use crate::store::events::EventStore;
use crate::store::now_ms;
use hub::{Hub, HubMessage};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Lines kept per event; a runaway operation cannot fill the disk.
pub const MAX_LINES_PER_EVENT: i64 = 10_000;
pub const MAX_LINE_BYTES: usize = 4096;

pub fn event_channel(id: &str) -> String {
    format!("event:{id}")
}

/// The writer for one event's log.
#[derive(Clone)]
pub struct EventLog {
    pub event_id: String,
    store: EventStore,
    hub: Arc<Hub>,
    seq: Arc<AtomicI64>,
}

impl EventLog {
    /// Continues after the lines already stored (a redelivered task appends).
    pub async fn open(
        event_id: &str,
        store: EventStore,
        hub: Arc<Hub>,
    ) -> crate::error::Result<EventLog> {
        let last = store.last_seq(event_id).await?;
        Ok(EventLog {
            event_id: event_id.into(),
            store,
            hub,
            seq: Arc::new(AtomicI64::new(last)),
        })
    }

    pub async fn info(&self, step: &str, message: impl Into<String>) {
        self.line(Level::Info, step, message).await
    }

    pub async fn warn(&self, step: &str, message: impl Into<String>) {
        self.line(Level::Warn, step, message).await
    }

    pub async fn error(&self, step: &str, message: impl Into<String>) {
        self.line(Level::Error, step, message).await
    }

    pub async fn line(&self, level: Level, step: &str, message: impl Into<String>) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        if seq > MAX_LINES_PER_EVENT {
            return;
        }
        let mut message = message.into();
        if message.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        if seq == MAX_LINES_PER_EVENT {
            message = "log limit reached; further lines of this event are dropped".into();
        }
        let line = LogLine {
            seq,
            time: now_ms(),
            level,
            step: step.into(),
            message,
        };
        if let Err(e) = self.store.append(&self.event_id, &line).await {
            tracing::warn!(error = %e, event = %self.event_id, "could not store a log line");
        }
        self.hub.publish(
            &event_channel(&self.event_id),
            HubMessage::Line(Arc::new(line)),
        );
    }

    /// Closes the event: final status stored first, then subscribers told.
    pub async fn close(&self, status: EventStatus, message: &str) -> crate::error::Result<()> {
        let level = if status == EventStatus::Failed {
            Level::Error
        } else {
            Level::Info
        };
        self.line(level, "done", message).await;
        self.store
            .set_status(&self.event_id, status, Some(message))
            .await?;
        self.hub
            .close(&event_channel(&self.event_id), status.as_str());
        Ok(())
    }
}
