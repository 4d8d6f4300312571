//! The gateway of a real `cloudport datacenter` process in front of a real
//! app: the default domain of an outer port, a custom route that serves the
//! moment its creation is answered, a domain another team cannot take, a
//! rolling deploy and a killed replica with no failed request through the
//! gateway, TCP forwarding, per-route figures in `/metrics`, and a removed
//! route that stops serving.

mod common;

use common::datacenter_process::*;
use common::deployments::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GET `/` through the gateway with `host` in the Host header.
async fn via_gateway(
    client: &reqwest::Client,
    gateway: u16,
    host: &str,
) -> Option<(StatusCode, String)> {
    let r = client
        .get(format!("http://127.0.0.1:{gateway}/"))
        .header(reqwest::header::HOST, host)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = r.status();
    Some((status, r.text().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_routes_into_a_live_app_without_dropping_requests() {
    let dir = tempfile::tempdir().unwrap();
    let dc = Dc::start(&dir.path().join("dc")).await;
    let gw = dc.process.gateway_port;
    let (status, info) = dc.send(dc.api.get(dc.url("/v1/gateway"))).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["http"], format!("127.0.0.1:{gw}"));
    assert_eq!(info["domain_suffix"], "localhost");

    let repo = git_repo("python-hello", &dir.path().join("repo"));
    dc.create(json!({
        "name": "web",
        "source": {"kind": "git", "url": repo, "reference": "main"},
        "ports": [{"port": 8080, "protocol": "http", "inner": true, "outer": true}],
        "env": [{"name": "GREETING", "value": "first"}],
        "health": {"kind": "http", "port": 8080, "path": "/healthz"},
        "replicas": 2
    }))
    .await;
    dc.succeed("web", json!({"action": "build", "actor": "t"}))
        .await;

    // The default domain of the outer port answers, and the component says so.
    let client = reqwest::Client::new();
    let default_host = "web.a.t.localhost";
    let (status, body) = via_gateway(&client, gw, default_host)
        .await
        .expect("answer");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("python-hello sample\nfirst"), "{body}");
    let c = dc.component("web").await;
    assert!(
        c["urls"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("http://{default_host}:{gw}/"))),
        "{c}"
    );
    // An unknown host is a clear 404, not someone else's app.
    let (status, body) = via_gateway(&client, gw, "nobody.example.com")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("nobody.example.com"), "{body}");

    // A custom route serves as soon as its creation is answered.
    let (status, route) = dc
        .send(dc.api.post(dc.url("/v1/teams/t/routes/http")).json(&json!({
            "domain": "Shop.Example.com",
            "targets": [{"app": "a", "component": "web"}]
        })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{route}");
    assert_eq!(route["domain"], "shop.example.com");
    let (status, body) = via_gateway(&client, gw, "shop.example.com").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("first"), "{body}");

    // Another team cannot take the domain, nor a wildcard over it, nor the
    // default domains' namespace.
    for (team, domain) in [
        ("u", "shop.example.com"),
        ("u", "*.example.com"),
        ("t", "web.a.u.localhost"),
    ] {
        let (status, body) = dc
            .send(
                dc.api
                    .post(dc.url(&format!("/v1/teams/{team}/routes/http")))
                    .json(
                        &json!({"domain": domain, "targets": [{"app": "a", "component": "web"}]}),
                    ),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{team} {domain}: {body}");
    }
    // A route to a component that does not exist says which.
    let (status, body) = dc
        .send(dc.api.post(dc.url("/v1/teams/t/routes/http")).json(&json!({
            "domain": "x.example.org", "targets": [{"app": "a", "component": "ghost"}]
        })))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"].as_str().unwrap().contains("a/ghost"),
        "{body}"
    );

    // Continuous requests through the gateway while a replica is killed and
    // a new version rolls out: none may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                match via_gateway(&client, gw, "shop.example.com").await {
                    Some((s, _)) if s.is_success() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => failed.lock().unwrap().push(format!("{other:?}")),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, replicas) = dc
        .send(dc.api.get(dc.component_url("web", "/replicas")))
        .await;
    let pid = replicas[0]["pid"].as_u64().unwrap();
    signal(pid as i32, 9);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut spec: Value = dc.component("web").await;
    spec["env"] = json!([{"name": "GREETING", "value": "second"}]);
    let (status, body) = dc
        .send(dc.api.put(dc.component_url("web", "")).json(&json!({
            "name": "web",
            "source": spec["source"],
            "ports": spec["ports"],
            "env": spec["env"],
            "health": spec["health"],
            "replicas": 2
        })))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    dc.succeed("web", json!({"action": "deploy", "actor": "t"}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = via_gateway(&client, gw, "shop.example.com").await.unwrap();
        if body.contains("second") {
            break;
        }
        assert!(Instant::now() < deadline, "v2 never served: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        failed.len() + ok.load(Ordering::Relaxed),
        &failed[..failed.len().min(5)]
    );
    assert!(ok.load(Ordering::Relaxed) > 20);

    // TCP: a gateway port forwards to the component's replicas.
    let port = free_port();
    let (status, tcp) = dc
        .send(dc.api.post(dc.url("/v1/teams/t/routes/tcp")).json(&json!({
            "listen_port": port, "app": "a", "component": "web"
        })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tcp}");
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    conn.write_all(b"GET / HTTP/1.0\r\nHost: raw\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.0 200"), "{raw}");
    assert!(raw.contains("second"), "{raw}");
    // The same port twice is refused.
    let (status, _) = dc
        .send(dc.api.post(dc.url("/v1/teams/t/routes/tcp")).json(&json!({
            "listen_port": port, "app": "a", "component": "web"
        })))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Per-route figures: in /metrics and for the team.
    let metrics = reqwest::get(dc.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let id = route["id"].as_str().unwrap();
    assert!(
        metrics.contains("cloudport_gateway_requests_total") && metrics.contains(id),
        "{metrics}"
    );
    let (_, stats) = dc
        .send(dc.api.get(dc.url("/v1/teams/t/routes/stats")))
        .await;
    let mine = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["route"] == id)
        .cloned()
        .unwrap_or(Value::Null);
    assert!(mine["requests"].as_u64().unwrap_or(0) > 20, "{stats}");
    assert!(mine["status_2xx"].as_u64().unwrap_or(0) > 20, "{stats}");
    let (_, stats_u) = dc
        .send(dc.api.get(dc.url("/v1/teams/u/routes/stats")))
        .await;
    assert_eq!(stats_u, json!([]), "a team sees only its own routes");

    // Removing the route stops it at once; the default domain stays.
    let (status, _) = dc
        .send(
            dc.api
                .delete(dc.url(&format!("/v1/teams/t/routes/http/{id}"))),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = via_gateway(&client, gw, "shop.example.com").await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = via_gateway(&client, gw, default_host).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let (status, _) = dc
        .send(dc.api.delete(dc.url(&format!(
            "/v1/teams/t/routes/tcp/{}",
            tcp["id"].as_str().unwrap()
        ))))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
}

/// The subject of the certificate the gateway's HTTPS port serves for `sni`.
fn served_subject(port: u16, sni: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {sni} </dev/null 2>/dev/null | openssl x509 -noout -subject"
        ))
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Certificates uploaded through the API: a bad pair is refused with the
/// reason, the key never comes back, the HTTPS port picks the certificate by
/// SNI, and a route with `https_redirect` sends plain HTTP to HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_served_by_sni_and_plain_http_redirects() {
    let dir = tempfile::tempdir().unwrap();
    let dc = Dc::start(&dir.path().join("dc")).await;
    let (gw, tls) = (dc.process.gateway_port, dc.process.gateway_tls_port);
    let (_, info) = dc.send(dc.api.get(dc.url("/v1/gateway"))).await;
    assert_eq!(info["https"], format!("127.0.0.1:{tls}"));

    let shop = common::certs::self_signed("shop.example.com", 30);
    let blog = common::certs::self_signed("blog.example.com", 30);
    // A key that is not the certificate's is refused, saying so.
    let (status, body) = dc
        .send(
            dc.api
                .post(dc.url("/v1/teams/t/certificates"))
                .json(&json!({
                    "name": "mixed", "cert_pem": shop.0, "key_pem": blog.1
                })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["message"].as_str().unwrap().contains("key"), "{body}");
    for (name, pair) in [("shop", &shop), ("blog", &blog)] {
        let (status, cert) = dc
            .send(
                dc.api
                    .post(dc.url("/v1/teams/t/certificates"))
                    .json(&json!({
                        "name": name, "cert_pem": pair.0, "key_pem": pair.1
                    })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{cert}");
        assert_eq!(cert["domains"], json!([format!("{name}.example.com")]));
        let days = (cert["not_after"].as_i64().unwrap() - cert["not_before"].as_i64().unwrap())
            / 86_400_000;
        assert_eq!(days, 30);
    }
    let (_, listed) = dc
        .send(dc.api.get(dc.url("/v1/teams/t/certificates")))
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains("PRIVATE KEY"), "{listed}");

    assert!(served_subject(tls, "shop.example.com").contains("shop.example.com"));
    assert!(served_subject(tls, "blog.example.com").contains("blog.example.com"));

    // Plain HTTP to a route that wants HTTPS is redirected there.
    dc.create(json!({
        "name": "web", "source": {"kind": "upload"},
        "ports": [{"port": 8080, "protocol": "http", "outer": true}]
    }))
    .await;
    let (status, route) = dc
        .send(dc.api.post(dc.url("/v1/teams/t/routes/http")).json(&json!({
            "domain": "shop.example.com", "path_prefix": "/app/",
            "targets": [{"app": "a", "component": "web"}], "https_redirect": true
        })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{route}");
    assert_eq!(route["path_prefix"], "/app");
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{gw}/app/x?y=1"))
        .header(reqwest::header::HOST, "shop.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        resp.headers()[reqwest::header::LOCATION],
        format!("https://shop.example.com:{tls}/app/x?y=1").as_str()
    );
    let c = dc.component("web").await;
    assert!(
        c["urls"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("https://shop.example.com:{tls}/app"))),
        "{c}"
    );
}
