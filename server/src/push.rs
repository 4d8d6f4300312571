//! `cloudport push [DIR] --team T --app A --component C [--datacenter D]`:
//! deploys a folder through a console's REST API. It creates the team, app
//! and component when they are missing, uploads DIR as a tar.gz, follows the
//! build-and-deploy event live, and prints the component's URL as the last
//! line of stdout once it is healthy.
//!
//! Exit codes: 0 deployed and running · 1 the deploy failed (build, start or
//! health check) or timed out · 2 a usage problem on this side (flags,
//! environment, DIR, archive too large) · 3 the console refused a request
//! or could not be reached · 130 interrupted.

use app::model::{Datacenter, EventRef, NewApp, NewTeam, OpenDatacenter, PlacedComponent};
use datacenter::api::{
    percent_encode, ComponentStatus, EventStatus, EventWithLines, Level, LogLine, Source,
    StreamMessage,
};
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The largest archive `push` uploads (compressed).
pub const MAX_ARCHIVE_BYTES: u64 = 100 * 1024 * 1024;

/// Folders never uploaded, wherever they are in the tree.
pub const ALWAYS_IGNORED: &[&str] = &[".git", "node_modules", "target", "__pycache__", ".venv"];

/// The file of extra ignore rules at the top of DIR.
pub const IGNORE_FILE: &str = ".cloudportignore";

/// How often the event is polled when the live log is not available.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// With a live log that says nothing for this long, check the event directly.
const QUIET_CHECK: Duration = Duration::from_secs(30);

/// `cloudport push` flags.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Environment:
  CLOUDPORT_URL    the console's base URL, e.g. http://127.0.0.1:3000
  CLOUDPORT_TOKEN  an API token (create one on the console's API tokens page, /tokens)

Exit codes: 0 running (the URL is the last line of stdout), 1 the deploy failed,
2 usage or local problem, 3 the console refused a request or is unreachable.")]
pub struct PushArgs {
    /// The folder to upload.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Team to deploy into (created if missing).
    #[arg(long)]
    pub team: String,
    /// App of the team (created if missing).
    #[arg(long)]
    pub app: String,
    /// Component of the app (created if missing, built from uploads).
    #[arg(long)]
    pub component: String,
    /// Datacenter for a new component (default: `local`, or the only one available).
    #[arg(long)]
    pub datacenter: Option<String>,
    /// Stop waiting after this many seconds (the deploy itself goes on).
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// Follow the log by polling instead of the WebSocket (for proxies that block WebSockets).
    #[arg(long)]
    pub poll: bool,
}

// ---------------------------------------------------------------- errors

/// Why a push stopped.
#[derive(Debug)]
pub enum PushError {
    /// Something to fix on this side: flags, environment, DIR. Exit 2.
    Usage(String),
    /// The console answered with an error. Exit 3.
    Api {
        request: String,
        status: u16,
        code: Option<String>,
        message: String,
        /// Seconds to wait before trying again (429).
        retry_after: Option<u64>,
    },
    /// The console could not be reached or answered something unexpected. Exit 3.
    Network { request: String, message: String },
    /// The deploy itself failed or did not finish in time. Exit 1.
    Failed(String),
}

impl PushError {
    pub fn exit_code(&self) -> u8 {
        match self {
            PushError::Failed(_) => 1,
            PushError::Usage(_) => 2,
            PushError::Api { .. } | PushError::Network { .. } => 3,
        }
    }

    fn status(&self) -> Option<u16> {
        match self {
            PushError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Worth retrying while polling: the console or its datacenter hiccupped.
    fn is_transient(&self) -> bool {
        match self {
            PushError::Network { .. } => true,
            PushError::Api { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::Usage(m) | PushError::Failed(m) => f.write_str(m),
            PushError::Network { request, message } => {
                write!(f, "{message}\n  ({request})")
            }
            PushError::Api {
                request,
                status,
                code,
                message,
                ..
            } => {
                match status {
                    401 => write!(
                        f,
                        "the console refused CLOUDPORT_TOKEN: {message}\n  \
                         Check that the token is complete and has not been revoked."
                    )?,
                    403 if code.as_deref() == Some("forbidden") => write!(
                        f,
                        "not allowed: {message}\n  \
                         Your token's user needs a role in the team that permits this \
                         (or a read-only token was used)."
                    )?,
                    _ => f.write_str(message)?,
                }
                write!(f, "\n  ({request} → HTTP {status})")
            }
        }
    }
}

impl std::error::Error for PushError {}

type Result<T, E = PushError> = std::result::Result<T, E>;

// ---------------------------------------------------------------- console client

/// A typed client for the console REST API, authenticated with a bearer token.
pub struct ConsoleClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// An error and its causes on one line (reqwest hides the useful part in `source`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

impl ConsoleClient {
    /// `base` is the console's URL (`http://…` or `https://…`).
    pub fn new(base: &str, token: &str) -> Result<ConsoleClient> {
        let base = base.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(PushError::Usage(format!(
                "CLOUDPORT_URL must start with http:// or https:// (it is “{base}”)"
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("cloudport-push/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| PushError::Usage(format!("cannot set up HTTP: {}", chain(&e))))?;
        Ok(ConsoleClient {
            http,
            base,
            token: token.trim().to_string(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The WebSocket hub's URL.
    pub fn ws_url(&self) -> String {
        let rest = self
            .base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("http://")
                    .map(|r| format!("ws://{r}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}/api/v1/ws")
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        timeout: Duration,
        body: Option<(axum::body::Bytes, &'static str)>,
    ) -> Result<reqwest::Response> {
        let request = format!("{method} {path}");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(timeout);
        if let Some((bytes, content_type)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let resp = req.send().await.map_err(|e| PushError::Network {
            request: request.clone(),
            message: if e.is_timeout() {
                format!("the console at {} did not answer in time", self.base)
            } else {
                format!("cannot reach the console at {}: {}", self.base, chain(&e))
            },
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = resp.text().await.unwrap_or_default();
        let (code, message) = match serde_json::from_str::<datacenter::api::ApiError>(&text) {
            Ok(e) => (Some(e.error), e.message),
            Err(_) => {
                let hint = if status.as_u16() == 404 || status.as_u16() == 405 {
                    " — is CLOUDPORT_URL the console's address, and is the console recent enough?"
                } else {
                    ""
                };
                let snippet: String = text.trim().chars().take(200).collect();
                let message = if snippet.is_empty() || snippet.starts_with('<') {
                    format!("the console answered {status} without an error message{hint}")
                } else {
                    format!("the console answered {status}: {snippet}{hint}")
                };
                (None, message)
            }
        };
        Err(PushError::Api {
            request,
            status: status.as_u16(),
            code,
            message,
            retry_after,
        })
    }

    async fn json<T: DeserializeOwned>(&self, request: &str, resp: reqwest::Response) -> Result<T> {
        let bytes = resp.bytes().await.map_err(|e| PushError::Network {
            request: request.to_string(),
            message: format!("the console's answer was cut off: {}", chain(&e)),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| PushError::Network {
            request: request.to_string(),
            message: format!(
                "the console's answer was not understood ({e}) — is CLOUDPORT_URL the console's address?"
            ),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self
            .send(reqwest::Method::GET, path, Duration::from_secs(60), None)
            .await?;
        self.json(&format!("GET {path}"), resp).await
    }

    /// `None` when the console answers 404.
    pub async fn get_optional<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// POSTs JSON; the answer's body (if any) is returned as JSON.
    pub async fn post<B: Serialize>(&self, path: &str, body: &B) -> Result<serde_json::Value> {
        let bytes: axum::body::Bytes = serde_json::to_vec(body)
            .expect("request bodies serialise")
            .into();
        let resp = self
            .send(
                reqwest::Method::POST,
                path,
                Duration::from_secs(60),
                Some((bytes, "application/json")),
            )
            .await?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(serde_json::Value::Null);
        }
        self.json(&format!("POST {path}"), resp).await
    }

    // Typed calls.

    pub fn team_path(team: &str) -> String {
        format!("/api/v1/teams/{}", percent_encode(team))
    }

    pub fn app_path(team: &str, app: &str) -> String {
        format!("{}/apps/{}", Self::team_path(team), percent_encode(app))
    }

    pub fn component_path(team: &str, app: &str, component: &str) -> String {
        format!(
            "{}/components/{}",
            Self::app_path(team, app),
            percent_encode(component)
        )
    }

    pub async fn team_exists(&self, team: &str) -> Result<bool> {
        Ok(self
            .get_optional::<serde_json::Value>(&Self::team_path(team))
            .await?
            .is_some())
    }

    pub async fn create_team(&self, team: &str) -> Result<()> {
        self.post(
            "/api/v1/teams",
            &NewTeam {
                name: team.into(),
                display_name: None,
            },
        )
        .await
        .map(drop)
    }

    pub async fn datacenters(&self) -> Result<Vec<Datacenter>> {
        self.get("/api/v1/datacenters").await
    }

    pub async fn team_datacenters(&self, team: &str) -> Result<Vec<Datacenter>> {
        self.get(&format!("{}/datacenters", Self::team_path(team)))
            .await
    }

    pub async fn open_datacenter(&self, team: &str, datacenter: &str) -> Result<()> {
        self.post(
            &format!("{}/datacenters", Self::team_path(team)),
            &OpenDatacenter {
                datacenter: datacenter.into(),
            },
        )
        .await
        .map(drop)
    }

    pub async fn app_exists(&self, team: &str, app: &str) -> Result<bool> {
        Ok(self
            .get_optional::<serde_json::Value>(&Self::app_path(team, app))
            .await?
            .is_some())
    }

    pub async fn create_app(&self, team: &str, app: &str) -> Result<()> {
        self.post(
            &format!("{}/apps", Self::team_path(team)),
            &NewApp {
                name: app.into(),
                display_name: None,
            },
        )
        .await
        .map(drop)
    }

    pub async fn component(
        &self,
        team: &str,
        app: &str,
        component: &str,
    ) -> Result<Option<PlacedComponent>> {
        self.get_optional(&Self::component_path(team, app, component))
            .await
    }

    pub async fn create_component(
        &self,
        team: &str,
        app: &str,
        datacenter: &str,
        spec: serde_json::Value,
    ) -> Result<EventRef> {
        let path = format!("{}/components", Self::app_path(team, app));
        let body = serde_json::json!({"datacenter": datacenter, "spec": spec});
        let value = self.post(&path, &body).await?;
        serde_json::from_value(value).map_err(|e| PushError::Network {
            request: format!("POST {path}"),
            message: format!("the console's answer was not understood: {e}"),
        })
    }

    /// Uploads a tar.gz as the component's new source; the answer names the
    /// event that builds, deploys and health-checks it.
    pub async fn upload_source(
        &self,
        team: &str,
        app: &str,
        component: &str,
        archive: Vec<u8>,
    ) -> Result<EventRef> {
        let path = format!("{}/source", Self::component_path(team, app, component));
        let archive = axum::body::Bytes::from(archive);
        let mut busy = 0;
        loop {
            let sent = self
                .send(
                    reqwest::Method::PUT,
                    &path,
                    Duration::from_secs(600),
                    Some((archive.clone(), "application/gzip")),
                )
                .await;
            match sent {
                Ok(resp) => return self.json(&format!("PUT {path}"), resp).await,
                // The console takes a bounded number of uploads at once.
                Err(PushError::Api {
                    status: 429,
                    retry_after,
                    ..
                }) if busy < 10 => {
                    busy += 1;
                    let wait = retry_after.unwrap_or(2).clamp(1, 30);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn event(&self, team: &str, datacenter: &str, id: &str) -> Result<EventWithLines> {
        self.get(&format!(
            "{}/events/{}/{}",
            Self::team_path(team),
            percent_encode(datacenter),
            percent_encode(id)
        ))
        .await
    }

    /// Opens the console's WebSocket hub with the bearer token.
    async fn connect_ws(
        &self,
    ) -> std::result::Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        String,
    > {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = self
            .ws_url()
            .into_client_request()
            .map_err(|e| e.to_string())?;
        let auth = http::HeaderValue::from_str(&format!("Bearer {}", self.token))
            .map_err(|_| "the token contains characters a header cannot carry".to_string())?;
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, auth);
        let connect = tokio_tungstenite::connect_async(request);
        match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(e)) => Err(chain(&e)),
            Err(_) => Err("timed out".into()),
        }
    }
}

// ---------------------------------------------------------------- ignore rules

#[derive(Debug, Clone)]
struct Rule {
    glob: String,
    /// Matched against the whole relative path rather than one name.
    anchored: bool,
    /// Only folders match.
    dir_only: bool,
}

/// What `push` leaves out of the archive: [`ALWAYS_IGNORED`] and the lines
/// of `.cloudportignore`.
#[derive(Debug, Clone)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
    /// Lines that could not be used, with the reason (shown as warnings).
    pub warnings: Vec<String>,
}

impl IgnoreRules {
    /// The built-in rules plus `text` in `.cloudportignore` syntax: one glob
    /// per line, `#` comments; `*` and `?` stay inside one path segment, `**`
    /// crosses them; a trailing `/` matches folders only; a pattern with a
    /// `/` (other than a trailing one) is anchored at DIR, one without
    /// matches that name at any depth. Anything under a matched folder is
    /// left out too.
    pub fn parse(text: &str) -> IgnoreRules {
        let mut rules: Vec<Rule> = ALWAYS_IGNORED
            .iter()
            .map(|name| Rule {
                glob: (*name).to_string(),
                anchored: false,
                dir_only: true,
            })
            .collect();
        let mut warnings = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('!') {
                warnings.push(format!(
                    "{IGNORE_FILE} line {}: “!” (re-include) is not supported; line skipped",
                    n + 1
                ));
                continue;
            }
            let mut glob = line.replace('\\', "/");
            let dir_only = glob.ends_with('/');
            while glob.ends_with('/') {
                glob.pop();
            }
            let mut anchored = false;
            while let Some(rest) = glob.strip_prefix('/') {
                glob = rest.to_string();
                anchored = true;
            }
            if let Some(rest) = glob.strip_prefix("./") {
                glob = rest.to_string();
                anchored = true;
            }
            if glob.contains('/') {
                anchored = true;
            }
            if glob.is_empty() {
                continue;
            }
            // `**/name` is the same as `name` at any depth.
            if let Some(rest) = glob.strip_prefix("**/") {
                if !rest.contains('/') {
                    glob = rest.to_string();
                    anchored = false;
                }
            }
            rules.push(Rule {
                glob,
                anchored,
                dir_only,
            });
        }
        IgnoreRules { rules, warnings }
    }

    /// The rules for `dir`: built-in ones plus its `.cloudportignore`, if any.
    pub fn load(dir: &Path) -> std::io::Result<IgnoreRules> {
        match std::fs::read_to_string(dir.join(IGNORE_FILE)) {
            Ok(text) => Ok(IgnoreRules::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(IgnoreRules::parse("")),
            Err(e) => Err(e),
        }
    }

    /// Whether the entry at `rel` (relative to DIR, `/`-separated) is left
    /// out. Folders are asked before their contents, so only the entry
    /// itself is matched here.
    pub fn is_ignored(&self, rel: &str, is_dir: bool) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        self.rules.iter().any(|r| {
            if r.dir_only && !is_dir {
                return false;
            }
            if r.anchored {
                glob_match(&r.glob, rel)
            } else {
                glob_match(&r.glob, name)
            }
        })
    }
}

/// `*` and `?` match within one segment, `**` across segments.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => {
                let rest = &p[2..];
                // `**/` may also match no folder at all.
                if rest.first() == Some(&b'/') && go(&rest[1..], t) {
                    return true;
                }
                (0..=t.len()).any(|i| go(rest, &t[i..]))
            }
            Some(b'*') => {
                let rest = &p[1..];
                for i in 0..=t.len() {
                    if go(rest, &t[i..]) {
                        return true;
                    }
                    if i < t.len() && t[i] == b'/' {
                        break;
                    }
                }
                false
            }
            Some(b'?') => !t.is_empty() && t[0] != b'/' && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

// ---------------------------------------------------------------- packing

/// A packed source folder.
#[derive(Debug)]
pub struct Archive {
    /// tar.gz bytes.
    pub bytes: Vec<u8>,
    /// Regular files and symbolic links in it.
    pub files: usize,
    /// Their size before compression.
    pub raw_bytes: u64,
    pub warnings: Vec<String>,
}

/// A `Vec` that refuses to grow past a limit, so packing a huge folder
/// stops early instead of filling memory.
struct Bounded {
    buf: Vec<u8>,
    limit: u64,
}

const TOO_LARGE: &str = "archive limit reached";

impl Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() as u64 + data.len() as u64 > self.limit {
            return Err(std::io::Error::other(TOO_LARGE));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn is_too_large(e: &std::io::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains(TOO_LARGE) {
            return true;
        }
        cur = err.source();
    }
    false
}

fn human(bytes: u64) -> String {
    if bytes >= 10 * 1024 * 1024 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 10 * 1024 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// Packs `dir` as tar.gz in memory, leaving out what `rules` ignore and
/// refusing archives larger than `limit` bytes.
pub fn pack(dir: &Path, rules: &IgnoreRules, limit: u64) -> Result<Archive> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| PushError::Usage(format!("cannot read {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(PushError::Usage(format!(
            "{} is not a folder",
            dir.display()
        )));
    }
    let encoder = flate2::write::GzEncoder::new(
        Bounded {
            buf: Vec::new(),
            limit,
        },
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(encoder);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    let mut state = PackState {
        files: 0,
        raw: 0,
        largest: Vec::new(),
    };
    let packed = add_dir(&mut tar, dir, "", rules, &mut state)
        .and_then(|()| tar.into_inner())
        .and_then(|gz| gz.finish());
    let too_large = |state: &PackState| {
        let mut largest = state.largest.clone();
        largest.sort_by(|a, b| b.0.cmp(&a.0));
        let list: Vec<String> = largest
            .iter()
            .take(5)
            .map(|(size, path)| format!("    {path} ({})", human(*size)))
            .collect();
        PushError::Usage(format!(
            "{} packs to more than {} (the upload limit).\n  \
             Leave out what the build does not need with a {IGNORE_FILE} file (one glob per line).\n  \
             Largest files:\n{}",
            dir.display(),
            human(limit),
            list.join("\n")
        ))
    };
    let bounded = match packed {
        Ok(b) => b,
        Err(e) if is_too_large(&e) => return Err(too_large(&state)),
        Err(e) => {
            return Err(PushError::Usage(format!(
                "cannot pack {}: {e}",
                dir.display()
            )))
        }
    };
    if state.files == 0 {
        return Err(PushError::Usage(format!(
            "nothing to upload: {} is empty or everything in it is ignored",
            dir.display()
        )));
    }
    Ok(Archive {
        bytes: bounded.buf,
        files: state.files,
        raw_bytes: state.raw,
        warnings: rules.warnings.clone(),
    })
}

struct PackState {
    files: usize,
    raw: u64,
    /// The biggest files seen, for the "too large" message.
    largest: Vec<(u64, String)>,
}

impl PackState {
    fn note(&mut self, size: u64, rel: &str) {
        self.files += 1;
        self.raw += size;
        self.largest.push((size, rel.to_string()));
        if self.largest.len() > 64 {
            self.largest.sort_by(|a, b| b.0.cmp(&a.0));
            self.largest.truncate(8);
        }
    }
}

fn add_dir<W: Write>(
    tar: &mut tar::Builder<W>,
    abs: &Path,
    rel: &str,
    rules: &IgnoreRules,
    state: &mut PackState,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(abs)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(std::io::Error::other(format!(
                "{} has a name that is not UTF-8",
                entry.path().display()
            )));
        };
        let child_rel = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            if rules.is_ignored(&child_rel, true) {
                continue;
            }
            tar.append_dir(&child_rel, &path)?;
            add_dir(tar, &path, &child_rel, rules, state)?;
        } else if kind.is_file() || kind.is_symlink() {
            if rules.is_ignored(&child_rel, false) {
                continue;
            }
            state.note(if kind.is_file() { meta.len() } else { 0 }, &child_rel);
            tar.append_path_with_name(&path, &child_rel)?;
        }
        // Sockets, FIFOs and devices have no place in a source archive.
    }
    Ok(())
}

// ---------------------------------------------------------------- terminal

/// stdout gets the log; stderr gets a one-line progress indicator when it
/// is a terminal. Before anything is printed the indicator is erased, so
/// the two never mix on screen.
struct Terminal {
    spinner: bool,
    color: bool,
    drawn: bool,
    step: String,
    started: Instant,
    frame: usize,
}

const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

impl Terminal {
    fn new() -> Terminal {
        Terminal {
            spinner: std::io::stderr().is_terminal(),
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            drawn: false,
            step: "preparing".into(),
            started: Instant::now(),
            frame: 0,
        }
    }

    fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }

    fn tick(&mut self) {
        if !self.spinner {
            return;
        }
        self.frame = (self.frame + 1) % FRAMES.len();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{} {} · {}s",
            FRAMES[self.frame],
            self.step,
            self.started.elapsed().as_secs()
        );
        let _ = err.flush();
        self.drawn = true;
    }

    fn set_step(&mut self, step: &str) {
        if !step.is_empty() {
            self.step = step.to_string();
        }
    }

    /// A line of the push's own narrative, on stdout.
    fn say(&mut self, text: &str) {
        self.clear();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// A warning, on stderr.
    fn warn(&mut self, text: &str) {
        self.clear();
        eprintln!("warning: {text}");
    }

    /// One line of the event's log: `[step] message`, with `!` after the
    /// step for warnings and errors (a build command's stderr, a failure).
    fn log_line(&mut self, line: &LogLine) {
        self.set_step(&line.step);
        let marked = matches!(line.level, Level::Warn | Level::Error);
        let text = if marked {
            format!("[{}] ! {}", line.step, line.message)
        } else {
            format!("[{}] {}", line.step, line.message)
        };
        if self.color && marked {
            let code = if line.level == Level::Error { 31 } else { 33 };
            self.say(&format!("\x1b[{code}m{text}\x1b[0m"));
        } else {
            self.say(&text);
        }
    }
}

/// Runs `fut` while the progress indicator turns.
async fn with_spinner<F: std::future::Future>(term: &mut Terminal, fut: F) -> F::Output {
    tokio::pin!(fut);
    let mut tick = tokio::time::interval(Duration::from_millis(120));
    loop {
        tokio::select! {
            out = &mut fut => return out,
            _ = tick.tick() => term.tick(),
        }
    }
}

// ---------------------------------------------------------------- the push

/// Where the console is and who is asking, from the environment.
pub fn credentials_from_env() -> Result<(String, String)> {
    let url = std::env::var("CLOUDPORT_URL")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let token = std::env::var("CLOUDPORT_TOKEN")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let mut missing = Vec::new();
    if url.is_none() {
        missing.push(
            "CLOUDPORT_URL is not set: export the console's address, e.g. CLOUDPORT_URL=http://127.0.0.1:3000",
        );
    }
    if token.is_none() {
        missing.push(
            "CLOUDPORT_TOKEN is not set: create an API token on the console's API tokens page (/tokens, \
             or POST /api/v1/tokens) and export CLOUDPORT_TOKEN=<token>",
        );
    }
    match (url, token) {
        (Some(u), Some(t)) => Ok((u, t)),
        _ => Err(PushError::Usage(missing.join("\n"))),
    }
}

/// The spec of a component created by `push`: built from uploads, serving
/// HTTP on port 8080 (the app reads `$PORT`), reachable by other components
/// and through the gateway. Everything else takes the console's defaults.
pub fn default_spec(name: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "source": {"kind": "upload"},
        "ports": [{"port": 8080, "protocol": "http", "inner": true, "outer": true}],
    })
}

/// `git`, `image`, … as the API spells a source's kind.
fn source_kind(source: &Source) -> String {
    serde_json::to_value(source)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
        .unwrap_or_else(|| "another source".into())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

struct Push<'a> {
    client: ConsoleClient,
    args: &'a PushArgs,
    term: Terminal,
}

/// Entry point of `cloudport push`.
pub async fn run(args: PushArgs) -> ExitCode {
    let outcome = tokio::select! {
        r = push(&args) => r,
        _ = tokio::signal::ctrl_c() => {
            if std::io::stderr().is_terminal() {
                eprint!("\r\x1b[2K");
            }
            eprintln!("cloudport push: interrupted; anything already uploaded goes on deploying (see the app's events in the console)");
            return ExitCode::from(130);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloudport push: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn push(args: &PushArgs) -> Result<()> {
    let (url, token) = credentials_from_env()?;
    let client = ConsoleClient::new(&url, &token)?;
    let mut push = Push {
        client,
        args,
        term: Terminal::new(),
    };
    let result = push.go().await;
    push.term.clear();
    result
}

impl Push<'_> {
    async fn go(&mut self) -> Result<()> {
        let args = self.args;
        let (team, app, name) = (
            args.team.as_str(),
            args.app.as_str(),
            args.component.as_str(),
        );

        // Pack first: a folder that cannot be uploaded creates nothing.
        self.term.set_step("packing");
        let dir = self.args.dir.clone();
        let rules = IgnoreRules::load(&dir).map_err(|e| {
            PushError::Usage(format!(
                "cannot read {}: {e}",
                dir.join(IGNORE_FILE).display()
            ))
        })?;
        let archive = with_spinner(
            &mut self.term,
            tokio::task::spawn_blocking(move || pack(&dir, &rules, MAX_ARCHIVE_BYTES)),
        )
        .await
        .map_err(|e| PushError::Usage(format!("packing failed: {e}")))??;
        for w in &archive.warnings {
            self.term.warn(w);
        }

        self.term.set_step("preparing");
        self.ensure_team(team).await?;
        self.ensure_app(team, app).await?;
        let datacenter = self.ensure_component(team, app, name).await?;

        self.term.say(&format!(
            "uploading {} ({} KB)",
            plural(archive.files, "file", "files"),
            (archive.bytes.len() as u64).div_ceil(1024)
        ));
        self.term.set_step("uploading");
        let upload = self.client.upload_source(team, app, name, archive.bytes);
        let event = with_spinner(&mut self.term, upload).await?;
        if event.datacenter != datacenter {
            self.term.warn(&format!(
                "the console placed the build in datacenter {}, not {datacenter}",
                event.datacenter
            ));
        }
        self.term.say(&format!(
            "building and deploying in datacenter {} (event {})",
            event.datacenter, event.event_id
        ));

        let limit = Duration::from_secs(self.args.timeout.max(1));
        let finished = match tokio::time::timeout(limit, self.follow(team, &event)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(PushError::Failed(format!(
                    "still not finished after {}s; the deploy goes on (event {} in datacenter {})",
                    limit.as_secs(),
                    event.event_id,
                    event.datacenter
                )))
            }
        };
        if finished.event.status != EventStatus::Succeeded {
            let message = if finished.event.message.is_empty() {
                finished
                    .lines
                    .last()
                    .map(|l| l.message.clone())
                    .unwrap_or_else(|| "no reason given".into())
            } else {
                finished.event.message.clone()
            };
            self.show_recent_output(team, app, name, finished.event.created_at)
                .await;
            return Err(PushError::Failed(format!(
                "deploy failed: {message}\n  (event {} in datacenter {})",
                event.event_id, event.datacenter
            )));
        }

        let placed = match self.wait_running(team, app, name).await {
            Ok(p) => p,
            Err(e) => {
                self.show_recent_output(team, app, name, finished.event.created_at)
                    .await;
                return Err(e);
            }
        };
        let c = &placed.component;
        let version = c
            .version
            .as_deref()
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default();
        match &c.url {
            Some(url) => {
                self.term.say(&format!(
                    "{team}/{app}/{name} is running in datacenter {}{version}",
                    placed.datacenter
                ));
                // The last line of stdout, for scripts.
                self.term.say(url);
            }
            None => {
                self.term
                    .warn("the component has no URL (it exposes no HTTP port)");
                self.term.say(&format!(
                    "{team}/{app}/{name} is running in datacenter {}{version}",
                    placed.datacenter
                ));
            }
        }
        Ok(())
    }

    async fn ensure_team(&mut self, team: &str) -> Result<()> {
        if self.client.team_exists(team).await? {
            return Ok(());
        }
        self.client.create_team(team).await.map_err(|e| match e {
            PushError::Api { status: 409, .. } => PushError::Usage(format!(
                "team “{team}” exists but your token's user is not a member: ask one of its owners to add you"
            )),
            other => other,
        })?;
        self.term.say(&format!("created team {team}"));
        Ok(())
    }

    async fn ensure_app(&mut self, team: &str, app: &str) -> Result<()> {
        if self.client.app_exists(team, app).await? {
            return Ok(());
        }
        self.client.create_app(team, app).await?;
        self.term.say(&format!("created app {app} in team {team}"));
        Ok(())
    }

    /// The component's datacenter, creating the component (and opening the
    /// datacenter for the team) when it does not exist yet.
    async fn ensure_component(&mut self, team: &str, app: &str, name: &str) -> Result<String> {
        if let Some(placed) = self.client.component(team, app, name).await? {
            if let Some(wanted) = &self.args.datacenter {
                if *wanted != placed.datacenter {
                    return Err(PushError::Usage(format!(
                        "component {name} lives in datacenter {}, not {wanted}: drop --datacenter or pick another component name",
                        placed.datacenter
                    )));
                }
            }
            if placed.component.source != Source::Upload {
                return Err(PushError::Usage(format!(
                    "component {name} is built from a source of kind “{}”, not from uploads: change its source to “upload” in the console, or push to another component",
                    source_kind(&placed.component.source)
                )));
            }
            return Ok(placed.datacenter);
        }

        let team_dcs = self.client.team_datacenters(team).await?;
        let datacenter = match &self.args.datacenter {
            Some(d) => d.clone(),
            None => self.default_datacenter(team, &team_dcs).await?,
        };
        if !team_dcs.iter().any(|d| d.name == datacenter) {
            self.client
                .open_datacenter(team, &datacenter)
                .await
                .map_err(|e| match e {
                    PushError::Api {
                        status: 403,
                        message,
                        ..
                    } => PushError::Usage(format!(
                        "team {team} may not use datacenter {datacenter} yet, and you may not open it ({message}): ask a platform admin to open it for the team"
                    )),
                    PushError::Api {
                        status: 404,
                        message,
                        ..
                    } => PushError::Usage(format!("datacenter {datacenter}: {message}")),
                    other => other,
                })?;
            self.term
                .say(&format!("opened datacenter {datacenter} for team {team}"));
        }

        let created = self
            .client
            .create_component(team, app, &datacenter, default_spec(name))
            .await?;
        self.term.say(&format!(
            "created component {name} in datacenter {datacenter} (HTTP on port 8080, public)"
        ));
        // Let the creation finish before the upload's build starts behind it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match self
                .client
                .event(team, &created.datacenter, &created.event_id)
                .await
            {
                Ok(e) if e.event.status == EventStatus::Failed => {
                    return Err(PushError::Failed(format!(
                        "creating component {name} failed: {}",
                        e.event.message
                    )))
                }
                Ok(e) if e.event.status.is_final() => break,
                Ok(_) => {}
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e),
            }
            with_spinner(
                &mut self.term,
                tokio::time::sleep(Duration::from_millis(200)),
            )
            .await;
        }
        Ok(created.datacenter)
    }

    async fn default_datacenter(&mut self, team: &str, team_dcs: &[Datacenter]) -> Result<String> {
        let all = match self.client.datacenters().await {
            Ok(list) => list,
            Err(e) if e.status() == Some(403) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut names: Vec<String> = all
            .iter()
            .chain(team_dcs.iter())
            .map(|d| d.name.clone())
            .collect();
        names.sort();
        names.dedup();
        if names.iter().any(|n| n == "local") {
            return Ok("local".into());
        }
        if all.len() == 1 {
            return Ok(all[0].name.clone());
        }
        if team_dcs.len() == 1 {
            return Ok(team_dcs[0].name.clone());
        }
        if names.is_empty() {
            return Err(PushError::Usage(format!(
                "no datacenter is available to you: ask a platform admin to open one for team {team}, then pass it with --datacenter"
            )));
        }
        Err(PushError::Usage(format!(
            "several datacenters are available ({}): pick one with --datacenter",
            names.join(", ")
        )))
    }

    /// Follows the event to its end: live over the WebSocket hub, or by
    /// polling when that is not available. Returns the closed event.
    async fn follow(&mut self, team: &str, event: &EventRef) -> Result<EventWithLines> {
        let mut last_seq = 0i64;
        self.term.set_step("queued");
        if !self.args.poll {
            if let Err(reason) = self.follow_live(team, event, &mut last_seq).await {
                self.term.warn(&format!(
                    "live log unavailable ({reason}); polling the event instead"
                ));
            }
        }
        // Either way the event's record has the final word, and any line the
        // live log did not deliver.
        self.poll(team, event, &mut last_seq).await
    }

    fn print_new(&mut self, lines: &[LogLine], last_seq: &mut i64) {
        for line in lines {
            if line.seq > *last_seq {
                *last_seq = line.seq;
                self.term.log_line(line);
            }
        }
    }

    /// `Ok` when the event closed; `Err(reason)` when the live log broke.
    async fn follow_live(
        &mut self,
        team: &str,
        event: &EventRef,
        last_seq: &mut i64,
    ) -> std::result::Result<(), String> {
        let mut ws = with_spinner(&mut self.term, self.client.connect_ws()).await?;
        let subscribe = serde_json::json!({
            "op": "subscribe",
            "team": team,
            "datacenter": event.datacenter,
            "event": event.event_id,
        });
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            subscribe.to_string().into(),
        ))
        .await
        .map_err(|e| chain(&e))?;
        let mut tick = tokio::time::interval(Duration::from_millis(120));
        let mut quiet_since = Instant::now();
        loop {
            let check_at = tokio::time::Instant::from_std(quiet_since + QUIET_CHECK);
            tokio::select! {
                msg = ws.next() => {
                    use tokio_tungstenite::tungstenite::Message;
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(_))) | None => {
                            return Err("the console closed the connection".into())
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Err(chain(&e)),
                    };
                    quiet_since = Instant::now();
                    match serde_json::from_str::<StreamMessage>(&text) {
                        Ok(StreamMessage::Line { line, .. }) => {
                            self.print_new(std::slice::from_ref(&line), last_seq)
                        }
                        Ok(StreamMessage::Skipped { count, .. }) => {
                            self.term.say(&format!("… {count} lines skipped"))
                        }
                        Ok(StreamMessage::Closed { .. }) => {
                            let _ = ws.close(None).await;
                            return Ok(());
                        }
                        Ok(StreamMessage::Error { message, .. }) => return Err(message),
                        // Something newer than this client: not a reason to stop.
                        Ok(StreamMessage::Metrics { .. }) | Err(_) => {}
                    }
                }
                _ = tick.tick() => self.term.tick(),
                _ = tokio::time::sleep_until(check_at) => {
                    // A long silent step, or a connection that died quietly.
                    quiet_since = Instant::now();
                    match self.client.event(team, &event.datacenter, &event.event_id).await {
                        Ok(e) if e.event.status.is_final() => return Ok(()),
                        Ok(_) => {}
                        Err(e) if e.is_transient() => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
        }
    }

    /// Polls the event until it is final, printing lines not shown yet.
    async fn poll(
        &mut self,
        team: &str,
        event: &EventRef,
        last_seq: &mut i64,
    ) -> Result<EventWithLines> {
        let mut failures = 0u32;
        loop {
            let fetch = self.client.event(team, &event.datacenter, &event.event_id);
            match with_spinner(&mut self.term, fetch).await {
                Ok(e) => {
                    failures = 0;
                    self.print_new(&e.lines, last_seq);
                    if e.event.status.is_final() {
                        return Ok(e);
                    }
                }
                Err(e) if e.is_transient() && failures < 20 => failures += 1,
                Err(e) => return Err(e),
            }
            with_spinner(&mut self.term, tokio::time::sleep(POLL_EVERY)).await;
        }
    }

    /// After a failure, what the component itself printed since the push
    /// (a crash message is usually there). Best effort: errors are ignored.
    async fn show_recent_output(&mut self, team: &str, app: &str, name: &str, since: i64) {
        let path = format!(
            "{}/logs?since={since}&limit=20",
            ConsoleClient::component_path(team, app, name)
        );
        let Ok(page) = self.client.get::<datacenter::api::LogPage>(&path).await else {
            return;
        };
        // Replicas are `<replica>/<version>`: show the newest version's lines.
        let version = |step: &str| {
            step.rsplit_once("/v")
                .and_then(|(_, n)| n.parse::<u64>().ok())
        };
        let newest = page.lines.iter().filter_map(|l| version(&l.step)).max();
        let lines: Vec<&LogLine> = page
            .lines
            .iter()
            .filter(|l| newest.is_none() || version(&l.step) == newest)
            .collect();
        if lines.is_empty() {
            return;
        }
        self.term.clear();
        eprintln!("last output of {name}:");
        for line in lines {
            eprintln!("  [{}] {}", line.step, line.message);
        }
    }

    /// The component once its event succeeded; a short grace period covers
    /// a status that lags the event by a moment.
    async fn wait_running(&mut self, team: &str, app: &str, name: &str) -> Result<PlacedComponent> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let placed = self
                .client
                .component(team, app, name)
                .await?
                .ok_or_else(|| {
                    PushError::Failed(format!("component {name} disappeared during the deploy"))
                })?;
            let status = placed.component.status;
            if status == ComponentStatus::Running {
                return Ok(placed);
            }
            let settling = matches!(
                status,
                ComponentStatus::Starting | ComponentStatus::Upgrading | ComponentStatus::Building
            );
            if !settling || Instant::now() >= deadline {
                let why = placed
                    .component
                    .status_message
                    .as_deref()
                    .filter(|m| !m.is_empty())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                return Err(PushError::Failed(format!(
                    "the deploy finished but component {name} is {}{why}",
                    status.as_str()
                )));
            }
            with_spinner(
                &mut self.term,
                tokio::time::sleep(Duration::from_millis(500)),
            )
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_stay_inside_a_segment_unless_doubled() {
        assert!(glob_match("*.log", "debug.log"));
        assert!(!glob_match("*.log", "logs/debug.log"));
        assert!(glob_match("logs/*.log", "logs/debug.log"));
        assert!(glob_match("**/*.log", "a/b/debug.log"));
        assert!(glob_match("**/*.log", "debug.log"));
        assert!(glob_match("data?", "data1"));
        assert!(!glob_match("data?", "data/"));
        assert!(glob_match("build*", "build-output"));
    }

    #[test]
    fn ignore_rules_match_names_anywhere_and_paths_from_the_top() {
        let rules =
            IgnoreRules::parse("# comment\n\n*.log\n/secret.txt\ndist/\ndocs/drafts\n!keep.log\n");
        assert!(rules.is_ignored("a.log", false));
        assert!(rules.is_ignored("deep/down/a.log", false));
        assert!(rules.is_ignored("secret.txt", false));
        assert!(!rules.is_ignored("sub/secret.txt", false));
        assert!(rules.is_ignored("dist", true));
        assert!(rules.is_ignored("web/dist", true));
        assert!(!rules.is_ignored("dist", false));
        assert!(rules.is_ignored("docs/drafts", true));
        assert!(rules.is_ignored("sub/node_modules", true));
        assert!(rules.is_ignored(".git", true));
        assert!(!rules.is_ignored("app.py", false));
        assert_eq!(rules.warnings.len(), 1);
    }

    #[test]
    fn websocket_url_follows_the_console_scheme() {
        let c = ConsoleClient::new("https://console.example/", "t").unwrap();
        assert_eq!(c.ws_url(), "wss://console.example/api/v1/ws");
        let c = ConsoleClient::new("http://127.0.0.1:3000", "t").unwrap();
        assert_eq!(c.ws_url(), "ws://127.0.0.1:3000/api/v1/ws");
        assert!(ConsoleClient::new("console.example", "t").is_err());
    }
}
