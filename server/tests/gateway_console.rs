//! The gateway through the console, against a real `cloudport datacenter`
//! process: HTTP and TCP routes and certificates created, listed, changed and
//! deleted over the console's REST API, who may do which, a domain one team
//! holds refused to another, ids that try to leave their team, the audit
//! records (with no key material in them), and certificates that are not
//! certificates refused with a clear message.

mod common;

use common::certs::self_signed;
use common::datacenter_process::*;
use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct World {
    c: TestConsole,
    dc: DatacenterProcess,
    _dir: tempfile::TempDir,
    admin: Client,
    owner: Client,
    teamadmin: Client,
    developer: Client,
    viewer: Client,
    /// Owner of team `beta`, not a member of `alpha`.
    outsider: Client,
}

async fn ok(resp: reqwest::Response, want: StatusCode) -> Value {
    let (status, body) = status_and_json(resp).await;
    assert_eq!(status, want, "{body}");
    body
}

impl World {
    async fn new(b: Backend) -> World {
        let c = TestConsole::start(b).await;
        let admin = c.admin().await;
        let dir = tempfile::tempdir().unwrap();
        let dc = DatacenterProcess::start(dir.path(), free_port());
        dc.wait_ready().await;
        ok(
            admin
                .post(c.url("/api/v1/datacenters"))
                .json(&json!({"name": "dc2", "url": dc.url(), "token": TOKEN}))
                .send()
                .await
                .unwrap(),
            StatusCode::CREATED,
        )
        .await;
        for name in ["owner", "teamadmin", "developer", "viewer", "outsider"] {
            c.create_user(&admin, name).await;
        }
        let owner = c.login("owner", PASSWORD).await;
        let outsider = c.login("outsider", PASSWORD).await;
        for (who, team) in [(&owner, "alpha"), (&outsider, "beta")] {
            ok(
                who.post(c.url("/api/v1/teams"))
                    .json(&json!({"name": team}))
                    .send()
                    .await
                    .unwrap(),
                StatusCode::CREATED,
            )
            .await;
            ok(
                admin
                    .post(c.url(&format!("/api/v1/teams/{team}/datacenters")))
                    .json(&json!({"datacenter": "dc2"}))
                    .send()
                    .await
                    .unwrap(),
                StatusCode::NO_CONTENT,
            )
            .await;
            ok(
                who.post(c.url(&format!("/api/v1/teams/{team}/apps")))
                    .json(&json!({"name": "shop"}))
                    .send()
                    .await
                    .unwrap(),
                StatusCode::CREATED,
            )
            .await;
            for component in ["web", "next"] {
                ok(
                    who.post(c.url(&format!("/api/v1/teams/{team}/apps/shop/components")))
                        .json(&json!({"datacenter": "dc2", "spec": {
                            "name": component,
                            "source": {"kind": "upload"},
                            "ports": [{"port": 8080, "protocol": "http", "inner": true, "outer": true}]
                        }}))
                        .send()
                        .await
                        .unwrap(),
                    StatusCode::CREATED,
                )
                .await;
            }
        }
        for (user, role) in [
            ("teamadmin", "admin"),
            ("developer", "developer"),
            ("viewer", "viewer"),
        ] {
            ok(
                owner
                    .post(c.url("/api/v1/teams/alpha/members"))
                    .json(&json!({"username": user, "role": role}))
                    .send()
                    .await
                    .unwrap(),
                StatusCode::CREATED,
            )
            .await;
        }
        World {
            teamadmin: c.login("teamadmin", PASSWORD).await,
            developer: c.login("developer", PASSWORD).await,
            viewer: c.login("viewer", PASSWORD).await,
            c,
            dc,
            _dir: dir,
            admin,
            owner,
            outsider,
        }
    }

    fn url(&self, team: &str, tail: &str) -> String {
        self.c
            .url(&format!("/api/v1/teams/{team}/datacenters/dc2{tail}"))
    }

    async fn audit(&self, action: &str) -> Vec<(String, String, String)> {
        sqlx::query_as("SELECT target, result, detail FROM audit_log WHERE action = $1 ORDER BY id")
            .bind(action)
            .fetch_all(&self.c.console.db.pool)
            .await
            .unwrap()
    }
}

fn route(domain: &str, targets: Value) -> Value {
    json!({"domain": domain, "path_prefix": "/", "targets": targets})
}

on_both_backends!(routes_and_certificates_through_the_console);

async fn routes_and_certificates_through_the_console(b: Backend) {
    let w = World::new(b).await;
    let web = json!([{"app": "shop", "component": "web", "weight": 1}]);

    // Every member sees the gateway and the (empty) tables.
    let info = ok(
        w.viewer
            .get(w.url("alpha", "/gateway"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(info["http"], format!("127.0.0.1:{}", w.dc.gateway_port));
    for tail in ["/routes/http", "/routes/tcp", "/certificates"] {
        let list = ok(
            w.viewer.get(w.url("alpha", tail)).send().await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(list, json!([]), "{tail}");
    }
    // Traffic figures: the default domains of both components, unused.
    let stats = ok(
        w.viewer
            .get(w.url("alpha", "/routes/stats"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(
        stats.as_array().unwrap().iter().all(|s| s["route"]
            .as_str()
            .unwrap()
            .starts_with("default:")
            && s["requests"] == 0),
        "{stats}"
    );
    // A datacenter the team is not opened in is not there for it.
    let (status, body) = status_and_json(
        w.owner
            .get(w.c.url("/api/v1/teams/alpha/datacenters/nowhere/routes/http"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // HTTP routes: viewers may not add one, developers may.
    let create = |who: &Client, team: &str, body: Value| {
        who.post(w.url(team, "/routes/http")).json(&body).send()
    };
    let (status, body) = status_and_json(
        create(&w.viewer, "alpha", route("shop.example.com", web.clone()))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let created = ok(
        create(
            &w.developer,
            "alpha",
            json!({
                "domain": "shop.example.com",
                "path_prefix": "/",
                "targets": [{"app": "shop", "component": "web", "weight": 90}, {"app": "shop", "component": "next", "weight": 10}],
                "header": {"name": "X-Beta", "value": "1"},
                "balance": "least_connections"
            }),
        )
        .await
        .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["team"], "alpha");
    assert_eq!(created["balance"], "least_connections");
    let list = ok(
        w.viewer
            .get(w.url("alpha", "/routes/http"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["domain"], "shop.example.com");
    assert_eq!(list[0]["targets"][1]["weight"], 10);

    // A target the team does not have, and a datacenter's own refusal.
    let (status, body) = status_and_json(
        create(
            &w.developer,
            "alpha",
            route(
                "other.example.com",
                json!([{"app": "shop", "component": "ghost", "weight": 1}]),
            ),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("shop/ghost"),
        "{body}"
    );
    let (status, body) = status_and_json(
        create(&w.developer, "alpha", route("not a domain!", web.clone()))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("domain"),
        "{body}"
    );

    // Team beta cannot take alpha's domain.
    let (status, body) = status_and_json(
        create(&w.outsider, "beta", route("shop.example.com", web.clone()))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Nor see alpha's routes, nor reach them through its own team.
    let (status, _) = status_and_json(
        w.outsider
            .get(w.url("alpha", "/routes/http"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = status_and_json(
        w.outsider
            .delete(w.url("beta", &format!("/routes/http/{id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // An id that tries to climb out of its path never reaches the datacenter.
    let (status, body) = status_and_json(
        w.outsider
            .delete(w.url("beta", "/routes/http/..%2F..%2Falpha%2Froutes%2Fhttp%2Fx"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // A change: a path prefix and one target.
    let changed = ok(
        w.developer
            .put(w.url("alpha", &format!("/routes/http/{id}")))
            .json(&json!({"domain": "shop.example.com", "path_prefix": "/api", "targets": web, "https_redirect": true}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["id"], id.as_str());
    assert_eq!(changed["path_prefix"], "/api");
    assert_eq!(changed["targets"].as_array().unwrap().len(), 1);

    // The component lists the route among its URLs (once the gateway has it).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = ok(
            w.viewer
                .get(w.c.url("/api/v1/teams/alpha/apps/shop/components/web"))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        let urls = c["component"]["urls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if urls
            .iter()
            .any(|u| u.as_str().unwrap_or("").contains("shop.example.com"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no route URL: {c}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ok(
        w.viewer
            .get(w.url("alpha", "/routes/stats"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;

    // A read-only token of a developer changes nothing.
    let token = ok(
        w.developer
            .post(w.c.url("/api/v1/tokens"))
            .json(&json!({"name": "ro", "scope": "read-only"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let ro = client();
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let (status, body) = status_and_json(
        ro.post(w.url("alpha", "/routes/http"))
            .header("authorization", &bearer)
            .json(&route("ro.example.com", web.clone()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = status_and_json(
        ro.get(w.url("alpha", "/routes/http"))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // TCP routes.
    let port = free_port();
    let (status, _) = status_and_json(
        w.viewer
            .post(w.url("alpha", "/routes/tcp"))
            .json(&json!({"listen_port": port, "app": "shop", "component": "web"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let tcp = ok(
        w.developer
            .post(w.url("alpha", "/routes/tcp"))
            .json(&json!({"listen_port": port, "app": "shop", "component": "web"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(tcp["listen_port"], port);
    let tcp_id = tcp["id"].as_str().unwrap().to_string();
    let list = ok(
        w.viewer
            .get(w.url("alpha", "/routes/tcp"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list[0]["id"], tcp_id.as_str());
    // The same port for team beta: taken.
    let (status, body) = status_and_json(
        w.outsider
            .post(w.url("beta", "/routes/tcp"))
            .json(&json!({"listen_port": port, "app": "shop", "component": "web"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    ok(
        w.developer
            .delete(w.url("alpha", &format!("/routes/tcp/{tcp_id}")))
            .send()
            .await
            .unwrap(),
        StatusCode::NO_CONTENT,
    )
    .await;
    let list = ok(
        w.viewer
            .get(w.url("alpha", "/routes/tcp"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list, json!([]));

    // Certificates: team admins only; garbage and mismatched keys refused clearly.
    let (cert, key) = self_signed("shop.example.com", 90);
    let (_, other_key) = self_signed("other.example.com", 90);
    let upload =
        |who: &Client, body: Value| who.post(w.url("alpha", "/certificates")).json(&body).send();
    let (status, _) = status_and_json(
        upload(
            &w.developer,
            json!({"name": "shop", "cert_pem": cert, "key_pem": key}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = status_and_json(
        upload(
            &w.teamadmin,
            json!({"name": "shop", "cert_pem": "hello", "key_pem": key}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["message"].as_str().unwrap().contains("PEM"), "{body}");
    let garbage_pem =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let (status, body) = status_and_json(
        upload(
            &w.teamadmin,
            json!({"name": "shop", "cert_pem": garbage_pem, "key_pem": key}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
    let (status, body) = status_and_json(
        upload(
            &w.teamadmin,
            json!({"name": "shop", "cert_pem": cert, "key_pem": other_key}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = status_and_json(
        upload(
            &w.teamadmin,
            json!({"name": "shop", "cert_pem": cert, "key_pem": format!("{key}{}", "A".repeat(70_000))}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("64 KiB"),
        "{body}"
    );
    let stored = ok(
        upload(
            &w.teamadmin,
            json!({"name": "shop", "cert_pem": cert, "key_pem": key}),
        )
        .await
        .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(stored["domains"], json!(["shop.example.com"]));
    let days_left = (stored["not_after"].as_i64().unwrap()
        - stored["not_before"].as_i64().unwrap())
        / 86_400_000;
    assert!((89..=91).contains(&days_left), "{stored}");
    let list = ok(
        w.viewer
            .get(w.url("alpha", "/certificates"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list[0]["name"], "shop");
    assert!(
        !list.to_string().contains("PRIVATE KEY"),
        "keys are never listed: {list}"
    );
    let (status, _) = status_and_json(
        w.developer
            .delete(w.url("alpha", "/certificates/shop"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    ok(
        w.teamadmin
            .delete(w.url("alpha", "/certificates/shop"))
            .send()
            .await
            .unwrap(),
        StatusCode::NO_CONTENT,
    )
    .await;
    let (status, _) = status_and_json(
        w.teamadmin
            .delete(w.url("alpha", "/certificates/shop"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleting the HTTP route.
    ok(
        w.developer
            .delete(w.url("alpha", &format!("/routes/http/{id}")))
            .send()
            .await
            .unwrap(),
        StatusCode::NO_CONTENT,
    )
    .await;
    let list = ok(
        w.admin
            .get(w.url("alpha", "/routes/http"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list, json!([]));

    // The audit log: every attempt, refused ones too, and never a key.
    let created = w.audit("route.http.create").await;
    assert!(
        created
            .iter()
            .any(|(t, r, _)| r == "ok" && t == "route shop.example.com/ in dc2"),
        "{created:?}"
    );
    assert!(created.iter().any(|(_, r, _)| r == "denied"), "{created:?}");
    assert!(created.iter().any(|(_, r, _)| r == "failed"), "{created:?}");
    let updated = w.audit("route.http.update").await;
    assert_eq!(updated[0].1, "ok", "{updated:?}");
    let deleted = w.audit("route.http.delete").await;
    assert!(
        deleted
            .iter()
            .any(|(t, r, _)| r == "ok" && t == "route shop.example.com/api in dc2"),
        "{deleted:?}"
    );
    let tcp_rows = [
        w.audit("route.tcp.create").await,
        w.audit("route.tcp.delete").await,
    ]
    .concat();
    assert!(
        tcp_rows
            .iter()
            .any(|(t, r, _)| r == "ok" && t == &format!("tcp route :{port} to shop/web in dc2")),
        "{tcp_rows:?}"
    );
    let certs = [
        w.audit("certificate.upload").await,
        w.audit("certificate.delete").await,
    ]
    .concat();
    assert!(
        certs
            .iter()
            .any(|(t, r, _)| r == "ok" && t == "certificate shop (shop.example.com) in dc2"),
        "{certs:?}"
    );
    assert!(certs.iter().any(|(_, r, _)| r == "denied"), "{certs:?}");
    assert!(certs.iter().any(|(_, r, _)| r == "failed"), "{certs:?}");
    let all: Vec<(String, String)> = sqlx::query_as("SELECT target, detail FROM audit_log")
        .fetch_all(&w.c.console.db.pool)
        .await
        .unwrap();
    let key_body = key.lines().nth(1).unwrap();
    for (target, detail) in &all {
        for text in [target, detail] {
            assert!(
                !text.contains("PRIVATE KEY") && !text.contains(key_body),
                "key material in the audit log: {text}"
            );
        }
    }
}
