//! Components deployed on a real `cloudport datacenter` process from the
//! samples in `examples/`, each copied into a local git repository.

use super::datacenter_process::*;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn api() -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().unwrap(),
    );
    Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A git repository (branch `main`) holding a copy of `examples/<sample>`.
pub fn git_repo(sample: &str, into: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(sample);
    copy_dir(&src, into);
    git(into, &["init", "-q", "-b", "main"]);
    commit_all(into, "first");
    format!("file://{}", into.display())
}

pub fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(
        dir,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "-m",
            message,
        ],
    );
}

pub fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?} failed");
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub struct Dc {
    pub process: DatacenterProcess,
    pub api: Client,
}

impl Dc {
    pub async fn start(dir: &Path) -> Dc {
        let process = DatacenterProcess::start(dir, free_port());
        process.wait_ready().await;
        Dc {
            process,
            api: api(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.process.url())
    }

    pub fn component_url(&self, name: &str, tail: &str) -> String {
        self.url(&format!("/v1/teams/t/apps/a/components/{name}{tail}"))
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn create(&self, spec: Value) {
        let (status, body) = self
            .send(
                self.api
                    .post(self.url("/v1/teams/t/apps/a/components"))
                    .json(&spec),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    pub async fn act(&self, name: &str, action: Value) -> String {
        let (status, body) = self
            .send(
                self.api
                    .post(self.component_url(name, "/actions"))
                    .json(&action),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["event_id"].as_str().unwrap().to_string()
    }

    /// Waits for the event to finish; returns its status and log lines.
    pub async fn finish(&self, event: &str, within: Duration) -> (String, Vec<Value>) {
        let deadline = Instant::now() + within;
        loop {
            let (_, body) = self
                .send(self.api.get(self.url(&format!("/v1/events/{event}"))))
                .await;
            let status = body["event"]["status"].as_str().unwrap_or("").to_string();
            if status == "succeeded" || status == "failed" {
                return (
                    status,
                    body["lines"].as_array().cloned().unwrap_or_default(),
                );
            }
            assert!(
                Instant::now() < deadline,
                "event {event} still {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn succeed(&self, name: &str, action: Value) -> Vec<Value> {
        let event = self.act(name, action).await;
        let (status, lines) = self.finish(&event, Duration::from_secs(240)).await;
        assert_eq!(status, "succeeded", "{}", show(&lines));
        lines
    }

    pub async fn component(&self, name: &str) -> Value {
        self.send(self.api.get(self.component_url(name, "")))
            .await
            .1
    }
}

pub fn show(lines: &[Value]) -> String {
    lines
        .iter()
        .map(|l| {
            format!(
                "[{}] {}",
                l["step"].as_str().unwrap_or(""),
                l["message"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub async fn body_of(url: &str) -> Option<String> {
    let r = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

pub async fn eventually_body(url: &str, wanted: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(b) = body_of(url).await {
            if b.contains(wanted) {
                return b;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered with {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
