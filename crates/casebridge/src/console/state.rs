//! What every console handler is given, and what the guard learnt about the viewer.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::api::AppState;

/// What the console's handlers are given: the API's state plus the key that signs session
/// cookies and CSRF tokens.
#[derive(Clone)]
pub struct Console {
    /// The API's state: the pages call the API's handlers with it.
    pub app: AppState,
    /// Signs cookies and CSRF tokens: derived from the API token, or random per process in
    /// loopback open mode (cookies then end with the process).
    pub key: Arc<[u8]>,
    /// Whether session cookies carry `Secure` even when the request did not say it came over
    /// TLS (`X-Forwarded-Proto: https` always sets it).
    pub secure_cookies: bool,
    /// The accepted-events counter at the overview's previous look, for its events/s.
    pub rate: Arc<Mutex<Option<(Instant, f64)>>>,
}

impl Console {
    /// The console over the API's state.
    pub fn new(app: AppState, secure_cookies: bool) -> Self {
        let key: Vec<u8> = match &app.token {
            Some(t) => format!("casebridge-console:{t}").into_bytes(),
            None => format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()).into_bytes(),
        };
        Console { app, key: key.into(), secure_cookies, rate: Arc::default() }
    }
}

/// The signed-in viewer of a page, put on the request by the guard.
#[derive(Clone, Debug, Default)]
pub struct Viewer {
    /// The CSRF token every form and htmx request of this session carries.
    pub csrf: String,
    /// Signed in with a cookie (a log-out button makes sense).
    pub cookie: bool,
}
