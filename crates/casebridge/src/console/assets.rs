//! Scripts and styles embedded in the binary. Pages link them with a hash of their content in
//! the URL, so they can be cached for a year and still change with the binary.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// An embedded file: its name, media type and bytes.
struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "app.js", mime: "text/javascript; charset=utf-8", bytes: include_bytes!("../../assets/app.js") },
    Asset { name: "app.css", mime: "text/css; charset=utf-8", bytes: include_bytes!("../../assets/app.css") },
    Asset {
        name: "htmx.min.js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/vendor/htmx.min.js"),
    },
    Asset {
        name: "chart.umd.min.js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/vendor/chart.umd.min.js"),
    },
];

/// The first 12 hex digits of each asset's SHA-256.
static HASHES: LazyLock<Vec<(&'static str, String)>> =
    LazyLock::new(|| ASSETS.iter().map(|a| (a.name, hex::encode(Sha256::digest(a.bytes))[..12].to_string())).collect());

/// The URL of an embedded asset, with its content hash.
pub fn url(name: &str) -> String {
    match HASHES.iter().find(|(n, _)| *n == name) {
        Some((_, h)) => format!("/assets/{name}?v={h}"),
        None => format!("/assets/{name}"),
    }
}

/// `GET /assets/{name}`.
pub async fn serve(Path(path): Path<String>) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut r = a.bytes.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    r
}
