//! The fixed outside surface: health, metrics, OpenAPI, and the console pages
//! rendered on the server (they must read without the WASM bundle).

mod common;

use common::*;
use reqwest::{header, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    health_metrics_and_openapi,
    pages_render_on_the_server_and_require_login,
    teams_members_and_audit_flow
);

async fn health_metrics_and_openapi(b: Backend) {
    let c = TestConsole::start(b).await;
    let resp = client().get(c.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    client().get(c.url("/api/v1/teams")).send().await.unwrap();
    let resp = client().get(c.url("/metrics")).send().await.unwrap();
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("# TYPE cloudport_http_requests counter"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"cloudport_http_requests_total{method="GET",route="/api/v1/teams",status="401"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("cloudport_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));

    let doc: Value = client()
        .get(c.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/tokens",
        "/healthz",
        "/metrics",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
    assert!(doc["components"]["schemas"].get("Me").is_some());
}

async fn pages_render_on_the_server_and_require_login(b: Backend) {
    let c = TestConsole::start(b).await;
    // Signed out: console pages redirect to the login page, keeping the target.
    let resp = client().get(c.url("/teams")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/login?next=/teams");
    let html = client()
        .get(c.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"action="/login""#) && html.contains(r#"name="password""#),
        "{html}"
    );

    // The plain form login works without JavaScript and honours `next`.
    let browser = client();
    let resp = browser
        .post(c.url("/login"))
        .form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("next", "/teams"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/teams");
    let resp = client()
        .post(c.url("/login"))
        .form(&[
            ("username", "admin"),
            ("password", "wrong-password"),
            ("next", "//evil.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()[header::LOCATION], "/login?error=invalid");

    browser
        .post(c.url("/api/v1/teams"))
        .json(&json!({"name": "acme", "display_name": "Acme Inc."}))
        .send()
        .await
        .unwrap();
    let html = browser
        .get(c.url("/teams"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Acme Inc.") && html.contains(r#"href="/teams/acme""#),
        "teams page lists the team: {html}"
    );
    let html = browser
        .get(c.url("/teams/acme"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Add a member") && html.contains("Delete this team"),
        "{html}"
    );
    for page in ["/", "/users", "/tokens", "/audit", "/account"] {
        let resp = browser.get(c.url(page)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{page}");
        assert!(resp.text().await.unwrap().contains("Cloudport"), "{page}");
    }
    let resp = browser.get(c.url("/no/such/page")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.text().await.unwrap().contains("Page not found"));
    let (status, body) =
        status_and_json(browser.get(c.url("/api/v1/nope")).send().await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // Logging out through the form ends the session.
    let resp = browser.post(c.url("/logout")).send().await.unwrap();
    assert_eq!(resp.headers()[header::LOCATION], "/login?signed_out=1");
    assert_eq!(
        browser
            .get(c.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn teams_members_and_audit_flow(b: Backend) {
    let c = TestConsole::start(b).await;
    let admin = c.admin().await;
    c.create_user(&admin, "olga").await;
    c.create_user(&admin, "vic").await;
    let olga = c.login("olga", PASSWORD).await;
    let vic = c.login("vic", PASSWORD).await;

    for bad in ["Bad_Name", "-x", "", &"a".repeat(64)] {
        let (status, body) = status_and_json(
            olga.post(c.url("/api/v1/teams"))
                .json(&json!({"name": bad}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(body["message"].as_str().unwrap().contains("name"), "{body}");
    }
    let resp = olga
        .post(c.url("/api/v1/teams"))
        .json(&json!({"name": "shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let team: Value = resp.json().await.unwrap();
    assert_eq!(team["my_role"], "owner");
    let resp = vic
        .post(c.url("/api/v1/teams"))
        .json(&json!({"name": "shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);

    let resp = olga
        .post(c.url("/api/v1/teams/shop/members"))
        .json(&json!({"username": "vic", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = olga
        .post(c.url("/api/v1/teams/shop/members"))
        .json(&json!({"username": "vic", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let resp = olga
        .post(c.url("/api/v1/teams/shop/members"))
        .json(&json!({"username": "ghost", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // The viewer sees the team but cannot change it.
    let detail: Value = vic
        .get(c.url("/api/v1/teams/shop"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["can_manage_members"], false);
    assert_eq!(detail["members"].as_array().unwrap().len(), 2);
    let resp = vic
        .post(c.url("/api/v1/teams/shop/members"))
        .json(&json!({"username": "admin", "role": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // The owner cannot leave the team ownerless.
    let resp = olga
        .put(c.url("/api/v1/teams/shop/members/olga"))
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);

    // Every mutation, refused ones included, is in the team's audit log.
    let audit: Value = olga
        .get(c.url("/api/v1/audit?team=shop"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows: Vec<(String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().into(),
                e["action"].as_str().unwrap().into(),
                e["result"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("olga", "team.create", "ok"),
        ("olga", "member.add", "ok"),
        ("olga", "member.add", "failed"),
        ("vic", "member.add", "denied"),
        ("olga", "member.role", "failed"),
    ] {
        assert!(
            rows.contains(&(expected.0.into(), expected.1.into(), expected.2.into())),
            "{expected:?} not in {rows:?}"
        );
    }
    // A viewer may not read the team's audit log; the platform admin may read everything.
    assert_eq!(
        vic.get(c.url("/api/v1/audit?team=shop"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let all: Value = admin
        .get(c.url("/api/v1/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "user.create" && e["target"] == "vic"));

    let resp = olga
        .delete(c.url("/api/v1/teams/shop"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        olga.get(c.url("/api/v1/teams/shop"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}
