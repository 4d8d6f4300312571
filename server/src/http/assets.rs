//! The UI bundle (WASM, JS, CSS) and public files, embedded in the binary at
//! build time so `cloudport` serves its UI from whatever directory it starts
//! in. Bundle files carry a content hash in their names, so they are served
//! with a year-long immutable cache and, when the browser accepts it, as the
//! gzip copy made at build time.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../target/site"]
struct Site;

/// The bundle's base name, e.g. `cloudport-1a2b3c4d5e`, found among the
/// embedded files; `None` when the binary was built without the UI bundle.
pub fn bundle_name() -> Option<String> {
    Site::iter().find_map(|f| {
        let name = f.strip_prefix("pkg/")?.strip_suffix(".js")?;
        name.starts_with("cloudport").then(|| name.to_string())
    })
}

pub async fn pkg(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(
        &format!("pkg/{file}"),
        &headers,
        "public, max-age=31536000, immutable",
    )
}

pub async fn favicon(headers: HeaderMap) -> Response {
    serve("favicon.svg", &headers, "public, max-age=86400")
}

fn serve(path: &str, headers: &HeaderMap, cache: &'static str) -> Response {
    if path.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let gzip_ok = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let (file, gzipped) = match (gzip_ok, Site::get(&format!("{path}.gz"))) {
        (true, Some(gz)) => (gz, true),
        _ => match Site::get(path) {
            Some(f) => (f, false),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
    };
    let mut resp = (StatusCode::OK, file.data.into_owned()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime.as_ref())
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}
