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

    /// Opens `/v1/stream` and subscribes to `channel`; messages arrive on the
    /// returned receiver until the channel closes or the connection drops.
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
            let _sink = sink;
            while let Some(Ok(msg)) = source.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(msg) = serde_json::from_str::<StreamMessage>(&text) else {
                    continue;
                };
                let done = matches!(msg, StreamMessage::Closed { .. });
                if tx.send(msg).await.is_err() || done {
                    break;
                }
            }
        });
        Ok(rx)
    }
}
