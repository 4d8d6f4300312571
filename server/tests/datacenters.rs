//! The console and real `cloudport datacenter` processes: registration,
//! honest states when a datacenter dies and comes back, components and
//! their events across the two, the live log relay with its RBAC check, and
//! convergence after the datacenter is killed with SIGKILL.

mod common;

use common::datacenter_process::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn state_of(c: &TestConsole, admin: &reqwest::Client, name: &str) -> Value {
    let list: Value = admin
        .get(c.url("/api/v1/datacenters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

async fn wait_for_state(
    c: &TestConsole,
    admin: &reqwest::Client,
    name: &str,
    want: &str,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let dc = state_of(c, admin, name).await;
        if dc["state"] == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{name} not {want} after {within:?}: {dc}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_component(
    c: &TestConsole,
    client: &reqwest::Client,
    path: &str,
    status: &str,
    within: Duration,
) -> Value {
    let start = Instant::now();
    loop {
        let resp = client.get(c.url(path)).send().await.unwrap();
        if resp.status() == StatusCode::OK {
            let v: Value = resp.json().await.unwrap();
            if v["component"]["status"] == status {
                return v;
            }
            assert!(
                start.elapsed() < within,
                "not {status} after {within:?}: {v}"
            );
        } else {
            assert!(
                start.elapsed() < within,
                "component unavailable after {within:?}: {}",
                resp.status()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An event once it has left `queued`/`running`.
async fn finished_event(c: &TestConsole, client: &reqwest::Client, path: &str) -> Value {
    let start = Instant::now();
    loop {
        let ev: Value = client
            .get(c.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status = ev["event"]["status"].as_str().unwrap_or_default();
        if status != "queued" && status != "running" {
            return ev;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "event still {status}: {ev}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_backends!(a_killed_datacenter_goes_offline_and_comes_back_converged);

async fn a_killed_datacenter_goes_offline_and_comes_back_converged(b: Backend) {
    let c = TestConsole::start(b).await;
    let admin = c.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let mut dc = DatacenterProcess::start(dir.path(), free_port());
    dc.wait_ready().await;

    // A wrong token is refused before anything is stored.
    let (status, body) = status_and_json(
        admin
            .post(c.url("/api/v1/datacenters"))
            .json(&json!({"name": "dc2", "url": dc.url(), "token": "wrong-token-wrong-token"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let resp = admin
        .post(c.url("/api/v1/datacenters"))
        .json(&json!({"name": "dc2", "url": dc.url(), "token": TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let added: Value = resp.json().await.unwrap();
    assert_eq!(added["state"], "online");
    assert_eq!(added["runtime"], "local");

    // The token is sealed at rest.
    let (sealed,): (String,) =
        sqlx::query_as("SELECT token_sealed FROM datacenters WHERE name = 'dc2'")
            .fetch_one(&c.console.db.pool)
            .await
            .unwrap();
    assert!(!sealed.contains(TOKEN));

    // A team that may use dc2 runs a component there.
    admin
        .post(c.url("/api/v1/teams"))
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    let resp = admin
        .post(c.url("/api/v1/teams/acme/datacenters"))
        .json(&json!({"datacenter": "dc2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    admin
        .post(c.url("/api/v1/teams/acme/apps"))
        .json(&json!({"name": "shop"}))
        .send()
        .await
        .unwrap();
    let spec = json!({
        "name": "web",
        "source": {"kind": "upload"},
        "build": {"run_command": "python3 -m http.server $PORT --bind 127.0.0.1"},
        "ports": [{"port": 8000, "protocol": "http", "outer": true}],
        "health": {"kind": "http", "port": 8000, "path": "/"},
        "secrets": {"API_KEY": "s3cret-value"}
    });
    let resp = admin
        .post(c.url("/api/v1/teams/acme/apps/shop/components"))
        .json(&json!({"datacenter": "dc2", "spec": spec}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = admin
        .post(c.url("/api/v1/teams/acme/apps/shop/components/web/actions"))
        .json(&json!({"action": "start"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let started: Value = resp.json().await.unwrap();
    let component = "/api/v1/teams/acme/apps/shop/components/web";
    let placed =
        wait_for_component(&c, &admin, component, "running", Duration::from_secs(20)).await;
    assert_eq!(placed["datacenter"], "dc2");
    assert_eq!(placed["component"]["secret_names"], json!(["API_KEY"]));
    assert!(
        !placed.to_string().contains("s3cret-value"),
        "secret values never come back"
    );

    // The start event has its log, in order, closed with a final status.
    // The component may show running a moment before its event is closed.
    let ev = finished_event(
        &c,
        &admin,
        &format!(
            "/api/v1/teams/acme/events/dc2/{}",
            started["event_id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(ev["event"]["status"], "succeeded", "{ev}");
    let lines = ev["lines"].as_array().unwrap();
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(lines.iter().any(|l| l["step"] == "health"), "{ev}");
    assert_eq!(lines.last().unwrap()["step"], "done");

    // kill -9: offline within 10 s, with the reason.
    dc.kill9();
    let took = wait_for_state(&c, &admin, "dc2", "offline", Duration::from_secs(10)).await;
    eprintln!("offline after {took:?}");
    let down = state_of(&c, &admin, "dc2").await;
    assert!(
        down["state_reason"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{down}"
    );
    assert!(down["last_contact_at"].as_i64().is_some());
    // The app page still answers, naming the datacenter that does not.
    let app: Value = admin
        .get(c.url("/api/v1/teams/acme/apps/shop"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(app["unreachable"], json!(["dc2"]));

    // Back up: online again, and the component it was running converges to running.
    dc.restart();
    dc.wait_ready().await;
    wait_for_state(&c, &admin, "dc2", "online", Duration::from_secs(10)).await;
    wait_for_component(&c, &admin, component, "running", Duration::from_secs(30)).await;
    let start = Instant::now();
    loop {
        let events: Value = admin
            .get(c.url("/api/v1/teams/acme/events?app=shop"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let restarted =
            events.as_array().unwrap().iter().any(|e| {
                e["event"]["actor"] == "reconciler" && e["event"]["status"] == "succeeded"
            });
        if restarted {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the reconciler restarted it: {events}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Removing a datacenter that still holds components needs force.
    let resp = admin
        .delete(c.url("/api/v1/datacenters/dc2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let resp = admin
        .delete(c.url("/api/v1/datacenters/dc2?force=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

on_both_backends!(live_event_logs_are_relayed_only_to_those_who_may_see_them);

async fn live_event_logs_are_relayed_only_to_those_who_may_see_them(b: Backend) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

    let c = TestConsole::start_with(b, |cfg| cfg.no_embedded_datacenter = false).await;
    let admin = c.admin().await;
    c.create_user(&admin, "vic").await;
    c.create_user(&admin, "otto").await;
    admin
        .post(c.url("/api/v1/teams"))
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    admin
        .post(c.url("/api/v1/teams/acme/members"))
        .json(&json!({"username": "vic", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    admin
        .post(c.url("/api/v1/teams/acme/apps"))
        .json(&json!({"name": "shop"}))
        .send()
        .await
        .unwrap();
    let created: Value = admin
        .post(c.url("/api/v1/teams/acme/apps/shop/components"))
        .json(&json!({"datacenter": "local", "spec": {"name": "db", "source": {"kind": "image", "image": "postgres:16"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event = created["event_id"].as_str().unwrap().to_string();

    // Each user gets a token for the WebSocket handshake.
    let token_for = |who: &'static str, pass: &'static str| {
        let c = &c;
        async move {
            let s = c.login(who, pass).await;
            let t: Value = s
                .post(c.url("/api/v1/tokens"))
                .json(&json!({"name": "ws"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            t["token"].as_str().unwrap().to_string()
        }
    };
    let follow = |token: String| {
        let url = c.url("/api/v1/ws").replacen("http", "ws", 1);
        let event = event.clone();
        async move {
            let mut req = url.into_client_request().unwrap();
            req.headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
            let sub =
                json!({"op": "subscribe", "team": "acme", "datacenter": "local", "event": event})
                    .to_string();
            ws.send(Message::Text(sub.into())).await.unwrap();
            let mut got = vec![];
            while let Ok(Some(Ok(Message::Text(t)))) =
                tokio::time::timeout(Duration::from_secs(10), ws.next()).await
            {
                let v: Value = serde_json::from_str(&t).unwrap();
                let end = v["type"] == "closed" || v["type"] == "error";
                got.push(v);
                if end {
                    break;
                }
            }
            got
        }
    };

    let seen = follow(token_for("vic", PASSWORD).await).await;
    let last = seen.last().expect("messages");
    assert_eq!(last["type"], "closed", "{seen:?}");
    assert_eq!(last["status"], "succeeded");
    let lines: Vec<&Value> = seen.iter().filter(|m| m["type"] == "line").collect();
    assert!(lines.len() >= 3, "{seen:?}");
    assert!(lines
        .iter()
        .all(|m| m["channel"] == format!("local/event:{event}")));
    assert!(
        lines.iter().any(|m| m["line"]["message"]
            .as_str()
            .unwrap()
            .contains("component acme/shop/db stored")),
        "{seen:?}"
    );

    // Someone outside the team learns nothing.
    let seen = follow(token_for("otto", PASSWORD).await).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["type"], "error");
    assert!(!seen.iter().any(|m| m["type"] == "line"));
}
