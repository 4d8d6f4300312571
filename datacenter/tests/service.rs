//! The datacenter API through its own typed client, against a real
//! datacenter (SQLite store, embedded queue, local runtime) on a loopback
//! port: auth, validation, sealed secrets, events and the live stream.

use datacenter::api::*;
use datacenter::client::{ClientError, DatacenterClient};
use datacenter::service::{start, DatacenterConfig, Running};
use std::time::Duration;

const TOKEN: &str = "test-token-0123456789";

/// Sends raw bytes to the datacenter and reads the answer until it closes
/// or says nothing more for a second.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), conn.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

async fn datacenter(dir: &std::path::Path) -> (Running, DatacenterClient) {
    datacenter_on(dir, None).await
}

/// A fresh database on the test PostgreSQL server (`scripts/test.sh` starts it).
async fn fresh_postgres() -> String {
    use sqlx::Connection;
    let admin = std::env::var("CLOUDPORT_TEST_POSTGRES_URL")
        .expect("CLOUDPORT_TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh, which starts PostgreSQL");
    let name = format!(
        "dc_test_{}_{}",
        std::process::id(),
        datacenter::store::now_ms()
    );
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

async fn datacenter_on(
    dir: &std::path::Path,
    database_url: Option<String>,
) -> (Running, DatacenterClient) {
    let config = DatacenterConfig {
        database_url,
        workers: 2,
        reconcile_every: Duration::from_secs(1),
        ..DatacenterConfig::new(
            "t",
            "127.0.0.1:0".parse().unwrap(),
            dir.to_path_buf(),
            TOKEN.into(),
        )
    };
    let running = start(config).await.unwrap();
    let client = DatacenterClient::new(
        &format!("http://{}", running.addr),
        TOKEN,
        Duration::from_secs(10),
    );
    (running, client)
}

fn spec(name: &str) -> ComponentSpec {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "source": {"kind": "upload"},
        "build": {"run_command": "python3 -m http.server $PORT --bind 127.0.0.1"},
        "ports": [{"port": 8000, "protocol": "http"}],
        "health": {"kind": "http", "port": 8000, "path": "/"},
        "env": [{"name": "MODE", "value": "test"}],
        "secrets": {"DB_PASSWORD": "hunter2-hunter2"}
    }))
    .unwrap()
}

async fn wait_event(client: &DatacenterClient, id: &str) -> EventWithLines {
    for _ in 0..300 {
        let ev = client.event(id).await.unwrap();
        if ev.event.status.is_final() {
            return ev;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("event {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (running, client) = datacenter(dir.path()).await;
    assert!(client.info().await.is_ok());
    let wrong = DatacenterClient::new(
        &format!("http://{}", running.addr),
        "not-the-token-at-all",
        Duration::from_secs(5),
    );
    match wrong.info().await {
        Err(ClientError::Api { status: 401, error }) => assert_eq!(error.error, "unauthorized"),
        other => panic!("{other:?}"),
    }
    // Probes and the OpenAPI document stay open; the latter lists every route.
    let base = format!("http://{}", running.addr);
    assert!(reqwest::get(format!("{base}/healthz"))
        .await
        .unwrap()
        .status()
        .is_success());
    let doc: serde_json::Value = reqwest::get(format!("{base}/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/info",
        "/v1/teams/{team}/apps/{app}/components/{name}/actions",
        "/v1/stream",
        "/v1/events/{id}",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_are_refused_with_every_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, client) = datacenter(dir.path()).await;
    let mut bad = spec("Bad_Name");
    bad.replicas = 1000;
    bad.resources.memory_mb = 1;
    match client
        .create_component("acme", "shop", &bad, "tester")
        .await
    {
        Err(ClientError::Api { status: 422, error }) => {
            assert!(
                error.message.contains("component name"),
                "{}",
                error.message
            );
            assert!(error.message.contains("replicas"), "{}", error.message);
            assert!(error.message.contains("memory"), "{}", error.message);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        client.components("acme", None).await.unwrap().is_empty(),
        "nothing stored"
    );
    client
        .create_component("acme", "shop", &spec("web"), "tester")
        .await
        .unwrap();
    match client
        .create_component("acme", "shop", &spec("web"), "tester")
        .await
    {
        Err(ClientError::Api { status: 409, .. }) => {}
        other => panic!("{other:?}"),
    }
    match client
        .act(
            "acme",
            "shop",
            "nope",
            &ActionRequest {
                action: ActionKind::Start,
                actor: "t".into(),
                replicas: None,
                version: None,
            },
        )
        .await
    {
        Err(ClientError::Api { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_and_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, client) = datacenter(dir.path()).await;
    let created = client
        .create_component("acme", "shop", &spec("web"), "tester")
        .await
        .unwrap();
    assert_eq!(
        created.component.secret_names,
        vec!["DB_PASSWORD".to_string()]
    );
    let listed = serde_json::to_string(&client.components("acme", None).await.unwrap()).unwrap();
    assert!(!listed.contains("hunter2"));
    let db = std::fs::read(dir.path().join("datacenter.db")).unwrap();
    let wal = std::fs::read(dir.path().join("datacenter.db-wal")).unwrap_or_default();
    let needle = b"hunter2-hunter2";
    assert!(
        !db.windows(needle.len()).any(|w| w == needle)
            && !wal.windows(needle.len()).any(|w| w == needle),
        "plaintext secret on disk"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_run_through_the_queue_and_log_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, client) = datacenter(dir.path()).await;
    actions_flow(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_on_a_postgresql_store() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, client) = datacenter_on(dir.path(), Some(fresh_postgres().await)).await;
    actions_flow(client).await;
}

async fn actions_flow(client: DatacenterClient) {
    let created = client
        .create_component("acme", "shop", &spec("web"), "tester")
        .await
        .unwrap();
    let ev = wait_event(&client, &created.event_id).await;
    assert_eq!(ev.event.status, EventStatus::Succeeded);
    assert_eq!(ev.event.actor, "tester");

    let req = |action| ActionRequest {
        action,
        actor: "tester".into(),
        replicas: None,
        version: None,
    };
    let started = client
        .act("acme", "shop", "web", &req(ActionKind::Start))
        .await
        .unwrap();
    let ev = wait_event(&client, &started.event_id).await;
    assert_eq!(ev.event.status, EventStatus::Succeeded, "{:#?}", ev.lines);
    assert_eq!(
        client
            .component("acme", "shop", "web")
            .await
            .unwrap()
            .status,
        ComponentStatus::Running
    );

    let scaled = client
        .act(
            "acme",
            "shop",
            "web",
            &ActionRequest {
                replicas: Some(2),
                ..req(ActionKind::Scale)
            },
        )
        .await
        .unwrap();
    let ev = wait_event(&client, &scaled.event_id).await;
    assert_eq!(ev.event.status, EventStatus::Succeeded, "{:#?}", ev.lines);
    assert_eq!(
        ev.lines.iter().filter(|l| l.step == "start").count(),
        1,
        "one more replica: {:#?}",
        ev.lines
    );

    // An upload component with nothing uploaded: the build says what to do,
    // and what runs keeps running.
    let built = client
        .act("acme", "shop", "web", &req(ActionKind::Build))
        .await
        .unwrap();
    let ev = wait_event(&client, &built.event_id).await;
    assert_eq!(ev.event.status, EventStatus::Failed);
    assert!(
        ev.event.message.contains("no source uploaded"),
        "{}",
        ev.event.message
    );
    assert_eq!(
        client
            .component("acme", "shop", "web")
            .await
            .unwrap()
            .status,
        ComponentStatus::Running
    );
    // A rollback needs a version that exists: refused up front.
    match client
        .act(
            "acme",
            "shop",
            "web",
            &ActionRequest {
                version: Some("v7".into()),
                ..req(ActionKind::Rollback)
            },
        )
        .await
    {
        Err(ClientError::Api { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }

    let stopped = client
        .act("acme", "shop", "web", &req(ActionKind::Stop))
        .await
        .unwrap();
    assert_eq!(
        wait_event(&client, &stopped.event_id).await.event.status,
        EventStatus::Succeeded
    );
    assert_eq!(
        client
            .component("acme", "shop", "web")
            .await
            .unwrap()
            .status,
        ComponentStatus::Stopped
    );

    let events = client
        .events(
            "acme",
            &EventQuery {
                component: Some("web".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.action).collect();
    assert_eq!(
        kinds,
        vec![
            ActionKind::Stop,
            ActionKind::Build,
            ActionKind::Scale,
            ActionKind::Start,
            ActionKind::Create
        ]
    );

    let deleted = client
        .delete_component("acme", "shop", "web", "tester")
        .await
        .unwrap();
    assert_eq!(
        wait_event(&client, &deleted.event_id).await.event.status,
        EventStatus::Succeeded
    );
    assert!(client.components("acme", None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_cannot_run_fails_its_event_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, client) = datacenter(dir.path()).await;
    let mut s = spec("img");
    s.source = Source::Image {
        image: "nginx:1".into(),
    };
    s.build.run_command = None;
    client
        .create_component("acme", "shop", &s, "tester")
        .await
        .unwrap();
    let started = client
        .act(
            "acme",
            "shop",
            "img",
            &ActionRequest {
                action: ActionKind::Start,
                actor: "t".into(),
                replicas: None,
                version: None,
            },
        )
        .await
        .unwrap();
    let ev = wait_event(&client, &started.event_id).await;
    assert_eq!(ev.event.status, EventStatus::Failed);
    assert!(
        ev.event.message.contains("run command"),
        "{}",
        ev.event.message
    );
    assert_eq!(
        client
            .component("acme", "shop", "img")
            .await
            .unwrap()
            .status,
        ComponentStatus::Abnormal
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_replays_history_then_follows_live_until_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, client) = datacenter(dir.path()).await;
    let created = client
        .create_component("acme", "shop", &spec("web"), "tester")
        .await
        .unwrap();
    // Finished event: history, then closed.
    wait_event(&client, &created.event_id).await;
    let mut rx = client
        .follow(&format!("event:{}", created.event_id), 64)
        .await
        .unwrap();
    let mut seqs = vec![];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
        {
            Some(StreamMessage::Line { line, .. }) => seqs.push(line.seq),
            Some(StreamMessage::Closed { status, .. }) => break status,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(closed, "succeeded");
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());

    // A running event: subscribe first, then watch it happen live.
    let started = client
        .act(
            "acme",
            "shop",
            "web",
            &ActionRequest {
                action: ActionKind::Start,
                actor: "t".into(),
                replicas: None,
                version: None,
            },
        )
        .await
        .unwrap();
    let mut rx = client
        .follow(&format!("event:{}", started.event_id), 64)
        .await
        .unwrap();
    let mut steps = vec![];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
        {
            Some(StreamMessage::Line { line, .. }) => steps.push(line.step),
            Some(StreamMessage::Closed { status, .. }) => {
                assert_eq!(status, "succeeded");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        steps.contains(&"start".to_string()) && steps.last() == Some(&"done".to_string()),
        "{steps:?}"
    );
}

/// A command that keeps crashing is `abnormal` and says how it ends; the
/// supervisor keeps restarting it with growing pauses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_component_is_abnormal_with_its_exit_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, client) = datacenter(dir.path()).await;
    let mut s = spec("crashy");
    s.build.run_command = Some("echo starting; exit 3".into());
    s.health = None;
    client
        .create_component("acme", "shop", &s, "tester")
        .await
        .unwrap();
    let started = client
        .act(
            "acme",
            "shop",
            "crashy",
            &ActionRequest {
                action: ActionKind::Start,
                actor: "t".into(),
                replicas: None,
                version: None,
            },
        )
        .await
        .unwrap();
    wait_event(&client, &started.event_id).await;
    let mut last = None;
    for _ in 0..100 {
        let c = client.component("acme", "shop", "crashy").await.unwrap();
        if c.status == ComponentStatus::Abnormal
            && c.status_message
                .as_deref()
                .is_some_and(|m| m.contains("exit code 3"))
        {
            return;
        }
        last = Some(c);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never abnormal with its exit reason: {last:?}");
}

/// A volume is a directory that outlives replicas and versions, reachable at
/// its mount path inside the working directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_persist_outside_the_replica() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, client) = datacenter(dir.path()).await;
    let mut s = spec("vol");
    s.build.run_command = Some("echo \"$CLOUDPORT_VOLUME_DATA\" > data/where && sleep 600".into());
    s.health = None;
    s.volumes = vec![Volume {
        name: "data".into(),
        mount_path: "/data".into(),
        size_mb: 10,
    }];
    client
        .create_component("acme", "shop", &s, "tester")
        .await
        .unwrap();
    let started = client
        .act(
            "acme",
            "shop",
            "vol",
            &ActionRequest {
                action: ActionKind::Start,
                actor: "t".into(),
                replicas: None,
                version: None,
            },
        )
        .await
        .unwrap();
    let ev = wait_event(&client, &started.event_id).await;
    assert_eq!(ev.event.status, EventStatus::Succeeded, "{:#?}", ev.lines);
    let store = dir.path().join("work/volumes/acme/shop/vol/data");
    let written = std::fs::read_to_string(store.join("where")).unwrap();
    assert_eq!(written.trim(), store.display().to_string());
}

/// A component's output and resource use arrive live on their channels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_and_resource_use_stream_live() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, client) = datacenter(dir.path()).await;
    let mut s = spec("busy");
    s.build.run_command = Some(
        "while :; do echo tick; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; done".into(),
    );
    s.health = None;
    client
        .create_component("acme", "shop", &s, "tester")
        .await
        .unwrap();
    let mut logs = client.follow("logs:acme/shop/busy", 64).await.unwrap();
    let mut metrics = client.follow("metrics:acme/shop/busy", 64).await.unwrap();
    let started = client
        .act(
            "acme",
            "shop",
            "busy",
            &ActionRequest {
                action: ActionKind::Start,
                actor: "t".into(),
                replicas: None,
                version: None,
            },
        )
        .await
        .unwrap();
    wait_event(&client, &started.event_id).await;
    match tokio::time::timeout(Duration::from_secs(10), logs.recv())
        .await
        .unwrap()
    {
        Some(StreamMessage::Line { line, .. }) => {
            assert_eq!(line.message, "tick");
            assert_eq!(
                line.step, "1/-",
                "replica 1, no version (a plain run command)"
            );
        }
        other => panic!("{other:?}"),
    }
    // The first sample only starts the CPU clock; a later one shows the work.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), metrics.recv())
            .await
            .unwrap()
        {
            Some(StreamMessage::Metrics { sample, .. }) => {
                if let Some(r) = sample.replicas.first() {
                    if r.cpu_percent > 10.0 && r.memory_mb > 0.0 {
                        assert_eq!(r.index, 1);
                        break;
                    }
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(std::time::Instant::now() < deadline, "no busy sample");
    }
}

async fn act_and_wait(client: &DatacenterClient, name: &str, action: ActionKind) {
    let accepted = client
        .act(
            "acme",
            "shop",
            name,
            &ActionRequest {
                action,
                actor: "t".into(),
                replicas: None,
                version: None,
            },
        )
        .await
        .unwrap();
    let ev = wait_event(client, &accepted.event_id).await;
    assert_eq!(ev.event.status, EventStatus::Succeeded, "{:#?}", ev.lines);
}

async fn next_line(rx: &mut tokio::sync::mpsc::Receiver<StreamMessage>) -> String {
    match tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
    {
        Some(StreamMessage::Line { line, .. }) => line.message,
        other => panic!("{other:?}"),
    }
}

/// A depends on B: A gets B's address and B's outer variables, and a change
/// of B reaches A when A restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_inject_the_address_and_outer_variables() {
    let dir = tempfile::tempdir().unwrap();
    let (_running, client) = datacenter(dir.path()).await;
    let mut backend = spec("backend");
    backend.env.push(EnvVar {
        name: "DB_NAME".into(),
        value: "shop".into(),
        outer: true,
    });
    client
        .create_component("acme", "shop", &backend, "t")
        .await
        .unwrap();
    act_and_wait(&client, "backend", ActionKind::Start).await;
    let address = client
        .component("acme", "shop", "backend")
        .await
        .unwrap()
        .url
        .expect("a started component has an address");

    let mut front = spec("front");
    front.build.run_command = Some("echo \"link $BACKEND_URL $DB_NAME\"; exec sleep 600".into());
    front.health = None;
    front.dependencies = vec![Dependency {
        app: "shop".into(),
        component: "backend".into(),
    }];
    client
        .create_component("acme", "shop", &front, "t")
        .await
        .unwrap();
    let mut logs = client.follow("logs:acme/shop/front", 64).await.unwrap();
    act_and_wait(&client, "front", ActionKind::Start).await;
    assert_eq!(next_line(&mut logs).await, format!("link {address} shop"));
    // The address answers: it is B's, in front of B's replicas.
    assert!(reqwest::get(&address).await.unwrap().status().is_success());

    backend.env[1].value = "shop2".into();
    let updated = client
        .update_component("acme", "shop", &backend, "t")
        .await
        .unwrap();
    wait_event(&client, &updated.event_id).await;
    act_and_wait(&client, "front", ActionKind::Restart).await;
    assert_eq!(next_line(&mut logs).await, format!("link {address} shop2"));
}

/// `examples/<sample>` as a tar.gz archive under one top-level folder, the
/// way GitHub's archives come.
fn pack_tar_gz(sample: &str) -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(sample);
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    tar.append_dir_all(format!("{sample}-main"), &dir).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

/// `examples/<sample>` as a zip archive, its files at the root.
fn pack_zip(sample: &str) -> Vec<u8> {
    use std::io::Write;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(sample);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(&std::fs::read(entry.path()).unwrap())
            .unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A tar.gz whose second entry climbs out of the folder it is unpacked in.
fn climbing_archive(name: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut ok = tar::Header::new_gnu();
    ok.set_size(6);
    ok.set_mode(0o644);
    tar.append_data(&mut ok, "app.py", &b"print\n"[..]).unwrap();
    // The tar crate refuses to write `..` itself: set the raw name.
    let mut evil = tar::Header::new_old();
    let raw = format!("../../../../{name}");
    evil.as_old_mut().name[..raw.len()].copy_from_slice(raw.as_bytes());
    evil.set_entry_type(tar::EntryType::Regular);
    evil.set_size(5);
    evil.set_mode(0o644);
    evil.set_cksum();
    tar.append(&evil, &b"owned"[..]).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

/// Every file under `dir` whose name is `name`.
fn find_named(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if e.file_name() == name {
                found.push(path.clone());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(path);
            }
        }
    }
    found
}

fn invalid_message(r: Result<DetectedPlan, ClientError>) -> String {
    match r {
        Err(ClientError::Api { status: 422, error }) => {
            assert_eq!(error.error, "invalid", "{error:?}");
            error.message
        }
        other => panic!("expected a 422, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_are_previewed_without_keeping_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (running, client) = datacenter(dir.path()).await;
    let none = BuildSettings::default();

    // python-hello as a tar.gz (its top-level folder stripped, as in a build).
    let plan = client
        .detect_archive(&none, pack_tar_gz("python-hello"))
        .await
        .unwrap();
    assert_eq!(plan.language, "python", "{plan:?}");
    assert_eq!(plan.run_command, "python3 app.py", "{plan:?}");
    assert!(plan.reason.contains("app.py"), "{plan:?}");

    // node-hello as a zip.
    let plan = client
        .detect_archive(&none, pack_zip("node-hello"))
        .await
        .unwrap();
    assert_eq!(plan.language, "node", "{plan:?}");
    assert_eq!(plan.run_command, "npm start", "{plan:?}");

    // The build settings' overrides, as query parameters.
    let overrides = BuildSettings {
        run_command: Some("python3 app.py --preview \"$PORT\" & echo ok".into()),
        build_command: Some("echo built".into()),
        ..Default::default()
    };
    let plan = client
        .detect_archive(&overrides, pack_tar_gz("python-hello"))
        .await
        .unwrap();
    assert_eq!(plan.language, "python");
    assert_eq!(
        plan.run_command, "python3 app.py --preview \"$PORT\" & echo ok",
        "{plan:?}"
    );
    assert!(
        plan.steps
            .iter()
            .any(|s| s.name == "build" && s.command == "echo built"),
        "{plan:?}"
    );
    assert!(
        plan.reason.contains("run command from the build settings"),
        "{plan:?}"
    );
    let plan = client
        .detect_archive(
            &BuildSettings {
                language: Some("static".into()),
                ..Default::default()
            },
            pack_tar_gz("python-hello"),
        )
        .await
        .unwrap();
    assert_eq!(plan.language, "static", "{plan:?}");

    // An entry that climbs out is refused, and nothing lands anywhere.
    let name = format!("climbed-{}.txt", std::process::id());
    let message = invalid_message(client.detect_archive(&none, climbing_archive(&name)).await);
    assert!(message.contains("path traversal"), "{message}");
    assert!(
        find_named(dir.path(), &name).is_empty(),
        "{:?}",
        find_named(dir.path(), &name)
    );
    assert!(!dir.path().parent().unwrap().join(&name).exists());

    // Not an archive, an empty body, nothing the builder knows how to run.
    let message = invalid_message(
        client
            .detect_archive(&none, b"just some text".to_vec())
            .await,
    );
    assert!(message.contains("not a .tar.gz or .zip"), "{message}");
    invalid_message(client.detect_archive(&none, Vec::<u8>::new()).await);
    let mut readme = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    readme.append_data(&mut h, "README", &b"hi\n"[..]).unwrap();
    let readme = readme.into_inner().unwrap().finish().unwrap();
    let message = invalid_message(client.detect_archive(&none, readme).await);
    assert!(message.contains("could not tell how to build"), "{message}");

    // Over the upload limit: 413 as soon as the declared length says so.
    // The head alone is sent: a datacenter that answers and closes while a
    // body is still arriving resets the connection, and the answer is lost.
    let head = format!(
        "POST /v1/detect/archive HTTP/1.1\r\nHost: dc\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        datacenter::client::MAX_UPLOAD + 1024 * 1024
    );
    let answer = raw_exchange(running.addr, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""error":"too_large""#), "{answer}");
    // JSON routes keep their 1 MiB bound, with the same answer.
    let head = format!(
        "POST /v1/teams/acme/apps/shop/components HTTP/1.1\r\nHost: dc\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        2 * 1024 * 1024
    );
    let answer = raw_exchange(running.addr, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""error":"too_large""#), "{answer}");
    let url = format!("http://{}/v1/detect/archive", running.addr);
    let http = reqwest::Client::new();
    // The token is needed here too.
    let resp = http
        .post(&url)
        .header("content-type", "application/octet-stream")
        .body(pack_tar_gz("python-hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);

    // Every preview's scratch folder is gone, refused ones included.
    let work = dir.path().join("builder/work");
    assert!(work.is_dir(), "previews unpack under {}", work.display());
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", work.display());
    // Nothing was stored as an upload either.
    assert!(!dir.path().join("builder/uploads").exists());

    // The route is documented with its overrides.
    let doc: serde_json::Value = reqwest::get(format!("http://{}/v1/openapi.json", running.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let params = doc["paths"]["/v1/detect/archive"]["post"]["parameters"].to_string();
    for p in ["language", "build_command", "run_command"] {
        assert!(params.contains(p), "{p} missing from {params}");
    }
}
