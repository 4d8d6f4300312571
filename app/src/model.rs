//! The console's domain objects as the UI and the REST API show them.
//! They are plain serde types so the same definitions serve SSR, the WASM
//! bundle and the JSON API.

use serde::{Deserialize, Serialize};

/// A role a user holds inside one team, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Developer,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Developer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an API token may do: everything its owner may, or only read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum TokenScope {
    #[default]
    Full,
    ReadOnly,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Full => "full",
            TokenScope::ReadOnly => "read-only",
        }
    }
    pub fn parse(s: &str) -> Option<TokenScope> {
        match s {
            "full" => Some(TokenScope::Full),
            "read-only" => Some(TokenScope::ReadOnly),
            _ => None,
        }
    }
}

/// The signed-in user, as `GET /api/v1/me` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Me {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
    /// The teams this user belongs to, with the role held in each.
    pub teams: Vec<TeamMembership>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TeamMembership {
    pub team: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct User {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
    pub disabled: bool,
    /// Unix milliseconds.
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewUser {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
}

/// A change to a user made by a platform admin; absent fields stay as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UserUpdate {
    pub is_admin: Option<bool>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Team {
    pub id: i64,
    pub name: String,
    pub display_name: String,
    pub created_at: i64,
    pub member_count: i64,
    /// The caller's role in this team; `None` for a platform admin who is not a member.
    pub my_role: Option<Role>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewTeam {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Member {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub added_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewMember {
    pub username: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RoleChange {
    pub role: Role,
}

/// A team with its members and what the caller may do there, for the team page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TeamDetail {
    pub team: Team,
    pub members: Vec<Member>,
    pub can_manage_members: bool,
    pub can_delete: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// The first characters of the token, enough to recognise it in a list.
    pub prefix: String,
    pub scope: TokenScope,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewToken {
    pub name: String,
    #[serde(default)]
    pub scope: TokenScope,
}

/// A freshly created token: the only time its secret is ever shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    pub id: i64,
    pub name: String,
    pub scope: TokenScope,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub team: Option<String>,
    /// `ok`, `denied`, `failed` or `error`.
    pub result: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "ssr", into_params(parameter_in = Query))]
pub struct AuditQuery {
    /// Only this team's records.
    pub team: Option<String>,
    /// Only records with an id below this one (for paging back).
    pub before: Option<i64>,
    /// At most this many records (default 100, at most 500).
    pub limit: Option<i64>,
}

/// A datacenter as the console knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Datacenter {
    pub name: String,
    pub url: String,
    /// Public address of its gateway, if any.
    pub gateway: String,
    /// Runs inside this console process.
    pub embedded: bool,
    /// `online`, `degraded` or `offline`.
    pub state: String,
    /// Why it is in that state (the last error, or what is slow).
    pub state_reason: String,
    pub last_contact_at: Option<i64>,
    pub runtime: String,
    pub version: String,
    pub cpu_millicores: i64,
    pub memory_mb: i64,
    pub components: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewDatacenter {
    pub name: String,
    /// Base URL of its API, e.g. `http://10.0.0.5:7000`.
    pub url: String,
    pub token: String,
    #[serde(default)]
    pub gateway: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct OpenDatacenter {
    pub datacenter: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct App {
    pub name: String,
    pub display_name: String,
    pub team: String,
    pub created_at: i64,
    pub components: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewApp {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A component and the datacenter it lives in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PlacedComponent {
    pub datacenter: String,
    pub component: datacenter::api::Component,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AppDetail {
    pub app: App,
    pub components: Vec<PlacedComponent>,
    /// Datacenters that hold components of this app but did not answer.
    pub unreachable: Vec<String>,
    /// Datacenters this team may place components in.
    pub datacenters: Vec<String>,
    pub can_change: bool,
    pub can_manage_app: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewComponent {
    pub datacenter: String,
    pub spec: datacenter::api::ComponentSpec,
}

/// An operation's record, with the datacenter that ran it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PlacedEvent {
    pub datacenter: String,
    pub event: datacenter::api::Event,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ComponentAction {
    pub action: datacenter::api::ActionKind,
    /// For `scale`.
    #[serde(default)]
    pub replicas: Option<u32>,
    /// For `deploy` (default: the newest version) and `rollback` (required).
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EventRef {
    pub datacenter: String,
    pub event_id: String,
}

/// A component's push webhook: where a Git host delivers pushes and the
/// secret that signs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WebhookEndpoint {
    /// `<console>/api/v1/hooks/<team>/<app>/<component>`; public, the
    /// signature is the check.
    pub url: String,
    pub secret: String,
}

/// What the caller may do to the components of a team, so pages show only
/// the controls that will work (the server checks again on every call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ComponentRights {
    /// Upload, build, deploy, roll back, start, stop, scale, change.
    pub can_operate: bool,
    /// See the webhook secret (team admins).
    pub can_see_webhook: bool,
}

/// What a team may use in one datacenter; `None` means no limit. Memory and
/// CPU count every replica: a component with 3 replicas of 256 MB uses 768 MB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Quota {
    #[serde(default)]
    pub max_components: Option<i64>,
    #[serde(default)]
    pub max_memory_mb: Option<i64>,
    #[serde(default)]
    pub max_cpu_millicores: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Usage {
    pub components: i64,
    pub memory_mb: i64,
    pub cpu_millicores: i64,
}

/// A team's quota in a datacenter and what it uses now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct QuotaUsage {
    pub datacenter: String,
    pub quota: Quota,
    pub used: Usage,
}

/// What the caller may change in a team's gateway, so pages show only the
/// forms that will work (the server checks again on every call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RouteRights {
    /// Add and delete HTTP and TCP routes (team developers and up).
    pub can_manage_routes: bool,
    /// Upload and delete certificates (team admins and up).
    pub can_manage_certificates: bool,
}

/// A component a route may send traffic to, and the datacenter it lives in
/// (a route only reaches components of its own datacenter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTargetChoice {
    pub datacenter: String,
    pub app: String,
    pub component: String,
}

/// One datacenter's gateway as a team sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatacenterGateway {
    pub datacenter: String,
    pub gateway: Option<datacenter::api::GatewayInfo>,
    /// Why the datacenter's gateway could not be read, when it could not.
    pub error: Option<String>,
    pub http_routes: Vec<datacenter::api::HttpRoute>,
    pub tcp_routes: Vec<datacenter::api::TcpRoute>,
    pub certificates: Vec<datacenter::api::Certificate>,
    pub stats: Vec<datacenter::api::RouteStats>,
}

/// Everything the Routes page of a team shows, read in one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamGateway {
    pub team: String,
    pub rights: RouteRights,
    /// One entry per datacenter the team is opened in.
    pub datacenters: Vec<DatacenterGateway>,
    pub components: Vec<RouteTargetChoice>,
    /// The server's clock (unix ms) when this was read: certificate expiry
    /// is counted from it, so the server's page and the hydrated one agree.
    pub now: i64,
}

/// The Routes page as the browser gets it: rows ready to show, made on the
/// server from [`TeamGateway`]. Plain strings and numbers keep the
/// deserialising code in the WASM bundle small (the API types carry nested
/// and flattened structures the page does not need).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutesView {
    pub team: String,
    pub rights: RouteRights,
    pub datacenters: Vec<GatewayView>,
    /// Components a route may target: `(datacenter/app/component, label)`.
    pub targets: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayView {
    pub datacenter: String,
    /// `None` when the gateway could not be read; `error` says why.
    pub http: Option<String>,
    pub https: Option<String>,
    /// `<component>.<app>.<team>.<suffix>`.
    pub default_domain: String,
    pub error: Option<String>,
    pub http_routes: Vec<HttpRouteRow>,
    pub tcp_routes: Vec<TcpRouteRow>,
    pub certificates: Vec<CertificateRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRouteRow {
    pub id: String,
    pub domain: String,
    pub path_prefix: String,
    /// `header X-Beta = 1, cookie canary = yes`, or empty.
    pub matches: String,
    /// `shop/web ×90 (90 %)`, one per target.
    pub targets: Vec<String>,
    pub balance: String,
    pub https_redirect: bool,
    pub requests: u64,
    pub status_2xx: u64,
    pub status_5xx: u64,
    /// `12 ms`, or `—` before any request.
    pub p99: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpRouteRow {
    pub id: String,
    pub listen_port: u16,
    /// `app/component`.
    pub target: String,
    pub balance: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRow {
    pub name: String,
    pub domains: String,
    /// `2026-02-24 10:00 UTC`.
    pub valid_until: String,
    /// `expires in 89 days`, `expires today` or `expired`.
    pub expiry: String,
    /// `ok`, `soon` (under 30 days) or `expired`: the badge's colour.
    pub expiry_state: String,
}

#[cfg(feature = "ssr")]
mod routes_view {
    use super::*;
    use datacenter::api::Balance;

    const DAY_MS: i64 = 86_400_000;
    /// Certificates closer than this to their end are flagged.
    const EXPIRY_WARNING_DAYS: i64 = 30;

    fn balance(b: Balance) -> String {
        match b {
            Balance::RoundRobin => "round robin".into(),
            Balance::LeastConnections => "least connections".into(),
        }
    }

    /// `(text, state)` of a certificate's expiry badge, counted from `now`.
    pub fn expiry(not_after: i64, now: i64) -> (String, String) {
        let left = not_after - now;
        if left <= 0 {
            return ("expired".into(), "expired".into());
        }
        let days = left / DAY_MS;
        let text = match days {
            0 => "expires today".to_string(),
            1 => "expires in 1 day".to_string(),
            n => format!("expires in {n} days"),
        };
        let state = if days < EXPIRY_WARNING_DAYS {
            "soon"
        } else {
            "ok"
        };
        (text, state.into())
    }

    impl From<TeamGateway> for RoutesView {
        fn from(g: TeamGateway) -> Self {
            let several = g
                .components
                .iter()
                .any(|c| c.datacenter != g.components[0].datacenter);
            let targets = g
                .components
                .iter()
                .map(|c| {
                    let value = format!("{}/{}/{}", c.datacenter, c.app, c.component);
                    let label = if several {
                        format!("{}/{} (in {})", c.app, c.component, c.datacenter)
                    } else {
                        format!("{}/{}", c.app, c.component)
                    };
                    (value, label)
                })
                .collect();
            let now = g.now;
            let team = g.team.clone();
            let datacenters =
                g.datacenters
                    .into_iter()
                    .map(|d| {
                        let suffix = d
                            .gateway
                            .as_ref()
                            .map(|g| g.domain_suffix.clone())
                            .unwrap_or_default();
                        let stats = d.stats;
                        GatewayView {
                            http: d.gateway.as_ref().map(|g| g.http.clone()),
                            https: d.gateway.as_ref().and_then(|g| g.https.clone()),
                            default_domain: format!("<component>.<app>.{team}.{suffix}"),
                            error: d.error,
                            http_routes: d
                                .http_routes
                                .into_iter()
                                .map(|r| {
                                    let s = stats
                                        .iter()
                                        .find(|s| s.route == r.id)
                                        .cloned()
                                        .unwrap_or_default();
                                    let total: u64 =
                                        r.spec.targets.iter().map(|t| u64::from(t.weight)).sum();
                                    let matches =
                                        [
                                            r.spec.header.as_ref().map(|m| {
                                                format!("header {} = {}", m.name, m.value)
                                            }),
                                            r.spec.cookie.as_ref().map(|m| {
                                                format!("cookie {} = {}", m.name, m.value)
                                            }),
                                        ]
                                        .into_iter()
                                        .flatten()
                                        .collect::<Vec<_>>()
                                        .join(", ");
                                    HttpRouteRow {
                                        targets: r
                                            .spec
                                            .targets
                                            .iter()
                                            .map(|t| {
                                                let share = (u64::from(t.weight) * 100)
                                                    .checked_div(total)
                                                    .unwrap_or(0);
                                                format!(
                                                    "{}/{} ×{} ({share} %)",
                                                    t.app, t.component, t.weight
                                                )
                                            })
                                            .collect(),
                                        id: r.id,
                                        domain: r.spec.domain,
                                        path_prefix: r.spec.path_prefix,
                                        matches,
                                        balance: balance(r.spec.balance),
                                        https_redirect: r.spec.https_redirect,
                                        requests: s.requests,
                                        status_2xx: s.status_2xx,
                                        status_5xx: s.status_5xx,
                                        p99: if s.requests == 0 {
                                            "—".into()
                                        } else {
                                            format!("{:.0} ms", s.p99_ms)
                                        },
                                    }
                                })
                                .collect(),
                            tcp_routes: d
                                .tcp_routes
                                .into_iter()
                                .map(|r| TcpRouteRow {
                                    id: r.id,
                                    listen_port: r.spec.listen_port,
                                    target: format!("{}/{}", r.spec.app, r.spec.component),
                                    balance: balance(r.spec.balance),
                                })
                                .collect(),
                            certificates: d
                                .certificates
                                .into_iter()
                                .map(|c| {
                                    let (expiry, expiry_state) = expiry(c.not_after, now);
                                    CertificateRow {
                                        name: c.name,
                                        domains: c.domains.join(", "),
                                        valid_until: crate::components::format_time(c.not_after),
                                        expiry,
                                        expiry_state,
                                    }
                                })
                                .collect(),
                            datacenter: d.datacenter,
                        }
                    })
                    .collect();
            RoutesView {
                team: g.team,
                rights: g.rights,
                datacenters,
                targets,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::expiry;

        #[test]
        fn certificate_expiry_badges() {
            let now = 1_000 * super::DAY_MS;
            assert_eq!(expiry(now - 1, now), ("expired".into(), "expired".into()));
            assert_eq!(expiry(now + 3_600_000, now).0, "expires today");
            assert_eq!(expiry(now + super::DAY_MS + 5, now).0, "expires in 1 day");
            assert_eq!(
                expiry(now + 89 * super::DAY_MS + 5, now),
                ("expires in 89 days".into(), "ok".into())
            );
            assert_eq!(expiry(now + 10 * super::DAY_MS, now).1, "soon");
        }
    }
}
