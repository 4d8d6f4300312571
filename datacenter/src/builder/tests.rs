//! Whole builds with real commands: uploads and git sources, the samples,
//! the dependency cache, failures and the timeout.

use super::*;
use crate::api::{ActionKind, Level, LogLine};
use crate::logs::hub::Hub;
use crate::store::events::EventStore;
use crate::store::{Db, MIGRATIONS};
use std::io::{Read as _, Write as _};

struct Fixture {
    tmp: tempfile::TempDir,
    events: EventStore,
    hub: Arc<Hub>,
}

impl Fixture {
    async fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(None, &tmp.path().join("events.db"), &MIGRATIONS)
            .await
            .unwrap();
        Fixture {
            tmp,
            events: EventStore::new(db),
            hub: Arc::new(Hub::default()),
        }
    }

    fn builder(&self, timeout: Duration, max_parallel: usize) -> Builder {
        Builder::new(BuilderConfig {
            root: self.tmp.path().join("builder"),
            static_server: "'/nonexistent/cloudport' serve-static".into(),
            runtime_kind: "local".into(),
            timeout,
            max_parallel,
        })
    }

    async fn log(&self, key: &Key) -> EventLog {
        let id = format!("ev{:016x}", rand::random::<u64>());
        self.events
            .create(
                &id,
                &key.team,
                &key.app,
                &key.name,
                ActionKind::Build,
                "test",
            )
            .await
            .unwrap();
        EventLog::open(&id, self.events.clone(), self.hub.clone())
            .await
            .unwrap()
    }

    async fn lines(&self, log: &EventLog) -> Vec<LogLine> {
        self.events.lines(&log.event_id, 0).await.unwrap()
    }
}

fn key(name: &str) -> Key {
    Key {
        team: "team".into(),
        app: "app".into(),
        name: name.into(),
    }
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// A tar.gz of `dir` under a top-level folder, like GitHub's archives.
fn tar_gz_of(dir: &Path, top: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    b.append_dir_all(top, dir).unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

fn has_line(lines: &[LogLine], step: &str, needle: &str) -> bool {
    lines
        .iter()
        .any(|l| l.step == step && l.message.contains(needle))
}

fn dump(lines: &[LogLine]) -> String {
    lines
        .iter()
        .map(|l| format!("[{}] {:?} {}", l.step, l.level, l.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs an artifact as a replica would and returns the body of `GET /`.
async fn serve_and_get(out: &BuildOutput, env: &[(&str, &str)]) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut path: Vec<String> = out
        .path_prepend
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    path.push(std::env::var("PATH").unwrap());
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&out.plan.run_command)
        .current_dir(&out.artifact)
        .env_clear()
        .env("PATH", path.join(":"))
        .env("HOME", &out.artifact)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let pgid = child.id().unwrap() as i32;
    let mut body = None;
    for _ in 0..100 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut resp = String::new();
            s.read_to_string(&mut resp).unwrap();
            body = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    command::kill_group(pgid);
    let _ = child.kill().await;
    body.expect("the app never answered")
}

#[tokio::test]
async fn builds_python_hello_from_an_upload() {
    let f = Fixture::new().await;
    let b = f.builder(Duration::from_secs(300), 2);
    let k = key("hello");
    assert!(!b.has_upload(&k));
    b.store_upload(&k, &tar_gz_of(&sample("python-hello"), "python-hello-main"))
        .await
        .unwrap();
    assert!(b.has_upload(&k));

    let preview = b
        .detect(Some(&k), &SourceInput::Upload, &BuildSettings::default())
        .await
        .unwrap();
    assert_eq!(preview.language, "python");

    let log = f.log(&k).await;
    let out = b
        .build(
            &k,
            "v1",
            &SourceInput::Upload,
            &BuildSettings::default(),
            &log,
        )
        .await
        .unwrap();
    let lines = f.lines(&log).await;
    assert_eq!(
        out.artifact,
        f.tmp.path().join("builder/artifacts/team/app/hello/v1")
    );
    assert!(out.artifact.join("app.py").is_file(), "top folder stripped");
    assert_eq!(out.plan.run_command, "python3 app.py");
    assert!(out.path_prepend.is_empty());
    assert!(out.source.starts_with("upload ("), "{}", out.source);
    assert!(!out.cache_hit);
    for step in ["fetch", "detect", "package"] {
        assert!(
            lines.iter().any(|l| l.step == step),
            "no {step} line:\n{}",
            dump(&lines)
        );
    }
    assert!(has_line(&lines, "fetch", "stripped"), "{}", dump(&lines));
    assert!(has_line(&lines, "detect", "python"));
    assert!(
        lines.iter().all(|l| l.level != Level::Error),
        "{}",
        dump(&lines)
    );

    let body = serve_and_get(&out, &[("GREETING", "hi there")]).await;
    assert!(body.contains("python-hello sample"), "{body}");
    assert!(body.contains("hi there"), "{body}");

    // Versions are immutable.
    let again = b
        .build(
            &k,
            "v1",
            &SourceInput::Upload,
            &BuildSettings::default(),
            &f.log(&k).await,
        )
        .await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");

    // Nothing is left in the scratch area once the build is over.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let work = f.tmp.path().join("builder/work");
    assert_eq!(fs::read_dir(&work).map(|d| d.count()).unwrap_or(0), 0);

    b.remove(&k);
    assert!(!b.has_upload(&k));
    assert!(!out.artifact.exists());
}

#[tokio::test]
async fn python_deps_second_build_is_a_cache_hit() {
    let f = Fixture::new().await;
    let b = f.builder(Duration::from_secs(600), 2);
    let k = key("deps");
    b.store_upload(&k, &tar_gz_of(&sample("python-deps"), "python-deps"))
        .await
        .unwrap();

    let log1 = f.log(&k).await;
    let first = b
        .build(
            &k,
            "v1",
            &SourceInput::Upload,
            &BuildSettings::default(),
            &log1,
        )
        .await;
    let lines1 = f.lines(&log1).await;
    let first = first.unwrap_or_else(|e| panic!("{e}\n{}", dump(&lines1)));
    assert!(!first.cache_hit);
    assert!(
        has_line(&lines1, "install", "installing dependencies"),
        "{}",
        dump(&lines1)
    );
    assert!(
        has_line(&lines1, "install", "$ python3 -m venv"),
        "{}",
        dump(&lines1)
    );
    // pip's own output streamed under the step.
    assert!(has_line(&lines1, "install", "six"), "{}", dump(&lines1));
    assert_eq!(first.path_prepend.len(), 1);
    let venv_bin = first.path_prepend[0].clone();
    assert!(venv_bin.starts_with(f.tmp.path().join("builder/cache/team/app/deps")));
    assert!(venv_bin.join("python3").exists());

    let body = serve_and_get(&first, &[]).await;
    assert!(body.contains("python-deps sample (six 1.16.0)"), "{body}");

    let log2 = f.log(&k).await;
    let second = b
        .build(
            &k,
            "v2",
            &SourceInput::Upload,
            &BuildSettings::default(),
            &log2,
        )
        .await;
    let lines2 = f.lines(&log2).await;
    let second = second.unwrap_or_else(|e| panic!("{e}\n{}", dump(&lines2)));
    assert!(second.cache_hit);
    assert!(
        has_line(&lines2, "install", "dependencies from cache"),
        "{}",
        dump(&lines2)
    );
    assert!(!has_line(&lines2, "install", "installing dependencies"));
    assert!(
        !lines2.iter().any(|l| l.message.starts_with("$ ")),
        "no command ran:\n{}",
        dump(&lines2)
    );
    assert_eq!(second.path_prepend, vec![venv_bin]);
    let body = serve_and_get(&second, &[]).await;
    assert!(body.contains("python-deps sample"), "{body}");

    // Changed requirements: a new venv, installed afresh.
    let changed = f.tmp.path().join("changed");
    fs::create_dir_all(&changed).unwrap();
    fs::copy(sample("python-deps/app.py"), changed.join("app.py")).unwrap();
    fs::write(
        changed.join("requirements.txt"),
        "six==1.16.0\n# a comment changes the hash\n",
    )
    .unwrap();
    b.store_upload(&k, &tar_gz_of(&changed, "x")).await.unwrap();
    let log3 = f.log(&k).await;
    let third = b
        .build(
            &k,
            "v3",
            &SourceInput::Upload,
            &BuildSettings::default(),
            &log3,
        )
        .await
        .unwrap();
    assert!(!third.cache_hit);
    assert_ne!(third.path_prepend, second.path_prepend);
    // v1 and v2 still run with the first venv: it is kept.
    assert!(second.path_prepend[0].join("python3").exists());
}

#[tokio::test]
async fn node_modules_come_from_the_cache_on_rebuild() {
    if !command::on_path("npm") {
        return;
    }
    let f = Fixture::new().await;
    let b = f.builder(Duration::from_secs(300), 2);
    let k = key("node");
    // A local `file:` dependency: npm installs it without a registry.
    let src = f.tmp.path().join("node-src");
    fs::create_dir_all(src.join("greet")).unwrap();
    fs::write(
        src.join("package.json"),
        r#"{"name":"n","version":"1.0.0","dependencies":{"greet":"file:./greet"},"scripts":{"start":"node server.js"}}"#,
    )
    .unwrap();
    fs::write(
        src.join("greet/package.json"),
        r#"{"name":"greet","version":"1.0.0","main":"index.js"}"#,
    )
    .unwrap();
    fs::write(
        src.join("greet/index.js"),
        "module.exports = () => 'node-deps sample';\n",
    )
    .unwrap();
    fs::write(
        src.join("server.js"),
        "require('http').createServer((q, r) => r.end(require('greet')())).listen(process.env.PORT);\n",
    )
    .unwrap();
    b.store_upload(&k, &tar_gz_of(&src, "n")).await.unwrap();

    let log1 = f.log(&k).await;
    let r = b
        .build(
            &k,
            "v1",
            &SourceInput::Upload,
            &BuildSettings::default(),
            &log1,
        )
        .await;
    let lines1 = f.lines(&log1).await;
    let first = r.unwrap_or_else(|e| panic!("{e}\n{}", dump(&lines1)));
    assert!(!first.cache_hit);
    assert!(
        has_line(&lines1, "install", "$ npm install"),
        "{}",
        dump(&lines1)
    );

    let log2 = f.log(&k).await;
    let second = b
        .build(
            &k,
            "v2",
            &SourceInput::Upload,
            &BuildSettings::default(),
            &log2,
        )
        .await
        .unwrap();
    let lines2 = f.lines(&log2).await;
    assert!(second.cache_hit);
    assert!(
        has_line(&lines2, "install", "dependencies from cache"),
        "{}",
        dump(&lines2)
    );
    assert!(!has_line(&lines2, "install", "$ npm"));
    assert!(second.artifact.join("node_modules/greet").exists());
    let body = serve_and_get(&second, &[]).await;
    assert!(body.contains("node-deps sample"), "{body}");
}

#[tokio::test]
async fn builds_the_node_sample_without_installing() {
    if !command::on_path("npm") {
        return;
    }
    let f = Fixture::new().await;
    let b = f.builder(Duration::from_secs(300), 2);
    let k = key("nodehello");
    b.store_upload(&k, &tar_gz_of(&sample("node-hello"), "node-hello"))
        .await
        .unwrap();
    let log = f.log(&k).await;
    let out = b
        .build(
            &k,
            "v1",
            &SourceInput::Upload,
            &BuildSettings::default(),
            &log,
        )
        .await
        .unwrap();
    assert_eq!(out.plan.run_command, "npm start");
    assert!(out.plan.steps.is_empty());
    let body = serve_and_get(&out, &[]).await;
    assert!(body.contains("node-hello sample"), "{body}");
}

#[tokio::test]
async fn builds_from_a_git_repository() {
    let f = Fixture::new().await;
    let b = f.builder(Duration::from_secs(300), 2);
    let repo = f.tmp.path().join("repo");
    fs::create_dir_all(&repo).unwrap();
    let (_, second) = source::tests::make_repo(&repo);
    let url = format!("file://{}", repo.display());
    let k = key("site");
    let git = SourceInput::Git {
        url: url.clone(),
        reference: "main".into(),
    };
    let plan = b
        .detect(None, &git, &BuildSettings::default())
        .await
        .unwrap();
    assert_eq!(plan.language, "static");
    assert_eq!(plan.run_command, "'/nonexistent/cloudport' serve-static .");

    let log = f.log(&k).await;
    let out = b
        .build(&k, "v1", &git, &BuildSettings::default(), &log)
        .await
        .unwrap();
    assert_eq!(out.source, format!("git {url} @ main ({})", &second[..7]));
    assert_eq!(
        fs::read_to_string(out.artifact.join("index.html")).unwrap(),
        "second"
    );
    assert!(!out.artifact.join(".git").exists());
    let lines = f.lines(&log).await;
    assert!(has_line(&lines, "fetch", &second[..7]), "{}", dump(&lines));

    let bad = SourceInput::Git {
        url: "ext::sh -c id".into(),
        reference: "main".into(),
    };
    let log = f.log(&k).await;
    let r = b
        .build(&k, "v2", &bad, &BuildSettings::default(), &log)
        .await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    assert!(has_line(&f.lines(&log).await, "fetch", "not allowed"));
}

#[tokio::test]
async fn a_failed_step_is_invalid_and_names_step_and_status() {
    let f = Fixture::new().await;
    let b = f.builder(Duration::from_secs(300), 2);
    let k = key("broken");
    let src = f.tmp.path().join("broken-src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("index.html"), "x").unwrap();
    fs::write(
        src.join("cloudport.yaml"),
        "build: echo compiling; echo oops >&2; exit 7\n",
    )
    .unwrap();
    b.store_upload(&k, &tar_gz_of(&src, "s")).await.unwrap();
    let log = f.log(&k).await;
    let r = b
        .build(
            &k,
            "v1",
            &SourceInput::Upload,
            &BuildSettings::default(),
            &log,
        )
        .await;
    let lines = f.lines(&log).await;
    match r {
        Err(Error::Invalid(m)) => {
            let m = m.join(" ");
            assert!(
                m.contains("step build failed") && m.contains("exit status 7"),
                "{m}"
            );
            assert!(m.contains("oops"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(has_line(&lines, "build", "compiling"), "{}", dump(&lines));
    assert!(has_line(&lines, "build", "oops"), "stderr streamed too");
    assert!(lines
        .iter()
        .any(|l| l.level == Level::Error && l.step == "build"));
    assert!(!f
        .tmp
        .path()
        .join("builder/artifacts/team/app/broken/v1")
        .exists());

    // A Dockerfile cannot run on the local runtime: said plainly.
    let k = key("docker");
    let src = f.tmp.path().join("docker-src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("Dockerfile"), "FROM scratch\n").unwrap();
    b.store_upload(&k, &tar_gz_of(&src, "d")).await.unwrap();
    let log = f.log(&k).await;
    match b
        .build(
            &k,
            "v1",
            &SourceInput::Upload,
            &BuildSettings::default(),
            &log,
        )
        .await
    {
        Err(Error::Invalid(m)) => assert_eq!(m, vec![detect::DOCKERFILE_ON_LOCAL.to_string()]),
        other => panic!("{other:?}"),
    }

    // No upload yet.
    let log = f.log(&key("none")).await;
    let r = b
        .build(
            &key("none"),
            "v1",
            &SourceInput::Upload,
            &BuildSettings::default(),
            &log,
        )
        .await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    // Bad path segments never reach the filesystem.
    let r = b
        .build(
            &k,
            "../v1",
            &SourceInput::Upload,
            &BuildSettings::default(),
            &log,
        )
        .await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
}

#[tokio::test]
async fn timeout_kills_the_whole_build() {
    let f = Fixture::new().await;
    let b = f.builder(Duration::from_secs(2), 2);
    let k = key("slow");
    let pidfile = f.tmp.path().join("slow.pid");
    let src = f.tmp.path().join("slow-src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("index.html"), "x").unwrap();
    b.store_upload(&k, &tar_gz_of(&src, "s")).await.unwrap();
    let settings = BuildSettings {
        build_command: Some(format!(
            "sleep 120 & echo $! > {}; echo started; wait",
            pidfile.display()
        )),
        ..Default::default()
    };
    let log = f.log(&k).await;
    let started = std::time::Instant::now();
    let r = b
        .build(&k, "v1", &SourceInput::Upload, &settings, &log)
        .await;
    assert!(started.elapsed() < Duration::from_secs(30));
    match r {
        Err(Error::Invalid(m)) => assert!(m[0].contains("timed out after 2s"), "{m:?}"),
        other => panic!("{other:?}"),
    }
    let lines = f.lines(&log).await;
    assert!(has_line(&lines, "build", "started"), "{}", dump(&lines));
    assert!(has_line(&lines, "build", "timed out"), "{}", dump(&lines));
    let pid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut gone = false;
    for _ in 0..50 {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the build's background sleep survived the timeout");
}

#[tokio::test]
async fn builds_wait_for_a_free_slot() {
    let f = Fixture::new().await;
    let b = Arc::new(f.builder(Duration::from_secs(120), 1));
    let src = f.tmp.path().join("slot-src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("index.html"), "x").unwrap();
    fs::write(src.join("cloudport.yaml"), "build: sleep 1\n").unwrap();
    let archive = tar_gz_of(&src, "s");
    let (k1, k2) = (key("one"), key("two"));
    b.store_upload(&k1, &archive).await.unwrap();
    b.store_upload(&k2, &archive).await.unwrap();
    let (l1, l2) = (f.log(&k1).await, f.log(&k2).await);
    let s = BuildSettings::default();
    let (r1, r2) = tokio::join!(
        b.build(&k1, "v1", &SourceInput::Upload, &s, &l1),
        b.build(&k2, "v1", &SourceInput::Upload, &s, &l2),
    );
    r1.unwrap();
    r2.unwrap();
    let waited = [&l1, &l2];
    let mut count = 0;
    for l in waited {
        if has_line(&f.lines(l).await, "queue", "waiting for a free build slot") {
            count += 1;
        }
    }
    assert_eq!(count, 1);
}
