//! Every REST route against every kind of caller: anonymous, platform admin,
//! the four team roles and a signed-in outsider. The expected status of each
//! pair is written down here; the test also fails when a route exists in the
//! OpenAPI document but not in this table.

mod common;

use app::model::{NewApp, NewComponent, NewMember, NewTeam, Role};
use common::*;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use server::console::Actor;
use std::collections::BTreeSet;

const ACTORS: [&str; 7] = [
    "anonymous",
    "platform-admin",
    "owner",
    "admin",
    "developer",
    "viewer",
    "outsider",
];

/// Expected statuses, in `ACTORS` order.
struct Case {
    method: Method,
    /// Route pattern as in the OpenAPI document.
    route: &'static str,
    body: Option<Value>,
    /// A raw body instead of JSON (a source archive).
    raw: Option<fn() -> Vec<u8>>,
    expect: [u16; 7],
}

/// A small, valid tar.gz source archive (its build finds nothing to run).
fn archive() -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let text = b"nothing to run here\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "README.txt", &text[..])
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

fn cases() -> Vec<Case> {
    use Method as M;
    let c = |method: Method, route: &'static str, body: Option<Value>, expect: [u16; 7]| Case {
        method,
        route,
        body,
        raw: None,
        expect,
    };
    vec![
        c(M::GET, "/healthz", None, [200; 7]),
        c(M::GET, "/metrics", None, [200; 7]),
        c(M::GET, "/api/v1/openapi.json", None, [200; 7]),
        c(
            M::POST,
            "/api/v1/auth/login",
            Some(json!({"username": "{fresh}", "password": "wrong-password"})),
            [401; 7],
        ),
        c(M::POST, "/api/v1/auth/logout", None, [204; 7]),
        c(
            M::GET,
            "/api/v1/me",
            None,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        // A wrong current password: everyone signed in gets past authorisation to validation.
        c(
            M::PUT,
            "/api/v1/me/password",
            Some(json!({"current_password": "wrong-password", "new_password": "whatever-123"})),
            [401, 422, 422, 422, 422, 422, 422],
        ),
        c(
            M::GET,
            "/api/v1/users",
            None,
            [401, 200, 403, 403, 403, 403, 403],
        ),
        c(
            M::POST,
            "/api/v1/users",
            Some(json!({"username": "{fresh}", "password": PASSWORD})),
            [401, 201, 403, 403, 403, 403, 403],
        ),
        c(
            M::PATCH,
            "/api/v1/users/{id}",
            Some(json!({"disabled": false})),
            [401, 200, 403, 403, 403, 403, 403],
        ),
        c(
            M::GET,
            "/api/v1/teams",
            None,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        c(
            M::POST,
            "/api/v1/teams",
            Some(json!({"name": "{fresh}"})),
            [401, 201, 201, 201, 201, 201, 201],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        c(
            M::DELETE,
            "/api/v1/teams/{team}",
            None,
            [401, 204, 204, 403, 403, 403, 404],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/members",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        c(
            M::POST,
            "/api/v1/teams/{team}/members",
            Some(json!({"username": "spare", "role": "developer"})),
            [401, 201, 201, 201, 403, 403, 404],
        ),
        c(
            M::PUT,
            "/api/v1/teams/{team}/members/{username}",
            Some(json!({"role": "developer"})),
            [401, 200, 200, 200, 403, 403, 404],
        ),
        c(
            M::DELETE,
            "/api/v1/teams/{team}/members/{username}",
            None,
            [401, 204, 204, 204, 403, 403, 404],
        ),
        c(
            M::GET,
            "/api/v1/tokens",
            None,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        c(
            M::POST,
            "/api/v1/tokens",
            Some(json!({"name": "matrix"})),
            [401, 201, 201, 201, 201, 201, 201],
        ),
        // Someone else's token: nobody may revoke it, not even an admin.
        c(
            M::DELETE,
            "/api/v1/tokens/{id}",
            None,
            [401, 404, 404, 404, 404, 404, 404],
        ),
        c(
            M::GET,
            "/api/v1/audit",
            None,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        c(
            M::GET,
            "/api/v1/datacenters",
            None,
            [401, 200, 200, 200, 200, 200, 200],
        ),
        // Nothing listens there: the admin passes authorisation and gets the reachability error.
        c(
            M::POST,
            "/api/v1/datacenters",
            Some(
                json!({"name": "{fresh}", "url": "http://127.0.0.1:9", "token": "0123456789abcdef"}),
            ),
            [401, 422, 403, 403, 403, 403, 403],
        ),
        c(
            M::DELETE,
            "/api/v1/datacenters/{name}",
            None,
            [401, 404, 403, 403, 403, 403, 403],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/datacenters",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        c(
            M::POST,
            "/api/v1/teams/{team}/datacenters",
            Some(json!({"datacenter": "local"})),
            [401, 204, 403, 403, 403, 403, 403],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/datacenters/{datacenter}/quota",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        c(
            M::PUT,
            "/api/v1/teams/{team}/datacenters/{datacenter}/quota",
            Some(json!({"max_components": 50})),
            [401, 200, 403, 403, 403, 403, 403],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/apps",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        c(
            M::POST,
            "/api/v1/teams/{team}/apps",
            Some(json!({"name": "{fresh}"})),
            [401, 201, 201, 201, 403, 403, 404],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/apps/{app}",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        // The app still holds a component: allowed callers get the conflict.
        c(
            M::DELETE,
            "/api/v1/teams/{team}/apps/{app}",
            None,
            [401, 409, 409, 409, 403, 403, 404],
        ),
        c(
            M::POST,
            "/api/v1/teams/{team}/apps/{app}/components",
            Some(
                json!({"datacenter": "local", "spec": {"name": "{fresh}", "source": {"kind": "image", "image": "nginx:1"}}}),
            ),
            [401, 201, 201, 201, 201, 403, 404],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/apps/{app}/components/{name}",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        c(
            M::PUT,
            "/api/v1/teams/{team}/apps/{app}/components/{name}",
            Some(json!({"name": "web", "source": {"kind": "image", "image": "nginx:2"}})),
            [401, 200, 200, 200, 200, 403, 404],
        ),
        c(
            M::DELETE,
            "/api/v1/teams/{team}/apps/{app}/components/{name}",
            None,
            [401, 202, 202, 202, 202, 403, 404],
        ),
        c(
            M::POST,
            "/api/v1/teams/{team}/apps/{app}/components/{name}/actions",
            Some(json!({"action": "stop"})),
            [401, 202, 202, 202, 202, 403, 404],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/events",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/events/{datacenter}/{id}",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        // A plain GET is no WebSocket handshake: signed-in callers get past authentication to the upgrade check.
        c(
            M::GET,
            "/api/v1/ws",
            None,
            [401, 400, 400, 400, 400, 400, 400],
        ),
        Case {
            method: M::PUT,
            route: "/api/v1/teams/{team}/apps/{app}/components/{name}/source",
            body: None,
            raw: Some(archive),
            expect: [401, 202, 202, 202, 202, 403, 404],
        },
        c(
            M::GET,
            "/api/v1/teams/{team}/apps/{app}/components/{name}/versions",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/apps/{app}/components/{name}/replicas",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/apps/{app}/components/{name}/logs?q=x&limit=10",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        // The secret can trigger builds: team admins and up.
        c(
            M::GET,
            "/api/v1/teams/{team}/apps/{app}/components/{name}/webhook",
            None,
            [401, 200, 200, 200, 403, 403, 404],
        ),
        // Public: nobody signs in; the datacenter refuses the missing signature.
        c(
            M::POST,
            "/api/v1/hooks/{team}/{app}/{name}",
            Some(json!({"ref": "refs/heads/main"})),
            [401; 7],
        ),
        c(
            M::POST,
            "/api/v1/teams/{team}/datacenters/{datacenter}/detect",
            Some(json!({"source": {"kind": "image", "image": "nginx:1"}})),
            [401, 200, 200, 200, 200, 403, 404],
        ),
        // The preview of an upload: who may detect; a README alone is served as a static site.
        Case {
            method: M::POST,
            route: "/api/v1/teams/{team}/datacenters/{datacenter}/detect/archive?language=static",
            body: None,
            raw: Some(archive),
            expect: [401, 200, 200, 200, 200, 403, 404],
        },
        // The gateway: every member reads; developers and up change routes;
        // certificates (private keys) need a team admin.
        c(
            M::GET,
            "/api/v1/teams/{team}/datacenters/{datacenter}/gateway",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/datacenters/{datacenter}/routes/http",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        c(
            M::POST,
            "/api/v1/teams/{team}/datacenters/{datacenter}/routes/http",
            Some(
                json!({"domain": "{fresh}.example.com", "targets": [{"app": "shop", "component": "web", "weight": 1}]}),
            ),
            [401, 201, 201, 201, 201, 403, 404],
        ),
        c(
            M::PUT,
            "/api/v1/teams/{team}/datacenters/{datacenter}/routes/http/{id}",
            Some(
                json!({"domain": "{fresh}.example.com", "path_prefix": "/v2", "targets": [{"app": "shop", "component": "web", "weight": 1}]}),
            ),
            [401, 200, 200, 200, 200, 403, 404],
        ),
        c(
            M::DELETE,
            "/api/v1/teams/{team}/datacenters/{datacenter}/routes/http/{id}",
            None,
            [401, 204, 204, 204, 204, 403, 404],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/datacenters/{datacenter}/routes/tcp",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        c(
            M::POST,
            "/api/v1/teams/{team}/datacenters/{datacenter}/routes/tcp",
            Some(json!({"listen_port": "{port}", "app": "shop", "component": "web"})),
            [401, 201, 201, 201, 201, 403, 404],
        ),
        c(
            M::DELETE,
            "/api/v1/teams/{team}/datacenters/{datacenter}/routes/tcp/{id}",
            None,
            [401, 204, 204, 204, 204, 403, 404],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/datacenters/{datacenter}/certificates",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
        c(
            M::POST,
            "/api/v1/teams/{team}/datacenters/{datacenter}/certificates",
            Some(json!({"name": "{fresh}", "cert_pem": "{cert}", "key_pem": "{key}"})),
            [401, 201, 201, 201, 403, 403, 404],
        ),
        c(
            M::DELETE,
            "/api/v1/teams/{team}/datacenters/{datacenter}/certificates/{name}",
            None,
            [401, 204, 204, 204, 403, 403, 404],
        ),
        c(
            M::GET,
            "/api/v1/teams/{team}/datacenters/{datacenter}/routes/stats",
            None,
            [401, 200, 200, 200, 200, 200, 404],
        ),
    ]
}

/// Gateway rules that one request per route does not show.
fn gateway_cases() -> Vec<Case> {
    use Method as M;
    let c = |method: Method, route: &'static str, body: Option<Value>, expect: [u16; 7]| Case {
        method,
        route,
        body,
        raw: None,
        expect,
    };
    vec![
        // A datacenter the team is not opened in does not exist for it.
        c(
            M::GET,
            "/api/v1/teams/{team}/datacenters/nowhere/routes/http",
            None,
            [401, 404, 404, 404, 404, 404, 404],
        ),
        // A target the team does not have.
        c(
            M::POST,
            "/api/v1/teams/{team}/datacenters/{datacenter}/routes/http",
            Some(
                json!({"domain": "{fresh}.example.com", "targets": [{"app": "shop", "component": "ghost", "weight": 1}]}),
            ),
            [401, 404, 404, 404, 404, 403, 404],
        ),
        // Not a certificate: refused with a reason to those who may upload.
        c(
            M::POST,
            "/api/v1/teams/{team}/datacenters/{datacenter}/certificates",
            Some(json!({"name": "{fresh}", "cert_pem": "hello", "key_pem": "{key}"})),
            [401, 422, 422, 422, 403, 403, 404],
        ),
    ]
}

/// Build operations through the actions route, and the rules of the
/// routes above that one request per route does not show.
fn build_cases() -> Vec<Case> {
    use Method as M;
    let c = |route: &'static str, body: Value, expect: [u16; 7]| Case {
        method: M::POST,
        route,
        body: Some(body),
        raw: None,
        expect,
    };
    vec![
        c(
            "/api/v1/teams/{team}/apps/{app}/components/{name}/actions",
            json!({"action": "build"}),
            [401, 202, 202, 202, 202, 403, 404],
        ),
        c(
            "/api/v1/teams/{team}/apps/{app}/components/{name}/actions",
            json!({"action": "deploy"}),
            [401, 202, 202, 202, 202, 403, 404],
        ),
        // Rolling back needs a version; callers who may act learn that.
        c(
            "/api/v1/teams/{team}/apps/{app}/components/{name}/actions",
            json!({"action": "rollback"}),
            [401, 422, 422, 422, 422, 403, 404],
        ),
        // A version that does not exist.
        c(
            "/api/v1/teams/{team}/apps/{app}/components/{name}/actions",
            json!({"action": "rollback", "version": "v9"}),
            [401, 404, 404, 404, 404, 403, 404],
        ),
        // A hook for a component that does not exist: 404 for everyone.
        c("/api/v1/hooks/{team}/{app}/nope", json!({}), [404; 7]),
        // Detection only in datacenters the team may use.
        c(
            "/api/v1/teams/{team}/datacenters/nowhere/detect",
            json!({"source": {"kind": "image", "image": "nginx:1"}}),
            [401, 422, 422, 422, 422, 403, 404],
        ),
        Case {
            method: M::POST,
            route: "/api/v1/teams/{team}/datacenters/nowhere/detect/archive?language=static",
            body: None,
            raw: Some(archive),
            expect: [401, 422, 422, 422, 422, 403, 404],
        },
    ]
}

/// Owner-only rules that the route table alone does not show.
fn owner_cases() -> Vec<Case> {
    use Method as M;
    vec![
        // Granting ownership needs an owner.
        Case {
            method: M::POST,
            route: "/api/v1/teams/{team}/members",
            raw: None,
            body: Some(json!({"username": "spare", "role": "owner"})),
            expect: [401, 201, 201, 403, 403, 403, 404],
        },
        // Touching an owner needs an owner; the last owner cannot be removed.
        Case {
            method: M::DELETE,
            route: "/api/v1/teams/{team}/members/owner",
            raw: None,
            body: None,
            expect: [401, 409, 409, 403, 403, 403, 404],
        },
        // Team audit: team admins and up.
        Case {
            method: M::GET,
            route: "/api/v1/audit?team={team}",
            raw: None,
            body: None,
            expect: [401, 200, 200, 200, 403, 403, 404],
        },
    ]
}

struct World {
    c: TestConsole,
    /// A certificate and key for uploads: `{cert}` and `{key}` in bodies.
    cert: (String, String),
    clients: Vec<Client>,
    owner: Actor,
    spare_id: i64,
    foreign_token: i64,
    n: std::cell::Cell<u32>,
}

impl World {
    async fn new(b: Backend) -> World {
        let c = TestConsole::start_with(b, |cfg| cfg.no_embedded_datacenter = false).await;
        let admin = c.admin().await;
        let mut ids = std::collections::HashMap::new();
        for name in [
            "owner",
            "teamadmin",
            "developer",
            "viewer",
            "outsider",
            "spare",
        ] {
            ids.insert(name, c.create_user(&admin, name).await);
        }
        let mut clients = vec![client(), admin];
        for name in ["owner", "teamadmin", "developer", "viewer", "outsider"] {
            clients.push(c.login(name, PASSWORD).await);
        }
        let spare = c.login("spare", PASSWORD).await;
        let token: Value = spare
            .post(c.url("/api/v1/tokens"))
            .json(&json!({"name": "not-yours"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let owner = Actor {
            user_id: ids["owner"],
            username: "owner".into(),
            is_admin: false,
            scope: Default::default(),
            token_id: None,
        };
        World {
            c,
            cert: common::certs::self_signed("matrix.example.com", 30),
            clients,
            owner,
            spare_id: ids["spare"],
            foreign_token: token["id"].as_i64().unwrap(),
            n: Default::default(),
        }
    }

    /// A new team owned by `owner` with one member of each other role, an
    /// app `shop` and a component `web` in the embedded datacenter, so
    /// destructive checks never depend on each other. Returns the team and
    /// the id of the component's create event.
    async fn fresh_team(&self) -> (String, String) {
        let name = self.fresh("team");
        let console = &self.c.console;
        console
            .create_team(
                &self.owner,
                NewTeam {
                    name: name.clone(),
                    display_name: None,
                },
            )
            .await
            .unwrap();
        for (user, role) in [
            ("teamadmin", Role::Admin),
            ("developer", Role::Developer),
            ("viewer", Role::Viewer),
        ] {
            console
                .add_member(
                    &self.owner,
                    &name,
                    NewMember {
                        username: user.into(),
                        role,
                    },
                )
                .await
                .unwrap();
        }
        console
            .create_app(
                &self.owner,
                &name,
                NewApp {
                    name: "shop".into(),
                    display_name: None,
                },
            )
            .await
            .unwrap();
        // Built from uploads, so the source route has something to feed.
        let spec: datacenter::api::ComponentSpec =
            serde_json::from_value(json!({"name": "web", "source": {"kind": "upload"}})).unwrap();
        let created = console
            .create_component(
                &self.owner,
                &name,
                "shop",
                NewComponent {
                    datacenter: "local".into(),
                    spec,
                },
            )
            .await
            .unwrap();
        (name, created.event_id)
    }

    /// For the routes on one route, certificate or TCP route: makes it in
    /// `team` (as its owner) and returns its id or name.
    async fn gateway_target(&self, route: &str, team: &str) -> Option<String> {
        let console = &self.c.console;
        let web = json!([{"app": "shop", "component": "web", "weight": 1}]);
        if route.ends_with("/routes/http/{id}") {
            let spec = serde_json::from_value(
                json!({"domain": format!("{}.example.com", self.fresh("r")), "targets": web}),
            )
            .unwrap();
            let r = console
                .create_http_route(&self.owner, team, "local", spec)
                .await
                .unwrap();
            Some(r.id)
        } else if route.ends_with("/routes/tcp/{id}") {
            let spec = serde_json::from_value(json!({
                "listen_port": common::datacenter_process::free_port(),
                "app": "shop",
                "component": "web"
            }))
            .unwrap();
            let r = console
                .create_tcp_route(&self.owner, team, "local", spec)
                .await
                .unwrap();
            Some(r.id)
        } else if route.ends_with("/certificates/{name}") {
            let upload = datacenter::api::CertificateUpload {
                name: "matrix".into(),
                cert_pem: self.cert.0.clone(),
                key_pem: self.cert.1.clone(),
            };
            let c = console
                .upload_certificate(&self.owner, team, "local", upload)
                .await
                .unwrap();
            Some(c.name)
        } else {
            None
        }
    }

    fn fresh(&self, prefix: &str) -> String {
        self.n.set(self.n.get() + 1);
        format!("{prefix}{}", self.n.get())
    }

    async fn check(&self, case: &Case) -> Vec<String> {
        let mut failures = vec![];
        for (i, actor) in ACTORS.iter().enumerate() {
            // Logging out would end the session the next checks need.
            let client = if case.route == "/api/v1/auth/logout" {
                client()
            } else {
                self.clients[i].clone()
            };
            let (team, event) = self.fresh_team().await;
            let target = self.gateway_target(case.route, &team).await;
            let path = case
                .route
                .replace("{team}", &team)
                .replace("{app}", "shop")
                .replace("{datacenter}", "local")
                .replace(
                    "{name}",
                    if case.route.starts_with("/api/v1/datacenters") {
                        "nope"
                    } else if let Some(t) = &target {
                        t
                    } else {
                        "web"
                    },
                )
                .replace("{username}", "viewer")
                .replace(
                    "{id}",
                    &if case.route.starts_with("/api/v1/tokens") {
                        self.foreign_token.to_string()
                    } else if let Some(t) = &target {
                        t.clone()
                    } else if case.route.contains("/events/") {
                        event
                    } else {
                        self.spare_id.to_string()
                    },
                );
            let body = case.body.as_ref().map(|b| {
                let text = b
                    .to_string()
                    .replace("{fresh}", &self.fresh("x"))
                    .replace(
                        "\"{port}\"",
                        &common::datacenter_process::free_port().to_string(),
                    )
                    .replace("\"{cert}\"", &serde_json::to_string(&self.cert.0).unwrap())
                    .replace("\"{key}\"", &serde_json::to_string(&self.cert.1).unwrap());
                serde_json::from_str::<Value>(&text).unwrap()
            });
            let mut req = client.request(case.method.clone(), self.c.url(&path));
            if let Some(body) = body {
                req = req.json(&body);
            }
            if let Some(raw) = case.raw {
                req = req
                    .header("content-type", "application/octet-stream")
                    .body(raw());
            }
            let got = req.send().await.unwrap().status();
            if got != StatusCode::from_u16(case.expect[i]).unwrap() {
                failures.push(format!(
                    "{} {} as {actor}: expected {}, got {}",
                    case.method,
                    case.route,
                    case.expect[i],
                    got.as_u16()
                ));
            }
        }
        failures
    }
}

on_both_backends!(every_route_and_role);

async fn every_route_and_role(b: Backend) {
    let world = World::new(b).await;
    let mut failures = vec![];
    for case in cases()
        .iter()
        .chain(owner_cases().iter())
        .chain(build_cases().iter())
        .chain(gateway_cases().iter())
    {
        failures.extend(world.check(case).await);
    }
    assert!(
        failures.is_empty(),
        "role matrix mismatches:\n{}",
        failures.join("\n")
    );

    // The table covers every route the API documents.
    let doc: Value = client()
        .get(world.c.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let tested: BTreeSet<String> = cases()
        .iter()
        .map(|c| {
            let route = c.route.split('?').next().unwrap();
            format!("{} {route}", c.method)
        })
        .collect();
    let untested: Vec<_> = documented.difference(&tested).collect();
    assert!(
        untested.is_empty(),
        "routes missing from the role matrix: {untested:?}"
    );
    assert!(documented.len() >= 20, "{documented:?}");
}
