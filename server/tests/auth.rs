//! Signing in and out, sessions, API tokens and login throttling, over HTTP.

mod common;

use common::*;
use reqwest::{header, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    login_sets_a_hardened_session_cookie_and_me_works,
    wrong_password_is_401_with_a_json_error,
    session_id_is_cycled_at_login,
    logout_ends_the_session,
    failed_logins_are_throttled_per_user_and_per_address,
    tokens_are_shown_once_work_as_bearer_and_can_be_revoked,
    read_only_tokens_cannot_change_anything,
    password_change_ends_the_other_sessions,
    disabled_users_lose_their_sessions_and_tokens,
    foreign_origin_state_changes_are_refused,
);

async fn login_sets_a_hardened_session_cookie_and_me_works(b: Backend) {
    let c = TestConsole::start(b).await;
    let resp = client()
        .post(c.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .expect("session cookie")
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("cloudport_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain-HTTP console must not set Secure: {cookie}"
    );

    let admin = c.admin().await;
    let me: Value = admin
        .get(c.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "admin");
    assert_eq!(me["is_admin"], true);

    let (status, body) =
        status_and_json(client().get(c.url("/api/v1/me")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
}

async fn wrong_password_is_401_with_a_json_error(b: Backend) {
    let c = TestConsole::start(b).await;
    for (user, pass) in [
        ("admin", "nope-nope-nope"),
        ("nobody", "whatever-123"),
        ("", ""),
        ("admin", &"x".repeat(5000)),
    ] {
        let resp = client()
            .post(c.url("/api/v1/auth/login"))
            .json(&json!({"username": user, "password": pass}))
            .send()
            .await
            .unwrap();
        assert!(resp
            .headers()
            .get(header::SET_COOKIE)
            .is_none_or(|v| !v.to_str().unwrap().contains("Max-Age")));
        let (status, body) = status_and_json(resp).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}");
        assert_eq!(body["error"], "unauthorized");
        assert!(body["message"].as_str().unwrap().len() > 3);
    }
    // Malformed JSON is a clear 4xx JSON error, not a crash.
    let (status, body) = status_and_json(
        client()
            .post(c.url("/api/v1/auth/login"))
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "invalid");
    // The failures are in the audit log.
    let admin = c.admin().await;
    let audit: Value = admin
        .get(c.url("/api/v1/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failed = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.login" && e["result"] == "failed")
        .count();
    assert!(failed >= 2, "{audit}");
}

async fn session_id_is_cycled_at_login(b: Backend) {
    let c = TestConsole::start(b).await;
    let browser = client();
    // An anonymous session exists first (e.g. planted by an attacker)...
    let planted = "cloudport_session=planted";
    let resp = browser
        .post(c.url("/api/v1/auth/login"))
        .header(header::COOKIE, planted)
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let set = resp
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(!set.starts_with("cloudport_session=planted;"), "{set}");
    // ...and the planted id grants nothing.
    let resp = client()
        .get(c.url("/api/v1/me"))
        .header(header::COOKIE, planted)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

async fn logout_ends_the_session(b: Backend) {
    let c = TestConsole::start(b).await;
    let admin = c.admin().await;
    assert_eq!(
        admin
            .get(c.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        admin
            .post(c.url("/api/v1/auth/logout"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        admin
            .get(c.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn failed_logins_are_throttled_per_user_and_per_address(b: Backend) {
    let c = TestConsole::start_with(b, |cfg| {
        cfg.login_failures_per_user = 3;
        cfg.login_failures_per_address = 6;
    })
    .await;
    let attempt = |user: &'static str, pass: &'static str| {
        let url = c.url("/api/v1/auth/login");
        async move {
            client()
                .post(url)
                .json(&json!({"username": user, "password": pass}))
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(
            attempt("admin", "wrong-password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Locked: even the right password is refused until the window ends.
    let resp = attempt("admin", ADMIN_PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 300);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "rate_limited");
    // Spraying other usernames from the same address hits the address limit.
    for user in ["a1", "a2", "a3"] {
        assert_eq!(
            attempt(user, "wrong-password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        attempt("a4", "wrong-password").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn tokens_are_shown_once_work_as_bearer_and_can_be_revoked(b: Backend) {
    let c = TestConsole::start(b).await;
    let admin = c.admin().await;
    let resp = admin
        .post(c.url("/api/v1/tokens"))
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: Value = resp.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("cpt_"));

    let listed: Value = admin
        .get(c.url("/api/v1/tokens"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed_text = listed.to_string();
    assert!(!listed_text.contains(&token), "the secret is never listed");
    assert_eq!(listed[0]["name"], "ci");
    assert_eq!(listed[0]["prefix"], &token[..8]);

    // Stored hashed: the database does not contain the secret.
    let (stored,): (String,) = sqlx::query_as("SELECT token_hash FROM api_tokens")
        .fetch_one(&c.console.db.pool)
        .await
        .unwrap();
    assert_ne!(stored, token);

    let bearer = client();
    let me: Value = bearer
        .get(c.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "admin");
    let resp = bearer
        .post(c.url("/api/v1/teams"))
        .bearer_auth(&token)
        .json(&json!({"name": "via-token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    let id = created["id"].as_i64().unwrap();
    assert_eq!(
        admin
            .delete(c.url(&format!("/api/v1/tokens/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        bearer
            .get(c.url("/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        bearer
            .get(c.url("/api/v1/me"))
            .bearer_auth("cpt_forged")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn read_only_tokens_cannot_change_anything(b: Backend) {
    let c = TestConsole::start(b).await;
    let admin = c.admin().await;
    let created: Value = admin
        .post(c.url("/api/v1/tokens"))
        .json(&json!({"name": "dashboards", "scope": "read-only"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap();
    let ro = client();
    assert_eq!(
        ro.get(c.url("/api/v1/users"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let (status, body) = status_and_json(
        ro.post(c.url("/api/v1/users"))
            .bearer_auth(token)
            .json(&json!({"username": "x1", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "forbidden");
    let resp = ro
        .post(c.url("/api/v1/teams"))
        .bearer_auth(token)
        .json(&json!({"name": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

async fn password_change_ends_the_other_sessions(b: Backend) {
    let c = TestConsole::start(b).await;
    let admin = c.admin().await;
    c.create_user(&admin, "jane").await;
    let laptop = c.login("jane", PASSWORD).await;
    let phone = c.login("jane", PASSWORD).await;

    let resp = laptop
        .put(c.url("/api/v1/me/password"))
        .json(&json!({"current_password": "not-it-at-all", "new_password": "brand-new-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = laptop
        .put(c.url("/api/v1/me/password"))
        .json(&json!({"current_password": PASSWORD, "new_password": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let resp = laptop
        .put(c.url("/api/v1/me/password"))
        .json(&json!({"current_password": PASSWORD, "new_password": "brand-new-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        laptop
            .get(c.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        phone
            .get(c.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED,
        "others end"
    );
    c.login("jane", "brand-new-pass").await;
}

async fn disabled_users_lose_their_sessions_and_tokens(b: Backend) {
    let c = TestConsole::start(b).await;
    let admin = c.admin().await;
    let id = c.create_user(&admin, "mallory").await;
    let session = c.login("mallory", PASSWORD).await;
    let token: Value = session
        .post(c.url("/api/v1/tokens"))
        .json(&json!({"name": "t"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap();

    let resp = admin
        .patch(c.url(&format!("/api/v1/users/{id}")))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        session
            .get(c.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client()
            .get(c.url("/api/v1/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let resp = client()
        .post(c.url("/api/v1/auth/login"))
        .json(&json!({"username": "mallory", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // The last admin cannot lock the platform out.
    let me: Value = admin
        .get(c.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = admin
        .patch(c.url(&format!("/api/v1/users/{}", me["id"])))
        .json(&json!({"is_admin": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
}

async fn foreign_origin_state_changes_are_refused(b: Backend) {
    let c = TestConsole::start(b).await;
    let admin = c.admin().await;
    let host = c.base.trim_start_matches("http://").to_string();
    let resp = admin
        .post(c.url("/api/v1/teams"))
        .header(header::ORIGIN, "http://evil.example")
        .json(&json!({"name": "csrf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = admin
        .post(c.url("/api/v1/teams"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"name": "csrf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Same origin passes; so do reads from anywhere.
    let resp = admin
        .post(c.url("/api/v1/teams"))
        .header(header::ORIGIN, format!("http://{host}"))
        .json(&json!({"name": "same-origin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = admin
        .get(c.url("/api/v1/teams"))
        .header(header::ORIGIN, "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let teams: Value = resp.json().await.unwrap();
    assert!(teams
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["name"] != "csrf"));
}
