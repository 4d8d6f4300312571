//! Quotas per team and datacenter: set by a platform admin, enforced by the
//! console on create, update and scale against what the datacenter reports.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

async fn quotas_bound_components_memory_and_replicas(b: Backend) {
    let c = TestConsole::start_with(b, |cfg| cfg.no_embedded_datacenter = false).await;
    let admin = c.admin().await;
    for (url, body) in [
        ("/api/v1/teams", json!({"name": "quota"})),
        (
            "/api/v1/teams/quota/datacenters",
            json!({"datacenter": "local"}),
        ),
        ("/api/v1/teams/quota/apps", json!({"name": "shop"})),
    ] {
        let r = admin.post(c.url(url)).json(&body).send().await.unwrap();
        assert!(
            r.status().is_success(),
            "{url}: {}",
            r.text().await.unwrap()
        );
    }
    let quota_url = c.url("/api/v1/teams/quota/datacenters/local/quota");
    let (status, body) = status_and_json(
        admin
            .put(&quota_url)
            .json(&json!({"max_components": 2, "max_memory_mb": 1024}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = status_and_json(
        admin
            .put(&quota_url)
            .json(&json!({"max_memory_mb": -5}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let component = |name: &str, replicas: u32| {
        json!({"datacenter": "local", "spec": {
            "name": name,
            "source": {"kind": "upload"},
            "build": {"run_command": "sleep 600"},
            "resources": {"cpu_millicores": 100, "memory_mb": 256},
            "replicas": replicas
        }})
    };
    let create = |name: &str, replicas: u32| {
        admin
            .post(c.url("/api/v1/teams/quota/apps/shop/components"))
            .json(&component(name, replicas))
            .send()
    };
    // 2 × 256 MB: fits.
    assert_eq!(create("a", 2).await.unwrap().status(), StatusCode::CREATED);
    // 512 + 3 × 256 MB > 1024 MB: refused with the reason, nothing placed.
    let (status, body) = status_and_json(create("b", 3).await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("1280 MB of memory of 1024 MB"),
        "{body}"
    );
    assert_eq!(create("b", 1).await.unwrap().status(), StatusCode::CREATED);
    // A third component passes the memory bound but not the count.
    let (status, body) = status_and_json(create("c", 1).await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("3 components of 2"),
        "{body}"
    );

    // Scaling counts replicas too: a to 3 makes 768 + 256 = 1024 (fits), to 4 does not.
    let scale = |n: u32| {
        admin
            .post(c.url("/api/v1/teams/quota/apps/shop/components/a/actions"))
            .json(&json!({"action": "scale", "replicas": n}))
            .send()
    };
    assert_eq!(scale(3).await.unwrap().status(), StatusCode::ACCEPTED);
    let (status, body) = status_and_json(scale(4).await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, body) = status_and_json(admin.get(&quota_url).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["quota"]["max_components"], 2);
    assert_eq!(body["used"]["components"], 2);
}

on_both_backends!(quotas_bound_components_memory_and_replicas);
