//! Builds and what follows them: uploading a component's source, its
//! versions, replicas and stored output, its push webhook, and asking a
//! datacenter's builder what it would do with a source. The work happens in
//! the component's datacenter; the console authorises, audits and forwards.

use super::audit::{outcome, Record};
use super::rbac::Action;
use super::{Actor, ConsoleService, TeamRef};
use crate::error::{Error, Result};
use app::model::TokenScope;
use app::model::{ComponentRights, EventRef, WebhookEndpoint};
use axum::body::Bytes;
use datacenter::api::{
    BuildSettings, DetectRequest, DetectedPlan, LogPage, LogQuery, ReplicaInfo, Version,
    WebhookOutcome,
};
use datacenter::client::ClientError;
use http::HeaderMap;

/// At most this many lines from one search of stored output.
pub const MAX_LOG_LINES: usize = 5000;

/// Where a component lives, once the caller may act on it.
pub struct Located {
    pub team: TeamRef,
    pub datacenter: String,
}

/// The actor recorded for webhook deliveries, which come from Git hosts,
/// not from a signed-in user.
fn webhook_actor() -> Actor {
    Actor {
        user_id: 0,
        username: "webhook".into(),
        is_admin: false,
        scope: TokenScope::Full,
        token_id: None,
    }
}

fn no_such_hook() -> Error {
    Error::NotFound("There is no such webhook.".into())
}

impl ConsoleService {
    /// Finds the datacenter of `team/app/name`, after checking that `actor`
    /// may do `action` in the team.
    pub async fn locate(
        &self,
        actor: &Actor,
        team: &str,
        app: &str,
        name: &str,
        action: Action,
    ) -> Result<Located> {
        let a = self.app_ref(actor, team, app, action).await?;
        let datacenter = self.placement(a.id, name).await?;
        Ok(Located {
            team: a.team,
            datacenter,
        })
    }

    /// Stores an archive as the component's source and queues its build
    /// (which deploys it). `archive` is read only once the caller is
    /// authorised, so a refused upload costs no transfer.
    pub async fn upload_source(
        &self,
        actor: &Actor,
        team: &str,
        app: &str,
        name: &str,
        archive: impl std::future::Future<Output = Result<Bytes>>,
    ) -> Result<EventRef> {
        let found = self
            .locate(actor, team, app, name, Action::OperateComponents)
            .await;
        let team_ref = found.as_ref().ok().map(|l| l.team.clone());
        let mut size = 0;
        let result = async {
            let at = found?;
            let archive = archive.await?;
            size = archive.len();
            if archive.is_empty() {
                return Err(Error::Invalid(
                    "The upload is empty: send a tar.gz or zip archive.".into(),
                ));
            }
            let accepted = self
                .client(&at.datacenter)
                .await?
                .upload_source(&at.team.name, app, name, &actor.username, archive)
                .await?;
            Ok(EventRef {
                datacenter: at.datacenter,
                event_id: accepted.event_id,
            })
        }
        .await;
        let target = format!("{app}/{name} source ({} KiB)", size.div_ceil(1024));
        self.audited(
            actor,
            "component.upload",
            &target,
            team_ref.as_ref(),
            result,
        )
        .await
    }

    /// The component's versions, newest first.
    pub async fn versions(
        &self,
        actor: &Actor,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<Vec<Version>> {
        let at = self
            .locate(actor, team, app, name, Action::ViewApps)
            .await?;
        Ok(self
            .client(&at.datacenter)
            .await?
            .versions(&at.team.name, app, name)
            .await?)
    }

    /// The component's running copies.
    pub async fn replicas(
        &self,
        actor: &Actor,
        team: &str,
        app: &str,
        name: &str,
    ) -> Result<Vec<ReplicaInfo>> {
        let at = self
            .locate(actor, team, app, name, Action::ViewApps)
            .await?;
        Ok(self
            .client(&at.datacenter)
            .await?
            .replicas(&at.team.name, app, name)
            .await?)
    }

    /// A search through the component's stored output.
    pub async fn component_logs(
        &self,
        actor: &Actor,
        team: &str,
        app: &str,
        name: &str,
        mut q: LogQuery,
    ) -> Result<LogPage> {
        let at = self
            .locate(actor, team, app, name, Action::ViewApps)
            .await?;
        if let Some(text) = &q.q {
            if text.len() > 200 {
                return Err(Error::Invalid("Search for at most 200 characters.".into()));
            }
        }
        q.q = q.q.filter(|t| !t.is_empty());
        q.limit = q.limit.map(|l| l.clamp(1, MAX_LOG_LINES));
        Ok(self
            .client(&at.datacenter)
            .await?
            .logs(&at.team.name, app, name, &q)
            .await?)
    }

    /// The component's push webhook: the console's public hook URL (built
    /// on `origin`) and the secret a Git host signs deliveries with.
    pub async fn webhook(
        &self,
        actor: &Actor,
        team: &str,
        app: &str,
        name: &str,
        origin: &str,
    ) -> Result<WebhookEndpoint> {
        let at = self
            .locate(actor, team, app, name, Action::ViewWebhookSecret)
            .await?;
        let info = self
            .client(&at.datacenter)
            .await?
            .webhook(&at.team.name, app, name)
            .await?;
        Ok(WebhookEndpoint {
            url: format!(
                "{}/api/v1/hooks/{}/{app}/{name}",
                origin.trim_end_matches('/'),
                at.team.name
            ),
            secret: info.secret,
        })
    }

    /// A push webhook delivery from a Git host, forwarded with its signature
    /// headers to the component's datacenter, which verifies it. Deliveries
    /// for components that do not exist are answered 404 and not recorded;
    /// every other one is audited with the actor `webhook`. A bad signature
    /// is `Error::Unauthorized`.
    pub async fn deliver_webhook(
        &self,
        team: &str,
        app: &str,
        name: &str,
        body: Bytes,
        headers: Vec<(String, String)>,
    ) -> Result<WebhookOutcome> {
        let actor = webhook_actor();
        let at = match self
            .locate(&actor, team, app, name, Action::DeliverWebhook)
            .await
        {
            Ok(at) => at,
            Err(Error::NotFound(_)) => return Err(no_such_hook()),
            Err(e) => return Err(e),
        };
        let sent = async {
            self.client(&at.datacenter)
                .await?
                .deliver_webhook(&at.team.name, app, name, body, &headers)
                .await
                .map_err(|e| match e {
                    // The datacenter refuses a wrong signature (403); a 401
                    // is its own token check unless it says otherwise.
                    ClientError::Api { status, error }
                        if status == 403
                            || (status == 401 && !error.message.contains("datacenter token")) =>
                    {
                        tracing::info!(team, app, name, reason = %error.message, "webhook refused");
                        Error::Unauthorized
                    }
                    other => other.into(),
                })
        }
        .await;
        let (result, detail) = match &sent {
            Ok(o) => ("ok", o.message.clone()),
            Err(Error::Unauthorized) => ("denied", "The signature does not match.".into()),
            Err(e) => (outcome(&sent), e.public_message()),
        };
        let event = headers
            .iter()
            .find(|(k, _)| k.to_ascii_lowercase().ends_with("-event"))
            .map(|(_, v)| v.as_str())
            .unwrap_or("delivery");
        self.record(Record {
            actor_id: None,
            actor: &actor.username,
            action: "component.webhook",
            target: &format!("{app}/{name} {event}"),
            team: Some(&at.team),
            result,
            detail,
        })
        .await;
        sent
    }

    /// What the datacenter's builder would do with a source (for the
    /// create form's preview). Needs the right to create components, since
    /// detection may clone a repository.
    pub async fn detect(
        &self,
        actor: &Actor,
        team: &str,
        datacenter: &str,
        req: DetectRequest,
    ) -> Result<DetectedPlan> {
        let client = self.detector(actor, team, datacenter).await?;
        Ok(client.detect(&req).await?)
    }

    /// What the datacenter's builder would do with a source archive, before
    /// the component exists (the create form's preview of an upload), with
    /// `build`'s overrides. Authorised exactly like [`Self::detect`], and
    /// `archive` is read only once the caller is, like an upload. Nothing is
    /// stored, so nothing is audited.
    pub async fn detect_archive(
        &self,
        actor: &Actor,
        team: &str,
        datacenter: &str,
        build: BuildSettings,
        archive: impl std::future::Future<Output = Result<Bytes>>,
    ) -> Result<DetectedPlan> {
        let client = self.detector(actor, team, datacenter).await?;
        let archive = archive.await?;
        if archive.is_empty() {
            return Err(Error::Invalid(
                "The archive is empty: send a tar.gz or zip archive.".into(),
            ));
        }
        Ok(client.detect_archive(&build, archive).await?)
    }

    /// The builder of `datacenter`, for an actor who may create components
    /// in `team` and a team that may use that datacenter.
    async fn detector(
        &self,
        actor: &Actor,
        team: &str,
        datacenter: &str,
    ) -> Result<datacenter::client::DatacenterClient> {
        let t = self.find_team(team).await?;
        self.authorize(actor, Action::OperateComponents, Some(&t))
            .await?;
        self.team_may_use(t.id, datacenter).await?;
        self.client(datacenter).await
    }

    /// What `actor` may do to the components of `team`.
    pub async fn component_rights(&self, actor: &Actor, team: &str) -> Result<ComponentRights> {
        let t = self.find_team(team).await?;
        self.authorize(actor, Action::ViewApps, Some(&t)).await?;
        Ok(ComponentRights {
            can_operate: self
                .authorize(actor, Action::OperateComponents, Some(&t))
                .await
                .is_ok(),
            can_see_webhook: self
                .authorize(actor, Action::ViewWebhookSecret, Some(&t))
                .await
                .is_ok(),
        })
    }

    /// The console's address as people and Git hosts reach it: the
    /// configured public URL, else the scheme and host of this request.
    pub fn public_origin(&self, headers: &HeaderMap) -> String {
        origin(self.public_url.get().map(String::as_str), headers)
    }

    /// Sets the URL people use to reach the console (`--public-url`), used
    /// for the webhook URLs it hands out. Only the first call counts.
    pub fn set_public_url(&self, url: Option<String>) {
        if let Some(url) = url.filter(|u| !u.trim().is_empty()) {
            let _ = self.public_url.set(url.trim().to_string());
        }
    }
}

/// `public_url` without a trailing slash, else `http(s)://<Host>` of the
/// request (`https` when a proxy says so in `X-Forwarded-Proto`). A Host
/// header with anything but host-name characters is not trusted.
fn origin(public_url: Option<&str>, headers: &HeaderMap) -> String {
    if let Some(url) = public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(',').next())
        .map(str::trim)
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::origin;
    use http::HeaderMap;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_configured_public_url_wins() {
        let h = headers(&[("host", "10.0.0.5:3000")]);
        assert_eq!(
            origin(Some("https://console.example/"), &h),
            "https://console.example"
        );
    }

    #[test]
    fn otherwise_the_request_says_where_the_console_is() {
        assert_eq!(
            origin(None, &headers(&[("host", "127.0.0.1:3000")])),
            "http://127.0.0.1:3000"
        );
        assert_eq!(
            origin(
                None,
                &headers(&[
                    ("host", "console.example"),
                    ("x-forwarded-proto", "https, http")
                ])
            ),
            "https://console.example"
        );
        assert_eq!(
            origin(None, &headers(&[("host", "evil.example/<script>")])),
            "http://localhost"
        );
    }
}
