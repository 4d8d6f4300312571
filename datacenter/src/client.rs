//! Typed async client of the datacenter API, used by the console.

use crate::api::*;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("datacenter unreachable: {0}")]
    Unreachable(String),
    #[error("{}", .error.message)]
    Api { status: u16, error: ApiError },
    #[error("unexpected answer from the datacenter: {0}")]
    Decode(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// The largest source archive a datacenter takes (100 MiB).
pub const MAX_UPLOAD: usize = 100 * 1024 * 1024;

/// The request headers of a push webhook the datacenter reads (signatures
/// and event kinds of GitHub, Gitea and GitLab); no other header is passed on.
pub const WEBHOOK_HEADERS: [&str; 6] = [
    "X-Hub-Signature-256",
    "X-Gitea-Signature",
    "X-Gitlab-Token",
    "X-GitHub-Event",
    "X-Gitea-Event",
    "X-Gitlab-Event",
];

/// Uploads may be large; they get more time than the client's default.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);
/// Detection may clone a repository.
const DETECT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
pub struct DatacenterClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl DatacenterClient {
    pub fn new(base_url: &str, token: &str, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .expect("HTTP client");
        DatacenterClient {
            base: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        if !status.is_success() {
            let error = serde_json::from_slice::<ApiError>(&bytes).unwrap_or_else(|_| ApiError {
                error: "http".into(),
                message: format!("the datacenter answered {status}"),
            });
            return Err(ClientError::Api {
                status: status.as_u16(),
                error,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn component_url(&self, team: &str, app: &str, name: &str) -> String {
        self.url(&format!("/v1/teams/{team}/apps/{app}/components/{name}"))
    }

    pub async fn info(&self) -> Result<DatacenterInfo> {
        self.send(self.http.get(self.url("/v1/info"))).await
    }

    pub async fn components(&self, team: &str, app: Option<&str>) -> Result<Vec<Component>> {
        let mut req = self
            .http
            .get(self.url(&format!("/v1/teams/{team}/components")));
        if let Some(app) = app {
            req = req.query(&[("app", app)]);
        }
        self.send(req).await
    }

    pub async fn component(&self, team: &str, app: &str, name: &str) -> Result<Component> {
        self.send(self.http.get(self.component_url(team, app, name)))
            .await
    }

    pub async fn create_component(
        &self,
        team: &str,
        app: &str,
        spec: &ComponentSpec,
        actor: &str,
    ) -> Result<ComponentCreated> {
        let req = self
            .http
            .post(self.url(&format!("/v1/teams/{team}/apps/{app}/components")))
            .query(&[("actor", actor)])
            .json(spec);
        self.send(req).await
    }

    pub async fn update_component(
        &self,
        team: &str,
        app: &str,
        spec: &ComponentSpec,
        actor: &str,
    ) -> Result<ComponentCreated> {
        let req = self
            .http
            .put(self.component_url(team, app, &spec.name))
            .query(&[("actor", actor)])
            .json(spec);
        self.send(req).await
    }

    pub async fn delete_component(
        &self,
        team: &str,
        app: &str,
        name: &str,
        actor: &str,
    ) -> Result<Accepted> {
        self.send(
            self.http
                .delete(self.component_url(team, app, name))
                .query(&[("actor", actor)]),
        )
        .await
    }

    pub async fn act(
        &self,
        team: &str,
        app: &str,
        name: &str,
        req: &ActionRequest,
    ) -> Result<Accepted> {
        self.send(
            self.http
                .post(format!("{}/actions", self.component_url(team, app, name)))
                .json(req),
        )
        .await
    }

    pub async fn events(&self, team: &str, q: &EventQuery) -> Result<Vec<Event>> {
        let mut req = self.http.get(self.url(&format!("/v1/teams/{team}/events")));
        if let Some(a) = &q.app {
            req = req.query(&[("app", a)]);
        }
        if let Some(c) = &q.component {
            req = req.query(&[("component", c)]);
        }
        if let Some(l) = q.limit {
            req = req.query(&[("limit", l)]);
        }
        self.send(req).await
    }

    pub async fn event(&self, id: &str) -> Result<EventWithLines> {
        self.send(self.http.get(self.url(&format!("/v1/events/{id}"))))
            .await
    }

    /// Stores a source archive (tar.gz or zip, at most [`MAX_UPLOAD`] bytes)
    /// for the component and queues its build, which also deploys it.
    pub async fn upload_source(
        &self,
        team: &str,
        app: &str,
        name: &str,
        actor: &str,
        archive: impl Into<reqwest::Body>,
    ) -> Result<Accepted> {
        let req = self
            .http
            .put(format!("{}/source", self.component_url(team, app, name)))
            .query(&[("actor", actor)])
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(TRANSFER_TIMEOUT)
            .body(archive);
        self.send(req).await
    }

    /// The component's versions, newest first.
    pub async fn versions(&self, team: &str, app: &str, name: &str) -> Result<Vec<Version>> {
        self.send(
            self.http
                .get(format!("{}/versions", self.component_url(team, app, name))),
        )
        .await
    }

    /// The component's running copies.
    pub async fn replicas(&self, team: &str, app: &str, name: &str) -> Result<Vec<ReplicaInfo>> {
        self.send(
            self.http
                .get(format!("{}/replicas", self.component_url(team, app, name))),
        )
        .await
    }

    /// Searches the component's stored output.
    pub async fn logs(&self, team: &str, app: &str, name: &str, q: &LogQuery) -> Result<LogPage> {
        let mut req = self
            .http
            .get(format!("{}/logs", self.component_url(team, app, name)));
        if let Some(text) = &q.q {
            req = req.query(&[("q", text)]);
        }
        if let Some(since) = q.since {
            req = req.query(&[("since", since)]);
        }
        if let Some(until) = q.until {
            req = req.query(&[("until", until)]);
        }
        if let Some(limit) = q.limit {
            req = req.query(&[("limit", limit)]);
        }
        self.send(req).await
    }

    /// The secret that signs the component's push webhook.
    pub async fn webhook(&self, team: &str, app: &str, name: &str) -> Result<WebhookInfo> {
        self.send(
            self.http
                .get(format!("{}/webhook", self.component_url(team, app, name))),
        )
        .await
    }

    /// Hands a push webhook delivery to the datacenter, which checks its
    /// signature. Only the headers named in [`WEBHOOK_HEADERS`] are passed on.
    pub async fn deliver_webhook(
        &self,
        team: &str,
        app: &str,
        name: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(String, String)],
    ) -> Result<WebhookOutcome> {
        let mut req = self
            .http
            .post(format!("{}/webhook", self.component_url(team, app, name)))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        for (k, v) in headers {
            if let Some(known) = WEBHOOK_HEADERS.iter().find(|h| h.eq_ignore_ascii_case(k)) {
                req = req.header(*known, v.as_str());
            }
        }
        self.send(req).await
    }

    /// Where the gateway listens and the suffix of default domains.
    pub async fn gateway(&self) -> Result<GatewayInfo> {
        self.send(self.http.get(self.url("/v1/gateway"))).await
    }

    pub async fn http_routes(&self, team: &str) -> Result<Vec<HttpRoute>> {
        self.send(
            self.http
                .get(self.url(&format!("/v1/teams/{team}/routes/http"))),
        )
        .await
    }

    pub async fn create_http_route(&self, team: &str, spec: &HttpRouteSpec) -> Result<HttpRoute> {
        self.send(
            self.http
                .post(self.url(&format!("/v1/teams/{team}/routes/http")))
                .json(spec),
        )
        .await
    }

    pub async fn update_http_route(
        &self,
        team: &str,
        id: &str,
        spec: &HttpRouteSpec,
    ) -> Result<HttpRoute> {
        self.send(
            self.http
                .put(self.url(&format!("/v1/teams/{team}/routes/http/{id}")))
                .json(spec),
        )
        .await
    }

    /// Answers with the route that was removed.
    pub async fn delete_http_route(&self, team: &str, id: &str) -> Result<HttpRoute> {
        self.send(
            self.http
                .delete(self.url(&format!("/v1/teams/{team}/routes/http/{id}"))),
        )
        .await
    }

    pub async fn tcp_routes(&self, team: &str) -> Result<Vec<TcpRoute>> {
        self.send(
            self.http
                .get(self.url(&format!("/v1/teams/{team}/routes/tcp"))),
        )
        .await
    }

    pub async fn create_tcp_route(&self, team: &str, spec: &TcpRouteSpec) -> Result<TcpRoute> {
        self.send(
            self.http
                .post(self.url(&format!("/v1/teams/{team}/routes/tcp")))
                .json(spec),
        )
        .await
    }

    /// Answers with the route that was removed.
    pub async fn delete_tcp_route(&self, team: &str, id: &str) -> Result<TcpRoute> {
        self.send(
            self.http
                .delete(self.url(&format!("/v1/teams/{team}/routes/tcp/{id}"))),
        )
        .await
    }

    pub async fn certificates(&self, team: &str) -> Result<Vec<Certificate>> {
        self.send(
            self.http
                .get(self.url(&format!("/v1/teams/{team}/certificates"))),
        )
        .await
    }

    /// Validates and stores a certificate (replacing one of the same name).
    pub async fn upload_certificate(
        &self,
        team: &str,
        upload: &CertificateUpload,
    ) -> Result<Certificate> {
        self.send(
            self.http
                .post(self.url(&format!("/v1/teams/{team}/certificates")))
                .json(upload),
        )
        .await
    }

    /// Answers with the certificate that was removed.
    pub async fn delete_certificate(&self, team: &str, name: &str) -> Result<Certificate> {
        self.send(
            self.http
                .delete(self.url(&format!("/v1/teams/{team}/certificates/{name}"))),
        )
        .await
    }

    /// Traffic figures of the team's routes and default domains.
    pub async fn route_stats(&self, team: &str) -> Result<Vec<RouteStats>> {
        self.send(
            self.http
                .get(self.url(&format!("/v1/teams/{team}/routes/stats"))),
        )
        .await
    }

    /// What the builder would do with a source, without building it.
    pub async fn detect(&self, req: &DetectRequest) -> Result<DetectedPlan> {
        self.send(
            self.http
                .post(self.url("/v1/detect"))
                .timeout(DETECT_TIMEOUT)
                .json(req),
        )
        .await
    }

    /// What the builder would do with a source archive (tar.gz or zip, at
    /// most [`MAX_UPLOAD`] bytes) with `build`'s overrides; the datacenter
    /// keeps nothing of it.
    pub async fn detect_archive(
        &self,
        build: &BuildSettings,
        archive: impl Into<reqwest::Body>,
    ) -> Result<DetectedPlan> {
        let req = self
            .http
            .post(self.url("/v1/detect/archive"))
            .query(build)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(TRANSFER_TIMEOUT)
            .body(archive);
        self.send(req).await
    }

    /// Opens `/v1/stream` and subscribes to `channel`; messages arrive on the
    /// returned receiver until the channel closes or the connection drops.
    /// Dropping the receiver ends the connection, even on a quiet channel.
    pub async fn follow(
        &self,
        channel: &str,
        buffer: usize,
    ) -> Result<tokio::sync::mpsc::Receiver<StreamMessage>> {
        let ws_url = self.url("/v1/stream").replacen("http", "ws", 1);
        let mut request = ws_url
            .into_client_request()
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.token)
                .parse()
                .map_err(|_| ClientError::Decode("token".into()))?,
        );
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let (mut sink, mut source) = ws.split();
        let sub = serde_json::to_string(&StreamRequest::Subscribe {
            channel: channel.into(),
        })
        .expect("serialises");
        sink.send(Message::Text(sub.into()))
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::channel(buffer);
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    // The reader went away: hang up instead of waiting for the next line.
                    _ = tx.closed() => break,
                    msg = source.next() => msg,
                };
                let Some(Ok(msg)) = msg else { break };
                let Message::Text(text) = msg else { continue };
                let Ok(msg) = serde_json::from_str::<StreamMessage>(&text) else {
                    continue;
                };
                let done = matches!(msg, StreamMessage::Closed { .. });
                if tx.send(msg).await.is_err() || done {
                    break;
                }
            }
            let _ = sink.send(Message::Close(None)).await;
        });
        Ok(rx)
    }
}
