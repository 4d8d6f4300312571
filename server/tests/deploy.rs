//! From source to a running app on a real `cloudport datacenter` process,
//! through its API: samples built from local git repositories, requested
//! over HTTP at the component's address, their output found in the logs, a
//! killed replica restarted, a new version rolled out while requests keep
//! succeeding, a rollback to the exact earlier version, and the app served
//! again after the datacenter itself is killed with SIGKILL, with no process
//! of an earlier replica left running after a crash or a clean stop.

mod common;

use common::datacenter_process::signal;
use common::deployments::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn spec(name: &str, repo: &str, greeting: &str) -> Value {
    json!({
        "name": name,
        "source": {"kind": "git", "url": repo, "reference": "main"},
        "ports": [{"port": 8080, "protocol": "http", "inner": true, "outer": true}],
        "env": [{"name": "GREETING", "value": greeting}],
        "health": {"kind": "http", "port": 8080, "path": "/healthz"},
        "replicas": 2
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_python_app_lives_from_git_to_rollback_and_survives_its_datacenter() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo("python-hello", &dir.path().join("repo"));
    let dc = Dc::start(&dir.path().join("dc")).await;
    dc.create(spec("hello", &repo, "first greeting")).await;

    // Build and deploy v1 from git; the build's steps are in its event log.
    let lines = dc
        .succeed("hello", json!({"action": "build", "actor": "t"}))
        .await;
    let log = show(&lines);
    for step in ["[fetch]", "[detect]", "[deploy]", "[health]"] {
        assert!(log.contains(step), "no {step} step in:\n{log}");
    }
    assert!(log.contains("python"), "{log}");
    let c = dc.component("hello").await;
    assert_eq!(c["status"], "running", "{c}");
    assert_eq!(c["version"], "v1");
    let url = c["url"]
        .as_str()
        .expect("a running component has a url")
        .to_string();
    let body = eventually_body(&url, "python-hello sample", Duration::from_secs(5)).await;
    assert!(body.contains("first greeting"), "{body}");

    // Its output is in the logs, tagged with replica and version.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = dc
            .send(
                dc.api
                    .get(dc.component_url("hello", "/logs"))
                    .query(&[("q", "request GET /")]),
            )
            .await;
        let lines = page["lines"].as_array().cloned().unwrap_or_default();
        if let Some(l) = lines.first() {
            assert!(l["step"].as_str().unwrap().ends_with("/v1"), "{l}");
            break;
        }
        assert!(Instant::now() < deadline, "request never logged: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A killed replica is restarted and the app keeps answering.
    let (_, replicas) = dc
        .send(dc.api.get(dc.component_url("hello", "/replicas")))
        .await;
    assert_eq!(replicas.as_array().unwrap().len(), 2, "{replicas}");
    let pid = replicas[0]["pid"].as_u64().unwrap();
    signal(pid as i32, 9);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, r) = dc
            .send(dc.api.get(dc.component_url("hello", "/replicas")))
            .await;
        let first = &r.as_array().unwrap()[0];
        if first["restarts"].as_u64() >= Some(1)
            && first["alive"] == true
            && first["pid"].as_u64() != Some(pid)
        {
            assert!(
                first["last_exit"].as_str().unwrap().contains("signal 9"),
                "{first}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "replica not restarted: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually_body(&url, "python-hello sample", Duration::from_secs(10)).await;

    // A new version rolls out while requests keep coming: none fails.
    let mut s = spec("hello", &repo, "second greeting");
    s["replicas"] = json!(2);
    let (status, body) = dc
        .send(dc.api.put(dc.component_url("hello", "")).json(&s))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    dc.finish(body["event_id"].as_str().unwrap(), Duration::from_secs(120))
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed, url) = (stop.clone(), ok.clone(), failed.clone(), url.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            while !stop.load(Ordering::SeqCst) {
                match client
                    .get(&url)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        })
    };
    let lines = dc
        .succeed("hello", json!({"action": "build", "actor": "t"}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert!(
        ok.load(Ordering::SeqCst) > 20,
        "too few requests to prove anything"
    );
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during the rollout:\n{}",
        show(&lines)
    );
    assert_eq!(dc.component("hello").await["version"], "v2");
    eventually_body(&url, "second greeting", Duration::from_secs(5)).await;

    // Rollback: v1 again, with the environment it was built with.
    let (_, versions) = dc
        .send(dc.api.get(dc.component_url("hello", "/versions")))
        .await;
    let ids: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["v2", "v1"]);
    assert_eq!(versions[0]["current"], true);
    dc.succeed(
        "hello",
        json!({"action": "rollback", "actor": "t", "version": "v1"}),
    )
    .await;
    let c = dc.component("hello").await;
    assert_eq!(c["version"], "v1");
    assert_eq!(c["env"][0]["value"], "first greeting");
    eventually_body(&url, "first greeting", Duration::from_secs(5)).await;

    // The datacenter dies with SIGKILL: its replicas go with it, and once it
    // is back the app answers again at the same address.
    let mut dc = dc;
    dc.process.restart();
    dc.process.wait_ready().await;
    eventually_body(&url, "first greeting", Duration::from_secs(30)).await;
    // The answer can come a moment before the start event records it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = dc.component("hello").await;
        if c["status"] == "running" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not running after the restart: {c}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `npm start` runs the app as a grandchild of the replica's process, out
/// of reach of the parent-death signal. Killed with SIGKILL, the datacenter
/// leaves it running; started again, it ends it before anything else. A
/// clean stop (SIGTERM) ends every process of every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datacenter_leaves_no_replica_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo("node-hello", &dir.path().join("repo"));
    let mut dc = Dc::start(&dir.path().join("dc")).await;
    dc.create(json!({
        "name": "node",
        "source": {"kind": "git", "url": repo, "reference": "main"},
        "ports": [{"port": 8080, "protocol": "http", "inner": true, "outer": true}],
    }))
    .await;
    dc.succeed("node", json!({"action": "build", "actor": "t"}))
        .await;
    let url = dc.component("node").await["url"]
        .as_str()
        .unwrap()
        .to_string();
    eventually_body(&url, "node-hello sample", Duration::from_secs(10)).await;
    let before = dc.process.replica_processes();
    assert!(before.len() >= 2, "npm and the node it starts: {before:?}");

    dc.process.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let orphans = dc.process.replica_processes();
    assert!(
        !orphans.is_empty(),
        "the app process should outlive a SIGKILLed datacenter here, or this test proves nothing"
    );

    dc.process.restart();
    dc.process.wait_ready().await;
    eventually_body(&url, "node-hello sample", Duration::from_secs(30)).await;
    let now = dc.process.replica_processes();
    let survivors: Vec<_> = orphans.iter().filter(|p| now.contains(p)).collect();
    assert!(
        survivors.is_empty(),
        "left over from the killed datacenter: {survivors:?}"
    );
    assert!(!now.is_empty(), "the restarted replica runs");

    let status = dc.process.stop().expect("the datacenter stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dc.process.replica_processes().is_empty() {
        assert!(
            Instant::now() < deadline,
            "still running after a clean stop: {:?}",
            dc.process.replica_processes()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each sample builds from git and answers at its address; rebuilding one
/// with unchanged dependencies takes them from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_sample_builds_from_git_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let dc = Dc::start(&dir.path().join("dc")).await;
    for (sample, expected) in [
        ("static-site", "static-site sample"),
        ("node-hello", "node-hello sample"),
        ("python-deps", "python-deps sample"),
        ("rust-hello", "rust-hello sample"),
    ] {
        let repo = git_repo(sample, &dir.path().join(sample));
        dc.create(json!({
            "name": sample,
            "source": {"kind": "git", "url": repo, "reference": "main"},
            "ports": [{"port": 8080, "protocol": "http", "inner": true, "outer": true}]
        }))
        .await;
        let lines = dc
            .succeed(sample, json!({"action": "build", "actor": "t"}))
            .await;
        let c = dc.component(sample).await;
        assert_eq!(c["status"], "running", "{c}\n{}", show(&lines));
        eventually_body(
            c["url"].as_str().unwrap(),
            expected,
            Duration::from_secs(10),
        )
        .await;
    }
    let again = dc
        .succeed("python-deps", json!({"action": "build", "actor": "t"}))
        .await;
    assert!(
        show(&again).contains("dependencies from cache"),
        "{}",
        show(&again)
    );
}

/// A build that cannot work fails with a clear message and leaves nothing
/// half-deployed; a bad upload is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_sources_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let dc = Dc::start(&dir.path().join("dc")).await;
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "nothing to run").unwrap();
    git(&empty, &["init", "-q", "-b", "main"]);
    commit_all(&empty, "notes");
    dc.create(json!({
        "name": "empty",
        "source": {"kind": "git", "url": format!("file://{}", empty.display()), "reference": "main"}
    }))
    .await;
    let event = dc
        .act("empty", json!({"action": "build", "actor": "t"}))
        .await;
    let (status, lines) = dc.finish(&event, Duration::from_secs(60)).await;
    assert_eq!(status, "failed");
    let last = lines.last().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        last.contains("package.json") || last.contains("index.html"),
        "{last}"
    );
    let c = dc.component("empty").await;
    assert_eq!(c["status"], "build_failed", "{c}");
    assert!(c["version"].is_null());

    dc.create(json!({"name": "up", "source": {"kind": "upload"}}))
        .await;
    let (status, body) = dc
        .send(
            dc.api
                .put(dc.component_url("up", "/source"))
                .body("this is not an archive"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = dc
        .send(
            dc.api
                .post(dc.component_url("up", "/actions"))
                .json(&json!({"action": "rollback", "actor": "t"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

fn github_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A signed push to the component's branch builds and deploys it; a push
/// elsewhere is ignored; a forged one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_webhook_builds_and_deploys() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo("python-hello", &dir.path().join("repo"));
    let dc = Dc::start(&dir.path().join("dc")).await;
    dc.create(spec("hooked", &repo, "from a hook")).await;
    let (_, hook) = dc
        .send(dc.api.get(dc.component_url("hooked", "/webhook")))
        .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 32);

    let deliver = |body: Vec<u8>, signature: String| {
        dc.api
            .post(dc.component_url("hooked", "/webhook"))
            .header("X-GitHub-Event", "push")
            .header("X-Hub-Signature-256", signature)
            .body(body)
    };
    let other = br#"{"ref":"refs/heads/feature","pusher":{"name":"ada"}}"#.to_vec();
    let (status, body) = dc
        .send(deliver(other.clone(), github_signature(&secret, &other)))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["event_id"].is_null(), "{body}");

    let main = br#"{"ref":"refs/heads/main","pusher":{"name":"ada"}}"#.to_vec();
    let (status, _) = dc
        .send(deliver(main.clone(), github_signature("guessed", &main)))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = dc
        .send(deliver(main.clone(), github_signature(&secret, &main)))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let event = body["event_id"]
        .as_str()
        .expect("a build started")
        .to_string();
    let (status, lines) = dc.finish(&event, Duration::from_secs(120)).await;
    assert_eq!(status, "succeeded", "{}", show(&lines));
    let c = dc.component("hooked").await;
    eventually_body(
        c["url"].as_str().unwrap(),
        "from a hook",
        Duration::from_secs(5),
    )
    .await;
}
