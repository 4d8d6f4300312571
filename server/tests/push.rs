//! `cloudport push` and `cloudport serve-static`, run as the real binary:
//! what a user typing them (or a platform running them) relies on.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

fn cloudport() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloudport"));
    cmd.env_remove("CLOUDPORT_URL")
        .env_remove("CLOUDPORT_TOKEN")
        .env_remove("PORT")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run(mut cmd: Command, within: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = tokio::time::timeout(within, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the command did not finish within {within:?}"))
        .expect("run cloudport");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ------------------------------------------------------------ serve-static

struct StaticServer {
    child: tokio::process::Child,
    port: u16,
}

impl StaticServer {
    async fn start(dir: &Path) -> StaticServer {
        let port = free_port();
        let mut cmd = cloudport();
        cmd.arg("serve-static")
            .arg(dir)
            .env("PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd.spawn().expect("start serve-static");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "serve-static did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        StaticServer { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends `GET <target>` byte for byte (HTTP clients normalise `..` away).
    async fn raw_get(&self, target: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        s.write_all(
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, answer)
    }

    /// SIGTERM, then what it printed and how it exited.
    async fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().expect("still running");
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("serve-static exits within 10 s of SIGTERM")
            .unwrap();
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout).await.unwrap();
        }
        (status, stdout)
    }
}

/// `examples/static-site`, or a stand-in with the same page until it exists.
fn static_site() -> (PathBuf, Option<tempfile::TempDir>) {
    let sample = repo_root().join("examples/static-site");
    if sample.join("index.html").is_file() {
        return (sample, None);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>static-site</title><h1>static-site sample</h1>\n",
    )
    .unwrap();
    (dir.path().to_path_buf(), Some(dir))
}

#[tokio::test]
async fn serve_static_serves_index_html_404s_the_rest_logs_requests_and_stops_on_sigterm() {
    let (dir, _keep) = static_site();
    let server = StaticServer::start(&dir).await;

    let home = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    assert!(home.text().await.unwrap().contains("static-site sample"));
    let page = reqwest::get(server.url("/index.html")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let missing = reqwest::get(server.url("/no-such-page")).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let (status, stdout) = server.terminate().await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
    // One line per request, as the platform shows stdout as the app's logs.
    assert!(stdout.lines().any(|l| l == "GET / 200"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l == "GET /index.html 200"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l == "GET /no-such-page 404"),
        "{stdout}"
    );
}

#[tokio::test]
async fn serve_static_never_serves_files_outside_its_folder_nor_lists_folders() {
    let root = tempfile::tempdir().unwrap();
    let site = root.path().join("site");
    std::fs::create_dir_all(site.join("assets")).unwrap();
    std::fs::write(site.join("index.html"), "home").unwrap();
    std::fs::write(site.join("assets/app.css"), "body{}").unwrap();
    std::fs::write(root.path().join("secret.txt"), "TOP-SECRET").unwrap();
    let server = StaticServer::start(&site).await;

    for target in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
    ] {
        let (status, answer) = server.raw_get(target).await;
        assert!(
            !answer.contains("TOP-SECRET"),
            "{target} leaked a file outside the folder"
        );
        assert!(status == 400 || status == 404, "{target} answered {status}");
    }
    // A folder without index.html is not listed.
    let (status, answer) = server.raw_get("/assets/").await;
    assert_eq!(status, 404, "{answer}");
    assert!(!answer.contains("app.css"));
    let css = reqwest::get(server.url("/assets/app.css")).await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    server.terminate().await;
}

#[tokio::test]
async fn serve_static_answers_missing_paths_with_the_sites_404_html() {
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "home").unwrap();
    std::fs::write(site.path().join("404.html"), "<h1>lost?</h1>").unwrap();
    let server = StaticServer::start(site.path()).await;
    let resp = reqwest::get(server.url("/no/such/page")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.text().await.unwrap(), "<h1>lost?</h1>");
    server.terminate().await;
}

#[tokio::test]
async fn serve_static_without_port_exits_with_a_clear_message() {
    let (dir, _keep) = static_site();
    let mut cmd = cloudport();
    cmd.arg("serve-static").arg(&dir);
    let out = run(cmd, Duration::from_secs(20)).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("PORT"), "{}", out.stderr);
}

// ------------------------------------------------------------ push: refusals

fn push_cmd(dir: &Path) -> Command {
    let mut cmd = cloudport();
    cmd.arg("push")
        .arg(dir)
        .args(["--team", "demo", "--app", "hello", "--component", "web"]);
    cmd
}

#[tokio::test]
async fn push_without_cloudport_token_exits_nonzero_and_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), "print('hi')\n").unwrap();
    let mut cmd = push_cmd(dir.path());
    cmd.env("CLOUDPORT_URL", "http://127.0.0.1:9");
    let out = run(cmd, Duration::from_secs(20)).await;
    assert_eq!(out.code, Some(2), "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("CLOUDPORT_TOKEN is not set"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    let mut cmd = push_cmd(dir.path());
    cmd.env("CLOUDPORT_TOKEN", "whatever");
    let out = run(cmd, Duration::from_secs(20)).await;
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("CLOUDPORT_URL is not set"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn push_with_a_bad_token_exits_nonzero_with_the_consoles_message() {
    let c = TestConsole::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), "print('hi')\n").unwrap();
    let mut cmd = push_cmd(dir.path());
    cmd.env("CLOUDPORT_URL", &c.base)
        .env("CLOUDPORT_TOKEN", "cp_not-a-real-token");
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(3), "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("refused CLOUDPORT_TOKEN"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("HTTP 401"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    // Nothing was created with it.
    let admin = c.admin().await;
    let teams: Value = admin
        .get(c.url("/api/v1/teams"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(teams
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["name"] != "demo"));
}

#[tokio::test]
async fn push_to_an_unreachable_console_exits_nonzero_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), "print('hi')\n").unwrap();
    let mut cmd = push_cmd(dir.path());
    cmd.env("CLOUDPORT_URL", format!("http://127.0.0.1:{}", free_port()))
        .env("CLOUDPORT_TOKEN", "anything");
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(3), "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("cannot reach the console"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

// ------------------------------------------------------------ push: packing

fn archive_paths(bytes: &[u8]) -> Vec<String> {
    let mut gz = flate2::read::GzDecoder::new(bytes);
    let mut raw = Vec::new();
    gz.read_to_end(&mut raw).unwrap();
    let mut archive = tar::Archive::new(raw.as_slice());
    let mut paths: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            p.trim_end_matches('/').to_string()
        })
        .collect();
    paths.sort();
    paths
}

#[test]
fn push_leaves_out_vcs_dependency_folders_and_cloudportignore_matches() {
    use server::push::{pack, IgnoreRules, MAX_ARCHIVE_BYTES};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for folder in [
        ".git/objects",
        "node_modules/left-pad",
        "web/node_modules/x",
        "target/release",
        "pkg/__pycache__",
        ".venv/bin",
        "logs",
        "static/css",
    ] {
        std::fs::create_dir_all(d.join(folder)).unwrap();
    }
    for file in [
        ".git/HEAD",
        "node_modules/left-pad/index.js",
        "web/node_modules/x/y.js",
        "target/release/app",
        "pkg/__pycache__/m.pyc",
        ".venv/bin/python",
        "logs/today.log",
        "debug.log",
        "secrets.env",
        "app.py",
        "requirements.txt",
        "pkg/m.py",
        "static/css/site.css",
        "static/secrets.env",
    ] {
        std::fs::write(d.join(file), file).unwrap();
    }
    std::fs::write(
        d.join(".cloudportignore"),
        "# local only\n*.log\n/secrets.env\nlogs/\n",
    )
    .unwrap();
    let rules = IgnoreRules::load(d).unwrap();
    let archive = pack(d, &rules, MAX_ARCHIVE_BYTES).unwrap();
    assert_eq!(
        archive_paths(&archive.bytes),
        vec![
            ".cloudportignore",
            "app.py",
            "pkg",
            "pkg/m.py",
            "requirements.txt",
            "static",
            "static/css",
            "static/css/site.css",
            "static/secrets.env",
            "web",
        ]
    );
    assert_eq!(archive.files, 6);
}

#[test]
fn push_refuses_a_folder_that_packs_larger_than_the_limit() {
    use server::push::{pack, IgnoreRules, PushError};
    let dir = tempfile::tempdir().unwrap();
    // Random bytes do not compress: 256 KiB stays about 256 KiB.
    let mut noise = vec![0u8; 256 * 1024];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(dir.path().join("big.bin"), &noise).unwrap();
    std::fs::write(dir.path().join("app.py"), "print('hi')\n").unwrap();
    let err = pack(dir.path(), &IgnoreRules::parse(""), 64 * 1024).unwrap_err();
    assert!(matches!(err, PushError::Usage(_)), "{err:?}");
    assert_eq!(err.exit_code(), 2);
    let text = err.to_string();
    assert!(text.contains("the upload limit"), "{text}");
    assert!(text.contains("big.bin"), "{text}");
}

// ------------------------------------------------------------ push: the whole way

async fn api_token(c: &TestConsole) -> String {
    let admin = c.admin().await;
    let resp = admin
        .post(c.url("/api/v1/tokens"))
        .json(&json!({"name": "push"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(resp).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_of_python_hello_creates_everything_and_prints_a_url_that_serves_it() {
    let sample = repo_root().join("examples/python-hello");
    assert!(
        sample.join("app.py").is_file(),
        "examples/python-hello/app.py is missing"
    );
    let c =
        TestConsole::start_with(Backend::Sqlite, |cfg| cfg.no_embedded_datacenter = false).await;
    let token = api_token(&c).await;

    let mut cmd = push_cmd(&sample);
    cmd.env("CLOUDPORT_URL", &c.base)
        .env("CLOUDPORT_TOKEN", &token);
    let out = run(cmd, Duration::from_secs(300)).await;
    assert_eq!(
        out.code,
        Some(0),
        "push failed\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout,
        out.stderr
    );
    eprintln!(
        "--- push stdout\n{}--- push stderr\n{}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("created team demo"), "{}", out.stdout);
    assert!(out.stdout.contains("uploading "), "{}", out.stdout);
    // The build log was streamed as `[step] message` lines.
    assert!(
        out.stdout.lines().any(|l| l.starts_with('[')),
        "{}",
        out.stdout
    );
    let url = out.stdout.lines().last().unwrap().trim().to_string();
    assert!(
        url.starts_with("http://") || url.starts_with("https://"),
        "last line is not a URL: {url:?}"
    );
    let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(
        body.contains("python-hello sample"),
        "{url} answered {body:?}"
    );

    // The console agrees: the component is running at that URL.
    let admin = c.admin().await;
    let placed: Value = admin
        .get(c.url("/api/v1/teams/demo/apps/hello/components/web"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(placed["component"]["status"], "running", "{placed}");
    assert_eq!(placed["component"]["url"], url.as_str());

    // A second push reuses what exists and deploys again; `--poll` follows
    // the log the way push does when WebSockets are blocked.
    let mut cmd = push_cmd(&sample);
    cmd.arg("--poll")
        .env("CLOUDPORT_URL", &c.base)
        .env("CLOUDPORT_TOKEN", &token);
    let again = run(cmd, Duration::from_secs(300)).await;
    assert_eq!(again.code, Some(0), "{}\n{}", again.stdout, again.stderr);
    assert!(!again.stdout.contains("created"), "{}", again.stdout);
    assert!(
        again.stdout.lines().any(|l| l.starts_with('[')),
        "{}",
        again.stdout
    );
    let url2 = again.stdout.lines().last().unwrap().trim().to_string();
    let body = reqwest::get(&url2).await.unwrap().text().await.unwrap();
    assert!(body.contains("python-hello sample"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_of_a_folder_the_builder_cannot_build_exits_1_with_the_reason() {
    let c =
        TestConsole::start_with(Backend::Sqlite, |cfg| cfg.no_embedded_datacenter = false).await;
    let token = api_token(&c).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not an app\n").unwrap();
    let mut cmd = push_cmd(dir.path());
    cmd.env("CLOUDPORT_URL", &c.base)
        .env("CLOUDPORT_TOKEN", &token);
    let out = run(cmd, Duration::from_secs(120)).await;
    assert_eq!(
        out.code,
        Some(1),
        "--- stdout\n{}\n--- stderr\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stderr.contains("deploy failed: "), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let last = out.stdout.lines().last().unwrap_or("");
    assert!(
        !last.starts_with("http"),
        "a failed push printed a URL: {last}"
    );
}

#[tokio::test]
async fn push_as_a_team_viewer_exits_3_with_the_consoles_refusal() {
    let c = TestConsole::start(Backend::Sqlite).await;
    let admin = c.admin().await;
    let resp = admin
        .post(c.url("/api/v1/teams"))
        .json(&json!({"name": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    c.create_user(&admin, "vera").await;
    let resp = admin
        .post(c.url("/api/v1/teams/demo/members"))
        .json(&json!({"username": "vera", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let vera = c.login("vera", PASSWORD).await;
    let (status, body) = status_and_json(
        vera.post(c.url("/api/v1/tokens"))
            .json(&json!({"name": "push"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), "print('hi')\n").unwrap();
    let mut cmd = push_cmd(dir.path());
    cmd.env("CLOUDPORT_URL", &c.base)
        .env("CLOUDPORT_TOKEN", body["token"].as_str().unwrap());
    let out = run(cmd, Duration::from_secs(30)).await;
    assert_eq!(out.code, Some(3), "stderr: {}", out.stderr);
    assert!(out.stderr.contains("not allowed"), "{}", out.stderr);
    assert!(out.stderr.contains("HTTP 403"), "{}", out.stderr);
}
