//! Request guards: refuse cross-site state changes, and send signed-out
//! visitors of console pages to the login page.

use super::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use leptos::prelude::IntoView;

/// State-changing requests carrying a browser's `Origin` (or `Sec-Fetch-Site`)
/// from another site are refused, so a foreign page cannot act with the
/// user's cookie. Bearer-token calls carry no ambient credentials and pass.
pub async fn refuse_foreign_origin(req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !req.headers().contains_key(header::AUTHORIZATION) && is_cross_site(&req) {
        return crate::error::Error::Forbidden("Cross-site request refused.".into())
            .into_response();
    }
    next.run(req).await
}

fn is_cross_site(req: &Request) -> bool {
    let headers = req.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        return origin == "null" || authority.is_empty() || !authority.eq_ignore_ascii_case(host);
    }
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v == "cross-site")
}

/// Console pages need a signed-in user; server functions answer for
/// themselves (with a JSON error) and the login page is open to all.
pub async fn require_login(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if req.method() != Method::GET || path.starts_with("/rpc/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let signed_in = state.console.authenticate(&parts).await.is_ok();
    let req = Request::from_parts(parts, body);
    let path = req.uri().path();
    if path == "/login" {
        if signed_in {
            return Redirect::to("/").into_response();
        }
        return next.run(req).await;
    }
    if !signed_in {
        let next_path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let target = format!("/login?next={}", urlencode(next_path));
        return Redirect::to(&target).into_response();
    }
    next.run(req).await
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Unknown paths: JSON for the API, the console's "not found" page otherwise.
pub fn not_found<IV: IntoView + 'static>(
    context: impl Fn() + Clone + Send + Sync + 'static,
    shell: impl Fn() -> IV + Clone + Send + Sync + 'static,
) -> impl Fn(Request) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    let render = leptos_axum::render_app_to_stream_with_context(context, shell);
    move |req: Request| {
        let render = render.clone();
        Box::pin(async move {
            if req.uri().path().starts_with("/api/") {
                return crate::error::Error::NotFound(format!(
                    "No API route {}.",
                    req.uri().path()
                ))
                .into_response();
            }
            let mut resp = render(req.map(Body::new)).await;
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp
        })
    }
}

/// A body refused for its size by the limit layer comes back as plain text;
/// callers of the API get JSON errors, so it becomes one.
pub async fn json_payload_too_large(resp: Response) -> Response {
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE && !json {
        return super::rest::too_large(super::MAX_BODY);
    }
    resp
}
