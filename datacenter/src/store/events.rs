//! Events (one per operation) and their ordered log lines.

use super::{now_ms, Db};
use crate::api::*;
use crate::error::{Error, Result};

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    String,
);
const COLS: &str = "SELECT id, team, app, component, action, actor, status, created_at, finished_at, message FROM events";

#[derive(Clone, Debug)]
pub struct EventStore {
    db: Db,
}

impl EventStore {
    pub fn new(db: Db) -> Self {
        EventStore { db }
    }

    pub async fn create(
        &self,
        id: &str,
        team: &str,
        app: &str,
        component: &str,
        action: ActionKind,
        actor: &str,
    ) -> Result<Event> {
        sqlx::query(
            "INSERT INTO events (id, team, app, component, action, actor, status, created_at, message) \
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, '')",
        )
        .bind(id)
        .bind(team)
        .bind(app)
        .bind(component)
        .bind(action.as_str())
        .bind(actor)
        .bind(now_ms())
        .execute(&self.db.pool)
        .await?;
        self.get(id).await
    }

    pub async fn get(&self, id: &str) -> Result<Event> {
        let row: Option<Row> = sqlx::query_as(&format!("{COLS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        row.map(to_event)
            .ok_or_else(|| Error::NotFound(format!("no event {id}")))
    }

    pub async fn list(
        &self,
        team: &str,
        app: Option<&str>,
        component: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Event>> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "{COLS} WHERE team = $1 AND ($2 = '' OR app = $2) AND ($3 = '' OR component = $3) ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(team)
        .bind(app.unwrap_or(""))
        .bind(component.unwrap_or(""))
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.into_iter().map(to_event).collect())
    }

    pub async fn set_status(
        &self,
        id: &str,
        status: EventStatus,
        message: Option<&str>,
    ) -> Result<()> {
        let finished = status.is_final().then(now_ms);
        sqlx::query("UPDATE events SET status = $1, finished_at = COALESCE($2, finished_at), message = COALESCE($3, message) WHERE id = $4")
            .bind(status.as_str())
            .bind(finished)
            .bind(message)
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn append(&self, event_id: &str, line: &LogLine) -> Result<()> {
        sqlx::query("INSERT INTO event_lines (event_id, seq, time, level, step, message) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(event_id)
            .bind(line.seq)
            .bind(line.time)
            .bind(level_str(line.level))
            .bind(&line.step)
            .bind(&line.message)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn lines(&self, event_id: &str, after_seq: i64) -> Result<Vec<LogLine>> {
        let rows: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
            "SELECT seq, time, level, step, message FROM event_lines WHERE event_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(event_id)
        .bind(after_seq)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, time, level, step, message)| LogLine {
                seq,
                time,
                level: parse_level(&level),
                step,
                message,
            })
            .collect())
    }

    pub async fn last_seq(&self, event_id: &str) -> Result<i64> {
        let (n,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(seq) FROM event_lines WHERE event_id = $1")
                .bind(event_id)
                .fetch_one(&self.db.pool)
                .await?;
        Ok(n.unwrap_or(0))
    }
}

fn to_event(
    (id, team, app, component, action, actor, status, created_at, finished_at, message): Row,
) -> Event {
    Event {
        id,
        team,
        app,
        component,
        action: serde_json::from_value(serde_json::Value::String(action))
            .unwrap_or(ActionKind::Update),
        actor,
        status: EventStatus::parse(&status).unwrap_or(EventStatus::Failed),
        created_at,
        finished_at,
        message,
    }
}

pub fn level_str(l: Level) -> &'static str {
    match l {
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

fn parse_level(s: &str) -> Level {
    match s {
        "debug" => Level::Debug,
        "warn" => Level::Warn,
        "error" => Level::Error,
        _ => Level::Info,
    }
}
