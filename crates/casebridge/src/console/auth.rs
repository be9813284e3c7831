//! Signing in to the console: the login page takes the API token and answers a session
//! cookie (HttpOnly, SameSite=Strict, Secure over TLS); every page also takes the bearer
//! token itself. Every POST made with the cookie must carry the session's CSRF token (a form
//! field `_csrf` or the `X-CSRF-Token` header htmx sends).
//!
//! Cookies and CSRF tokens are HMACs under a key derived from the API token, so they need no
//! storage, survive a restart, and stop working when the token changes.

use axum::body::{Body, Bytes};
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::render;
use super::state::{Console, Viewer};

/// The session cookie's name.
pub const COOKIE: &str = "cb_session";
/// How long a console session lasts.
const SESSION_SECS: i64 = 12 * 3600;

fn mac(key: &[u8], what: &str) -> String {
    // HMAC accepts keys of any length; the fallback is never taken.
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else { return String::new() };
    m.update(what.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The CSRF token of a session.
fn csrf_of(key: &[u8], nonce: &str) -> String {
    mac(key, &format!("csrf|{nonce}"))
}

/// A new session: the cookie value and its CSRF token.
fn new_session(key: &[u8]) -> (String, String) {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let exp = chrono::Utc::now().timestamp() + SESSION_SECS;
    let sig = mac(key, &format!("session|{nonce}|{exp}"));
    (format!("{nonce}.{exp}.{sig}"), csrf_of(key, &nonce))
}

/// The session a cookie value names, if it is signed by `key` and not expired: its CSRF token.
fn check_session(key: &[u8], value: &str) -> Option<String> {
    let mut parts = value.split('.');
    let (nonce, exp, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !same(sig, &mac(key, &format!("session|{nonce}|{exp}"))) {
        return None;
    }
    let exp: i64 = exp.parse().ok()?;
    (exp > chrono::Utc::now().timestamp()).then(|| csrf_of(key, nonce))
}

fn cookie_value(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn over_tls(c: &Console, h: &HeaderMap) -> bool {
    c.secure_cookies
        || h.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(c: &Console, h: &HeaderMap, value: &str, max_age: i64) -> HeaderValue {
    let secure = if over_tls(c, h) { "; Secure" } else { "" };
    let v = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("cb_session=; Max-Age=0"))
}

/// Whether the request carries the API token as a bearer token.
fn bearer_ok(c: &Console, h: &HeaderMap) -> bool {
    let Some(token) = &c.app.token else { return false };
    let given = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|g| same(g, token))
}

/// A refusal page with a status (htmx requests get the message as the fragment).
fn refuse(status: StatusCode, message: &str) -> Response {
    let mut r = render::bare("error.html", json!({"title": status.canonical_reason(), "message": message}));
    *r.status_mut() = status;
    r
}

/// The `_csrf` member of a form body, and the body to hand on.
async fn form_csrf(req: Request, limit: usize) -> Result<(Request, Option<String>), Response> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Ok((req, None));
    }
    let (parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        refuse(StatusCode::PAYLOAD_TOO_LARGE, "the form is larger than the body limit (--max-body-bytes)")
    })?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let token = pairs.into_iter().find(|(k, _)| k == "_csrf").map(|(_, v)| v);
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

/// Middleware of every console page but the login page and the assets.
pub async fn guard(State(c): State<Console>, req: Request, next: Next) -> Response {
    if bearer_ok(&c, req.headers()) {
        let mut req = req;
        req.extensions_mut().insert(Viewer { csrf: String::new(), cookie: false });
        return next.run(req).await;
    }
    let session = cookie_value(req.headers()).and_then(|v| check_session(&c.key, &v));
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD);
    let Some(csrf) = session else {
        if unsafe_method {
            let msg = if c.app.token.is_some() {
                "you are not signed in (or your session ended): sign in again at /login"
            } else {
                "your console session ended: reload the page and try again"
            };
            let mut r = refuse(StatusCode::UNAUTHORIZED, msg);
            r.headers_mut().insert("HX-Redirect", HeaderValue::from_static("/login"));
            return r;
        }
        if c.app.token.is_some() {
            let next_path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let q = serde_urlencoded::to_string([("next", next_path)]).unwrap_or_default();
            return Redirect::to(&format!("/login?{q}")).into_response();
        }
        // Loopback open mode: no sign-in, but a session all the same, so that forms carry a
        // CSRF token and another site cannot post to this console through the browser.
        let (value, csrf) = new_session(&c.key);
        let cookie = set_cookie(&c, req.headers(), &value, SESSION_SECS);
        let mut req = req;
        req.extensions_mut().insert(Viewer { csrf, cookie: false });
        let mut res = next.run(req).await;
        res.headers_mut().append(header::SET_COOKIE, cookie);
        return res;
    };
    let mut req = req;
    if unsafe_method {
        let header_token = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
        let given = match header_token {
            Some(t) => Some(t),
            None => match form_csrf(req, c.app.max_body_bytes).await {
                Ok((r, t)) => {
                    req = r;
                    t
                }
                Err(res) => return res,
            },
        };
        if !given.is_some_and(|g| same(&g, &csrf)) {
            return refuse(
                StatusCode::FORBIDDEN,
                "this form is missing its CSRF token or comes from another page: reload the page and send it again",
            );
        }
    }
    req.extensions_mut().insert(Viewer { csrf, cookie: c.app.token.is_some() });
    next.run(req).await
}

/// Query of the login page.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    /// Where to go once signed in.
    pub next: Option<String>,
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// The API token.
    pub token: String,
    /// Where to go once signed in.
    pub next: Option<String>,
}

/// Only paths on this site: never another origin.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_string(),
        _ => "/".to_string(),
    }
}

/// `GET /login`.
pub async fn login_page(State(c): State<Console>, Query(q): Query<LoginQuery>) -> Response {
    render::bare(
        "login.html",
        json!({"next": local_path(q.next.as_deref()), "open_mode": c.app.token.is_none(), "error": null}),
    )
}

/// `POST /login`: the token right, a session cookie and the page asked for; wrong, the login
/// page again with a message.
pub async fn login(State(c): State<Console>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let next = local_path(f.next.as_deref());
    let Some(token) = &c.app.token else { return Redirect::to(&next).into_response() };
    if !same(f.token.trim(), token) {
        tracing::warn!("Console sign-in refused: wrong token.");
        // The form again with the message (a 200: a refused form is a page to correct, not
        // a failed load; the refusal is logged above).
        return render::bare(
            "login.html",
            json!({"next": next, "open_mode": false,
                   "error": "That is not the API token. Paste the value of CASEBRIDGE_API_TOKEN (or api_token in the [server] table) and try again."}),
        );
    }
    let (value, _) = new_session(&c.key);
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut().insert(header::SET_COOKIE, set_cookie(&c, &headers, &value, SESSION_SECS));
    r
}

/// `POST /logout`: drops the cookie.
pub async fn logout(State(c): State<Console>, headers: HeaderMap) -> Response {
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(header::SET_COOKIE, set_cookie(&c, &headers, "", 0));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_signed_and_expire() {
        let (v, csrf) = new_session(b"k1");
        assert_eq!(check_session(b"k1", &v), Some(csrf));
        assert_eq!(check_session(b"k2", &v), None, "another key (token) refuses it");
        let mut parts: Vec<&str> = v.split('.').collect();
        let past = (chrono::Utc::now().timestamp() - 1).to_string();
        let sig = mac(b"k1", &format!("session|{}|{past}", parts[0]));
        parts[1] = &past;
        parts[2] = &sig;
        assert_eq!(check_session(b"k1", &parts.join(".")), None, "expired");
        assert_eq!(check_session(b"k1", "x.y"), None);
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(local_path(Some("/rules?x=1")), "/rules?x=1");
        assert_eq!(local_path(Some("//evil.example")), "/");
        assert_eq!(local_path(Some("https://evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }
}
