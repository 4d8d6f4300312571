//! The gateway as teams use it: HTTP and TCP routes to their components and
//! the TLS certificates of their domains, per datacenter. The datacenter owns
//! them (it validates domains and PEMs, refuses a domain another team holds,
//! seals keys); the console authorises, checks what it knows better — which
//! components the team has and where they live — audits and forwards.

use super::rbac::Action;
use super::{team_not_found, Actor, ConsoleService, TeamRef};
use crate::db::now_ms;
use crate::error::{Error, Result};
use app::model::{DatacenterGateway, RouteRights, RouteTargetChoice, TeamGateway};
use datacenter::api::{
    Certificate, CertificateUpload, GatewayInfo, HttpRoute, HttpRouteSpec, RouteStats, RouteTarget,
    TcpRoute, TcpRouteSpec, ValueMatch,
};

/// The most a certificate or key PEM may hold. A chain of a few
/// certificates fits many times over; anything larger is not a certificate.
pub const MAX_PEM: usize = 64 * 1024;
/// Targets of one HTTP route: enough for canaries and A/B splits.
pub const MAX_TARGETS: usize = 16;
const MAX_DOMAIN: usize = 253;
const MAX_PATH: usize = 1024;
const MAX_MATCH_NAME: usize = 256;
const MAX_MATCH_VALUE: usize = 4096;

/// Route ids and certificate names are pasted into the datacenter's URL
/// path: only plain characters, so a crafted one (`..%2F..%2Fteams%2Fother`)
/// cannot reach another path — or another team — there with the console's
/// datacenter token.
fn path_segment(what: &str, s: &str) -> Result<()> {
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && s.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "The {what} may have 1–128 letters, digits, dots, dashes or underscores, starting with a letter or digit."
        )))
    }
}

/// At most `max` characters of user input for an audit target.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// Hides anything in a message that could be PEM body (long base64 runs):
/// a datacenter's complaint about a key must not put the key in the audit log.
pub fn scrub_pem(message: String) -> String {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || "+/=".contains(c);
    let mut out = String::with_capacity(message.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 24 {
            out.push('…');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in message.chars() {
        if is_b64(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn check_match(what: &str, m: &Option<ValueMatch>) -> Result<()> {
    if let Some(m) = m {
        if m.name.trim().is_empty() || m.name.len() > MAX_MATCH_NAME {
            return Err(Error::Invalid(format!(
                "The {what} to match needs a name of 1–{MAX_MATCH_NAME} characters."
            )));
        }
        if m.value.len() > MAX_MATCH_VALUE {
            return Err(Error::Invalid(format!(
                "The {what} value to match may have at most {MAX_MATCH_VALUE} characters."
            )));
        }
    }
    Ok(())
}

/// Bounds what a route may hold. The rules of domains and paths themselves
/// are the datacenter's, which answers with its own clear message.
fn check_http_spec(spec: &HttpRouteSpec) -> Result<()> {
    if spec.domain.trim().is_empty() {
        return Err(Error::Invalid(
            "Give the route's domain, like shop.example.com.".into(),
        ));
    }
    if spec.domain.len() > MAX_DOMAIN {
        return Err(Error::Invalid(format!(
            "A domain has at most {MAX_DOMAIN} characters."
        )));
    }
    if spec.path_prefix.len() > MAX_PATH {
        return Err(Error::Invalid(format!(
            "The path prefix may have at most {MAX_PATH} characters."
        )));
    }
    check_match("header", &spec.header)?;
    check_match("cookie", &spec.cookie)?;
    if spec.targets.is_empty() {
        return Err(Error::Invalid(
            "Choose at least one component to send the traffic to.".into(),
        ));
    }
    if spec.targets.len() > MAX_TARGETS {
        return Err(Error::Invalid(format!(
            "A route may split its traffic over at most {MAX_TARGETS} components."
        )));
    }
    Ok(())
}

fn check_upload(upload: &CertificateUpload) -> Result<()> {
    super::validate::dns_label("certificate", &upload.name)?;
    for (what, pem, marker, example) in [
        (
            "certificate",
            &upload.cert_pem,
            "-----BEGIN CERTIFICATE-----",
            "-----BEGIN CERTIFICATE-----",
        ),
        (
            "private key",
            &upload.key_pem,
            "PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY----- (or RSA / EC PRIVATE KEY)",
        ),
    ] {
        if pem.trim().is_empty() {
            return Err(Error::Invalid(format!("Paste the {what} in PEM form.")));
        }
        if pem.len() > MAX_PEM {
            return Err(Error::Invalid(format!(
                "The {what} is larger than {} KiB; that is no PEM file.",
                MAX_PEM / 1024
            )));
        }
        if !pem.contains(marker) {
            return Err(Error::Invalid(format!(
                "The {what} is not in PEM form: it should start with {example}."
            )));
        }
    }
    Ok(())
}

fn route_label(domain: &str, path: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    format!("route {}{}", clip(domain, MAX_DOMAIN), clip(path, 200))
}

impl ConsoleService {
    /// Refuses a datacenter the team is not opened in, as if it did not
    /// exist: the path names it, like a missing resource.
    /// The checks every gateway change starts with: the team (`found` once,
    /// for the audit record) exists, the actor may do `action` in it, and the
    /// team is opened in `dc`.
    async fn found_scope<'t>(
        &self,
        actor: &Actor,
        found: &'t Result<TeamRef>,
        team: &str,
        dc: &str,
        action: Action,
    ) -> Result<&'t TeamRef> {
        let t = found.as_ref().map_err(|_| team_not_found(team))?;
        self.authorize(actor, action, Some(t)).await?;
        self.opened_in(t, dc).await?;
        Ok(t)
    }

    async fn opened_in(&self, team: &TeamRef, dc: &str) -> Result<()> {
        match self.team_may_use(team.id, dc).await {
            Ok(_) => Ok(()),
            Err(Error::Invalid(_)) => Err(Error::NotFound(format!(
                "Team {} is not opened in a datacenter “{}”.",
                team.name,
                clip(dc, 63)
            ))),
            Err(e) => Err(e),
        }
    }

    /// The team, once `actor` may do `action` there and it is opened in `dc`.
    async fn gateway_scope(
        &self,
        actor: &Actor,
        team: &str,
        dc: &str,
        action: Action,
    ) -> Result<TeamRef> {
        let t = self.find_team(team).await?;
        self.authorize(actor, action, Some(&t)).await?;
        self.opened_in(&t, dc).await?;
        Ok(t)
    }

    /// Every component of the team with its app and datacenter, as the
    /// console placed them.
    async fn placed_components(&self, team_id: i64) -> Result<Vec<RouteTargetChoice>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT d.name, a.name, c.name FROM component_locations c \
             JOIN apps a ON a.id = c.app_id JOIN datacenters d ON d.id = c.datacenter_id \
             WHERE a.team_id = $1 ORDER BY d.name, a.name, c.name",
        )
        .bind(team_id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(datacenter, app, component)| RouteTargetChoice {
                datacenter,
                app,
                component,
            })
            .collect())
    }

    /// A route may only send traffic to components the team has in the
    /// route's datacenter; the console knows where each one lives.
    async fn check_targets<'a>(
        &self,
        team: &TeamRef,
        dc: &str,
        targets: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<()> {
        let placed = self.placed_components(team.id).await?;
        for (app, component) in targets {
            match placed
                .iter()
                .find(|p| p.app == app && p.component == component)
            {
                None => {
                    return Err(Error::NotFound(format!(
                        "Team {} has no component {}/{}.",
                        team.name,
                        clip(app, 63),
                        clip(component, 63)
                    )))
                }
                Some(p) if p.datacenter != dc => {
                    return Err(Error::Invalid(format!(
                        "{app}/{component} lives in datacenter {}; a route in {dc} reaches only components in {dc}.",
                        p.datacenter
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// What `actor` may change in the team's gateway.
    pub async fn route_rights(&self, actor: &Actor, team: &TeamRef) -> RouteRights {
        RouteRights {
            can_manage_routes: self
                .authorize(actor, Action::ManageRoutes, Some(team))
                .await
                .is_ok(),
            can_manage_certificates: self
                .authorize(actor, Action::ManageCertificates, Some(team))
                .await
                .is_ok(),
        }
    }

    /// Where the datacenter's gateway listens and its default domain suffix.
    pub async fn gateway_info(&self, actor: &Actor, team: &str, dc: &str) -> Result<GatewayInfo> {
        self.gateway_scope(actor, team, dc, Action::ViewRoutes)
            .await?;
        Ok(self.client(dc).await?.gateway().await?)
    }

    pub async fn http_routes(&self, actor: &Actor, team: &str, dc: &str) -> Result<Vec<HttpRoute>> {
        let t = self
            .gateway_scope(actor, team, dc, Action::ViewRoutes)
            .await?;
        Ok(self.client(dc).await?.http_routes(&t.name).await?)
    }

    pub async fn tcp_routes(&self, actor: &Actor, team: &str, dc: &str) -> Result<Vec<TcpRoute>> {
        let t = self
            .gateway_scope(actor, team, dc, Action::ViewRoutes)
            .await?;
        Ok(self.client(dc).await?.tcp_routes(&t.name).await?)
    }

    /// The team's certificates in `dc`: names, domains and validity; never keys.
    pub async fn certificates(
        &self,
        actor: &Actor,
        team: &str,
        dc: &str,
    ) -> Result<Vec<Certificate>> {
        let t = self
            .gateway_scope(actor, team, dc, Action::ViewRoutes)
            .await?;
        Ok(self.client(dc).await?.certificates(&t.name).await?)
    }

    pub async fn route_stats(
        &self,
        actor: &Actor,
        team: &str,
        dc: &str,
    ) -> Result<Vec<RouteStats>> {
        let t = self
            .gateway_scope(actor, team, dc, Action::ViewRoutes)
            .await?;
        Ok(self.client(dc).await?.route_stats(&t.name).await?)
    }

    pub async fn create_http_route(
        &self,
        actor: &Actor,
        team: &str,
        dc: &str,
        spec: HttpRouteSpec,
    ) -> Result<HttpRoute> {
        let found = self.find_team(team).await;
        let result = async {
            let t = self
                .found_scope(actor, &found, team, dc, Action::ManageRoutes)
                .await?;
            check_http_spec(&spec)?;
            self.check_targets(t, dc, targets_of(&spec.targets)).await?;
            Ok(self
                .client(dc)
                .await?
                .create_http_route(&t.name, &spec)
                .await?)
        }
        .await;
        let target = format!(
            "{} in {}",
            route_label(&spec.domain, &spec.path_prefix),
            clip(dc, 63)
        );
        self.audited(
            actor,
            "route.http.create",
            &target,
            found.as_ref().ok(),
            result,
        )
        .await
    }

    /// The team's HTTP route `id` in `dc`, looked up in the team's own list
    /// so an id of another team's route is "not found" whatever the
    /// datacenter would say.
    async fn own_http_route(&self, t: &TeamRef, dc: &str, id: &str) -> Result<HttpRoute> {
        path_segment("route id", id)?;
        self.client(dc)
            .await?
            .http_routes(&t.name)
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| {
                Error::NotFound(format!("Team {} has no HTTP route {id} in {dc}.", t.name))
            })
    }

    pub async fn update_http_route(
        &self,
        actor: &Actor,
        team: &str,
        dc: &str,
        id: &str,
        spec: HttpRouteSpec,
    ) -> Result<HttpRoute> {
        let found = self.find_team(team).await;
        let result = async {
            let t = self
                .found_scope(actor, &found, team, dc, Action::ManageRoutes)
                .await?;
            check_http_spec(&spec)?;
            self.own_http_route(t, dc, id).await?;
            self.check_targets(t, dc, targets_of(&spec.targets)).await?;
            Ok(self
                .client(dc)
                .await?
                .update_http_route(&t.name, id, &spec)
                .await?)
        }
        .await;
        let target = format!(
            "{} in {} (id {})",
            route_label(&spec.domain, &spec.path_prefix),
            clip(dc, 63),
            clip(id, 64)
        );
        self.audited(
            actor,
            "route.http.update",
            &target,
            found.as_ref().ok(),
            result,
        )
        .await
    }

    pub async fn delete_http_route(
        &self,
        actor: &Actor,
        team: &str,
        dc: &str,
        id: &str,
    ) -> Result<()> {
        let found = self.find_team(team).await;
        let mut label = format!("route {}", clip(id, 64));
        let result = async {
            let t = self
                .found_scope(actor, &found, team, dc, Action::ManageRoutes)
                .await?;
            let route = self.own_http_route(t, dc, id).await?;
            label = route_label(&route.spec.domain, &route.spec.path_prefix);
            self.client(dc)
                .await?
                .delete_http_route(&t.name, id)
                .await?;
            Ok(())
        }
        .await;
        let target = format!("{label} in {}", clip(dc, 63));
        self.audited(
            actor,
            "route.http.delete",
            &target,
            found.as_ref().ok(),
            result,
        )
        .await
    }

    pub async fn create_tcp_route(
        &self,
        actor: &Actor,
        team: &str,
        dc: &str,
        spec: TcpRouteSpec,
    ) -> Result<TcpRoute> {
        let found = self.find_team(team).await;
        let result = async {
            let t = self
                .found_scope(actor, &found, team, dc, Action::ManageRoutes)
                .await?;
            self.check_targets(t, dc, [(spec.app.as_str(), spec.component.as_str())])
                .await?;
            Ok(self
                .client(dc)
                .await?
                .create_tcp_route(&t.name, &spec)
                .await?)
        }
        .await;
        let target = format!(
            "tcp route :{} to {}/{} in {}",
            spec.listen_port,
            clip(&spec.app, 63),
            clip(&spec.component, 63),
            clip(dc, 63)
        );
        self.audited(
            actor,
            "route.tcp.create",
            &target,
            found.as_ref().ok(),
            result,
        )
        .await
    }

    pub async fn delete_tcp_route(
        &self,
        actor: &Actor,
        team: &str,
        dc: &str,
        id: &str,
    ) -> Result<()> {
        let found = self.find_team(team).await;
        let mut label = format!("tcp route {}", clip(id, 64));
        let result = async {
            let t = self
                .found_scope(actor, &found, team, dc, Action::ManageRoutes)
                .await?;
            path_segment("route id", id)?;
            let client = self.client(dc).await?;
            let route = client
                .tcp_routes(&t.name)
                .await?
                .into_iter()
                .find(|r| r.id == id)
                .ok_or_else(|| {
                    Error::NotFound(format!("Team {} has no TCP route {id} in {dc}.", t.name))
                })?;
            label = format!(
                "tcp route :{} to {}/{}",
                route.spec.listen_port, route.spec.app, route.spec.component
            );
            client.delete_tcp_route(&t.name, id).await?;
            Ok(())
        }
        .await;
        let target = format!("{label} in {}", clip(dc, 63));
        self.audited(
            actor,
            "route.tcp.delete",
            &target,
            found.as_ref().ok(),
            result,
        )
        .await
    }

    /// Stores a certificate and its key in the datacenter (which validates
    /// and seals them). Neither PEM is logged or audited: the record names
    /// the certificate, and an error message is scrubbed of PEM-like text.
    pub async fn upload_certificate(
        &self,
        actor: &Actor,
        team: &str,
        dc: &str,
        upload: CertificateUpload,
    ) -> Result<Certificate> {
        let found = self.find_team(team).await;
        let result = async {
            let t = self
                .found_scope(actor, &found, team, dc, Action::ManageCertificates)
                .await?;
            check_upload(&upload)?;
            Ok(self
                .client(dc)
                .await?
                .upload_certificate(&t.name, &upload)
                .await?)
        }
        .await;
        let target = match &result {
            Ok(c) => format!(
                "certificate {} ({}) in {}",
                c.name,
                clip(&c.domains.join(", "), 200),
                clip(dc, 63)
            ),
            Err(_) => format!("certificate {} in {}", clip(&upload.name, 64), clip(dc, 63)),
        };
        self.audited_scrubbed(
            actor,
            "certificate.upload",
            &target,
            found.as_ref().ok(),
            result,
            scrub_pem,
        )
        .await
    }

    pub async fn delete_certificate(
        &self,
        actor: &Actor,
        team: &str,
        dc: &str,
        name: &str,
    ) -> Result<()> {
        let found = self.find_team(team).await;
        let result = async {
            let t = self
                .found_scope(actor, &found, team, dc, Action::ManageCertificates)
                .await?;
            path_segment("certificate name", name)?;
            self.client(dc)
                .await?
                .delete_certificate(&t.name, name)
                .await?;
            Ok(())
        }
        .await;
        let target = format!("certificate {} in {}", clip(name, 64), clip(dc, 63));
        self.audited(
            actor,
            "certificate.delete",
            &target,
            found.as_ref().ok(),
            result,
        )
        .await
    }

    /// Everything the team's Routes page shows, for every datacenter the
    /// team is opened in. A datacenter that does not answer shows why,
    /// instead of failing the page.
    pub async fn team_gateway(&self, actor: &Actor, team: &str) -> Result<TeamGateway> {
        let t = self.find_team(team).await?;
        self.authorize(actor, Action::ViewRoutes, Some(&t)).await?;
        let rights = self.route_rights(actor, &t).await;
        let names: Vec<(String,)> = sqlx::query_as(
            "SELECT d.name FROM datacenters d JOIN team_datacenters td ON td.datacenter_id = d.id \
             WHERE td.team_id = $1 ORDER BY d.embedded DESC, d.name",
        )
        .bind(t.id)
        .fetch_all(&self.db.pool)
        .await?;
        let reads = names
            .into_iter()
            .map(|(dc,)| self.datacenter_gateway(&t.name, dc));
        let datacenters = futures_util::future::join_all(reads).await;
        Ok(TeamGateway {
            team: t.name.clone(),
            rights,
            datacenters,
            components: self.placed_components(t.id).await?,
            now: now_ms(),
        })
    }

    async fn datacenter_gateway(&self, team: &str, dc: String) -> DatacenterGateway {
        let read = async {
            let c = self.client(&dc).await?;
            let (gateway, http, tcp, certs, stats) = tokio::join!(
                c.gateway(),
                c.http_routes(team),
                c.tcp_routes(team),
                c.certificates(team),
                c.route_stats(team)
            );
            // Traffic figures are a nicety: without them the routes still show.
            let stats = stats.unwrap_or_else(|e| {
                tracing::warn!(datacenter = %dc, error = %e, "no route stats");
                Vec::new()
            });
            Ok::<_, Error>((gateway?, http?, tcp?, certs?, stats))
        };
        match read.await {
            Ok((gateway, http_routes, tcp_routes, certificates, stats)) => DatacenterGateway {
                datacenter: dc,
                gateway: Some(gateway),
                error: None,
                http_routes,
                tcp_routes,
                certificates,
                stats,
            },
            Err(e) => {
                tracing::warn!(datacenter = %dc, error = %e, "gateway not readable");
                DatacenterGateway {
                    datacenter: dc,
                    gateway: None,
                    error: Some(e.public_message()),
                    http_routes: vec![],
                    tcp_routes: vec![],
                    certificates: vec![],
                    stats: vec![],
                }
            }
        }
    }
}

fn targets_of(targets: &[RouteTarget]) -> impl Iterator<Item = (&str, &str)> {
    targets
        .iter()
        .map(|t| (t.app.as_str(), t.component.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_climb_out_of_their_path() {
        for good in ["r-1", "abc_DEF.9", "0"] {
            assert!(path_segment("id", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "..",
            ".x",
            "a/b",
            "../teams/other",
            "a b",
            "a%2F",
            &"a".repeat(129),
        ] {
            assert!(path_segment("id", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pem_bodies_never_reach_the_audit_log() {
        let msg =
            "bad key: MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ is not RSA".to_string();
        let scrubbed = scrub_pem(msg);
        assert_eq!(scrubbed, "bad key: … is not RSA");
        assert_eq!(
            scrub_pem("The key does not match the certificate.".into()),
            "The key does not match the certificate."
        );
    }

    #[test]
    fn uploads_are_bounded_and_look_like_pem() {
        let ok = CertificateUpload {
            name: "shop".into(),
            cert_pem: "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n".into(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n".into(),
        };
        assert!(check_upload(&ok).is_ok());
        let garbage = CertificateUpload {
            cert_pem: "hello".into(),
            ..ok.clone()
        };
        assert!(check_upload(&garbage)
            .unwrap_err()
            .to_string()
            .contains("not in PEM form"));
        let huge = CertificateUpload {
            key_pem: format!("-----BEGIN PRIVATE KEY-----\n{}", "A".repeat(MAX_PEM)),
            ..ok
        };
        assert!(check_upload(&huge)
            .unwrap_err()
            .to_string()
            .contains("larger than 64 KiB"));
    }

    #[test]
    fn routes_need_a_domain_and_a_target() {
        let spec = |domain: &str, targets: usize| HttpRouteSpec {
            domain: domain.into(),
            path_prefix: "/".into(),
            header: None,
            cookie: None,
            targets: (0..targets)
                .map(|i| RouteTarget {
                    app: "shop".into(),
                    component: format!("c{i}"),
                    weight: 1,
                })
                .collect(),
            balance: Default::default(),
            https_redirect: false,
        };
        assert!(check_http_spec(&spec("shop.example.com", 1)).is_ok());
        assert!(check_http_spec(&spec(" ", 1)).is_err());
        assert!(check_http_spec(&spec("shop.example.com", 0)).is_err());
        assert!(check_http_spec(&spec("shop.example.com", MAX_TARGETS + 1)).is_err());
        assert!(check_http_spec(&spec(&"a".repeat(300), 1)).is_err());
    }
}
