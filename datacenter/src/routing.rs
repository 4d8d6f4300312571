//! The datacenter's side of the gateway: routes and certificates as users
//! manage them (checked against other teams' domains), the default domain
//! of every outer HTTP port, and the rule set handed to the gateway whenever
//! any of it changes.

use crate::api::*;
use crate::error::{Error, Result};
use crate::gateway::{HttpRule, RouteSet, TcpRule, TlsCertificate};
use crate::service::Datacenter;
use crate::store::components::Key;
use crate::store::now_ms;
use crate::validate;
use std::collections::HashMap;

/// The rules the gateway runs now, kept to answer "where does this
/// component answer" without a database round trip.
#[derive(Debug, Default)]
pub struct Published {
    http: Vec<HttpRule>,
    /// Team of each rule id, to show a team only its own figures.
    teams: HashMap<String, String>,
    fingerprint: u64,
}

/// `*.example.com` covers `a.example.com` and `a.b.example.com`.
fn covers(wildcard: &str, domain: &str) -> bool {
    match wildcard.strip_prefix("*.") {
        Some(base) => domain
            .strip_suffix(base)
            .is_some_and(|head| head.ends_with('.') && head.len() > 1),
        None => false,
    }
}

/// Whether two route domains could ever answer the same request host.
fn clash(a: &str, b: &str) -> bool {
    let base = |d: &str| d.strip_prefix("*.").map(str::to_string);
    a == b
        || covers(a, b)
        || covers(b, a)
        || matches!((base(a), base(b)), (Some(x), Some(y)) if x == y || covers(a, &y) || covers(b, &x))
}

fn default_rule_id(team: &str, app: &str, component: &str) -> String {
    format!("default:{team}/{app}/{component}")
}

impl Datacenter {
    pub fn gateway_info(&self) -> Result<GatewayInfo> {
        let gw = self
            .gateway
            .as_ref()
            .ok_or_else(|| Error::NotFound("this datacenter runs no gateway".into()))?;
        Ok(GatewayInfo {
            http: gw.http_addr().to_string(),
            https: gw.https_addr().map(|a| a.to_string()),
            domain_suffix: self.domain_suffix.clone(),
        })
    }

    /// `<component>.<app>.<team>.<suffix>`: dots keep names unambiguous,
    /// since every part is a DNS label that may itself contain dashes.
    pub fn default_domain(&self, team: &str, app: &str, component: &str) -> String {
        format!("{component}.{app}.{team}.{}", self.domain_suffix)
    }

    async fn check_targets(&self, team: &str, targets: &[(String, String)]) -> Result<()> {
        let mut missing = vec![];
        for (app, component) in targets {
            let key = Key {
                team: team.into(),
                app: app.clone(),
                name: component.clone(),
            };
            if let Err(Error::NotFound(_)) = self.components.get(&key).await {
                missing.push(format!("team {team} has no component {app}/{component}"));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(missing))
        }
    }

    /// Normalizes and checks a route against the team's namespace and every
    /// other route (`except` is the route being changed).
    async fn check_http_route(
        &self,
        team: &str,
        spec: &mut HttpRouteSpec,
        except: Option<&str>,
    ) -> Result<()> {
        spec.domain = validate::normalize_domain(&spec.domain);
        if spec.path_prefix.len() > 1 {
            spec.path_prefix = spec.path_prefix.trim_end_matches('/').to_string();
        }
        validate::http_route(spec).map_err(Error::Invalid)?;
        let suffix = &self.domain_suffix;
        let own = format!("{team}.{suffix}");
        let under_suffix = spec.domain == *suffix
            || spec.domain.ends_with(&format!(".{suffix}"))
            || covers(&spec.domain, suffix);
        if under_suffix && !spec.domain.ends_with(&format!(".{own}")) {
            return Err(Error::Conflict(format!(
                "{} is reserved for default domains; a team may add routes under *.{own}",
                spec.domain
            )));
        }
        for r in self.routes.http_routes(None).await? {
            if Some(r.id.as_str()) == except {
                continue;
            }
            if r.team != team && clash(&r.spec.domain, &spec.domain) {
                return Err(Error::Conflict(format!(
                    "the domain {} is used by another team",
                    spec.domain
                )));
            }
            if r.team == team
                && r.spec.domain == spec.domain
                && r.spec.path_prefix == spec.path_prefix
                && r.spec.header == spec.header
                && r.spec.cookie == spec.cookie
            {
                return Err(Error::Conflict(format!(
                    "a route for {}{} with the same matches exists already",
                    spec.domain, spec.path_prefix
                )));
            }
        }
        let targets: Vec<_> = spec
            .targets
            .iter()
            .map(|t| (t.app.clone(), t.component.clone()))
            .collect();
        self.check_targets(team, &targets).await
    }

    pub async fn create_http_route(
        &self,
        team: &str,
        mut spec: HttpRouteSpec,
    ) -> Result<HttpRoute> {
        validate::dns_label("team", team).map_err(|e| Error::Invalid(vec![e]))?;
        let _guard = self.route_changes.lock().await;
        self.check_http_route(team, &mut spec, None).await?;
        let route = self.routes.create_http_route(team, &spec).await?;
        self.refresh_gateway().await?;
        Ok(route)
    }

    pub async fn update_http_route(
        &self,
        team: &str,
        id: &str,
        mut spec: HttpRouteSpec,
    ) -> Result<HttpRoute> {
        let _guard = self.route_changes.lock().await;
        self.routes.http_route_of(team, id).await?;
        self.check_http_route(team, &mut spec, Some(id)).await?;
        let route = self.routes.update_http_route(team, id, &spec).await?;
        self.refresh_gateway().await?;
        Ok(route)
    }

    pub async fn delete_http_route(&self, team: &str, id: &str) -> Result<HttpRoute> {
        let _guard = self.route_changes.lock().await;
        let route = self.routes.delete_http_route(team, id).await?;
        self.refresh_gateway().await?;
        Ok(route)
    }

    pub async fn create_tcp_route(&self, team: &str, spec: TcpRouteSpec) -> Result<TcpRoute> {
        validate::dns_label("team", team).map_err(|e| Error::Invalid(vec![e]))?;
        validate::tcp_route(&spec).map_err(Error::Invalid)?;
        let gw = self
            .gateway
            .as_ref()
            .ok_or_else(|| Error::Unavailable("this datacenter runs no gateway".into()))?;
        if gw.http_addr().port() == spec.listen_port
            || gw.https_addr().map(|a| a.port()) == Some(spec.listen_port)
        {
            return Err(Error::Conflict(format!(
                "port {} is the gateway's own HTTP(S) port",
                spec.listen_port
            )));
        }
        self.check_targets(team, &[(spec.app.clone(), spec.component.clone())])
            .await?;
        let _guard = self.route_changes.lock().await;
        let route = self.routes.create_tcp_route(team, &spec).await?;
        // A port something else holds is only found out by binding it; then
        // the route is taken back, so what is stored is what runs.
        if let Some((_, why)) = self
            .refresh_gateway()
            .await?
            .into_iter()
            .find(|(id, _)| *id == route.id)
        {
            self.routes.delete_tcp_route(team, &route.id).await?;
            self.refresh_gateway().await?;
            return Err(Error::Conflict(format!(
                "cannot listen on port {}: {why}",
                spec.listen_port
            )));
        }
        Ok(route)
    }

    pub async fn delete_tcp_route(&self, team: &str, id: &str) -> Result<TcpRoute> {
        let _guard = self.route_changes.lock().await;
        let route = self.routes.delete_tcp_route(team, id).await?;
        self.refresh_gateway().await?;
        Ok(route)
    }

    pub async fn upload_certificate(
        &self,
        team: &str,
        upload: CertificateUpload,
    ) -> Result<Certificate> {
        validate::dns_label("team", team).map_err(|e| Error::Invalid(vec![e]))?;
        validate::dns_label("certificate name", &upload.name)
            .map_err(|e| Error::Invalid(vec![e]))?;
        const MAX_PEM: usize = 64 * 1024;
        if upload.cert_pem.len() > MAX_PEM || upload.key_pem.len() > MAX_PEM {
            return Err(Error::Invalid(vec![format!(
                "certificate and key are at most {} KiB each",
                MAX_PEM / 1024
            )]));
        }
        let parsed = crate::gateway::parse_certificate(&upload.cert_pem, &upload.key_pem)
            .map_err(|e| Error::Invalid(vec![e]))?;
        let info = Certificate {
            name: upload.name,
            team: team.into(),
            domains: parsed.domains,
            not_before: parsed.not_before,
            not_after: parsed.not_after,
            created_at: now_ms(),
        };
        let _guard = self.route_changes.lock().await;
        self.routes
            .put_certificate(&info, &upload.cert_pem, &upload.key_pem)
            .await?;
        self.refresh_gateway().await?;
        Ok(info)
    }

    pub async fn certificates(&self, team: &str) -> Result<Vec<Certificate>> {
        Ok(self
            .routes
            .certificates(Some(team))
            .await?
            .into_iter()
            .map(|c| c.info)
            .collect())
    }

    pub async fn delete_certificate(&self, team: &str, name: &str) -> Result<Certificate> {
        let _guard = self.route_changes.lock().await;
        let cert = self.routes.delete_certificate(team, name).await?;
        self.refresh_gateway().await?;
        Ok(cert)
    }

    /// The team's routes and default domains with their traffic.
    pub fn route_stats(&self, team: &str) -> Vec<RouteStats> {
        let Some(gw) = &self.gateway else {
            return vec![];
        };
        let published = self.published.read().unwrap();
        let default_prefix = format!("default:{team}/");
        gw.stats()
            .into_iter()
            .filter(|s| published.teams.get(&s.route).is_some_and(|t| t == team))
            .map(|mut s| {
                if let Some(rest) = s.route.strip_prefix(&default_prefix) {
                    s.route = format!("default:{rest}");
                }
                s
            })
            .collect()
    }

    /// Rebuilds the gateway's rules from the store (custom routes, default
    /// domains, certificates) and applies them when they changed. Returns the
    /// TCP routes whose port could not be bound.
    pub async fn refresh_gateway(&self) -> Result<Vec<(String, String)>> {
        let Some(gw) = &self.gateway else {
            return Ok(vec![]);
        };
        let mut teams = HashMap::new();
        let mut http: Vec<HttpRule> = vec![];
        for (key, ports) in self.components.all_ports().await? {
            if !ports
                .iter()
                .any(|p| p.outer && p.protocol == Protocol::Http)
            {
                continue;
            }
            let id = default_rule_id(&key.team, &key.app, &key.name);
            teams.insert(id.clone(), key.team.clone());
            http.push(HttpRule {
                id,
                team: key.team.clone(),
                spec: HttpRouteSpec {
                    domain: self.default_domain(&key.team, &key.app, &key.name),
                    path_prefix: "/".into(),
                    header: None,
                    cookie: None,
                    targets: vec![RouteTarget {
                        app: key.app.clone(),
                        component: key.name.clone(),
                        weight: 1,
                    }],
                    balance: Balance::RoundRobin,
                    https_redirect: false,
                },
            });
        }
        for r in self.routes.http_routes(None).await? {
            teams.insert(r.id.clone(), r.team.clone());
            http.push(HttpRule {
                id: r.id,
                team: r.team,
                spec: r.spec,
            });
        }
        let tcp: Vec<TcpRule> = self
            .routes
            .tcp_routes(None)
            .await?
            .into_iter()
            .map(|r| {
                teams.insert(r.id.clone(), r.team.clone());
                TcpRule {
                    id: r.id,
                    team: r.team,
                    spec: r.spec,
                }
            })
            .collect();
        let certificates: Vec<TlsCertificate> = self
            .routes
            .certificates(None)
            .await?
            .into_iter()
            .map(|c| TlsCertificate {
                name: c.info.name,
                team: c.info.team,
                cert_pem: c.cert_pem,
                key_pem: c.key_pem,
            })
            .collect();
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for r in &http {
                (&r.id, &r.team, serde_json::to_string(&r.spec).ok()).hash(&mut h);
            }
            for r in &tcp {
                (&r.id, &r.team, serde_json::to_string(&r.spec).ok()).hash(&mut h);
            }
            for c in &certificates {
                (&c.name, &c.team, &c.cert_pem, &c.key_pem).hash(&mut h);
            }
            h.finish()
        };
        if self.published.read().unwrap().fingerprint == fingerprint && fingerprint != 0 {
            return Ok(vec![]);
        }
        let failed = gw.apply(RouteSet {
            http: http.clone(),
            tcp,
            certificates,
        });
        for (id, why) in &failed {
            tracing::warn!(route = %id, %why, "TCP route cannot listen");
        }
        *self.published.write().unwrap() = Published {
            http,
            teams,
            // A failed bind is retried at the next refresh.
            fingerprint: if failed.is_empty() { fingerprint } else { 0 },
        };
        Ok(failed)
    }

    /// Where users reach `c` through the gateway.
    pub(crate) fn urls_of(&self, c: &Component) -> Vec<String> {
        let Some(gw) = &self.gateway else {
            return vec![];
        };
        let http_port = match gw.http_addr().port() {
            80 => String::new(),
            p => format!(":{p}"),
        };
        let https_port = gw.https_addr().map(|a| match a.port() {
            443 => String::new(),
            p => format!(":{p}"),
        });
        let published = self.published.read().unwrap();
        let mut urls = vec![];
        for r in &published.http {
            let targets_c = r.team == c.team
                && r.spec
                    .targets
                    .iter()
                    .any(|t| t.app == c.app && t.component == c.name && t.weight > 0);
            if !targets_c || r.spec.domain.starts_with("*.") {
                continue;
            }
            let url = match (&https_port, r.spec.https_redirect) {
                (Some(p), true) => format!("https://{}{p}{}", r.spec.domain, r.spec.path_prefix),
                _ => format!("http://{}{http_port}{}", r.spec.domain, r.spec.path_prefix),
            };
            urls.push(url);
        }
        urls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_subdomains_only() {
        assert!(covers("*.example.com", "a.example.com"));
        assert!(covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "aexample.com"));
        assert!(!covers("shop.example.com", "shop.example.com"));
    }

    #[test]
    fn clashes_between_domains() {
        assert!(clash("shop.example.com", "shop.example.com"));
        assert!(clash("*.example.com", "shop.example.com"));
        assert!(clash("shop.example.com", "*.example.com"));
        assert!(clash("*.example.com", "*.a.example.com"));
        assert!(clash("*.example.com", "*.example.com"));
        assert!(!clash("shop.example.com", "blog.example.com"));
        assert!(!clash("*.example.com", "example.com"));
        assert!(!clash("*.example.com", "*.example.org"));
    }
}
