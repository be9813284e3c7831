//! Starts the real `casebridge` binary and talks to it over HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Server {
    pub base: String,
    /// The PostgreSQL database the binary runs on (`CASEBRIDGE_TEST_BACKEND=postgres`).
    pub db: Option<casebridge_store::testing::TestDatabase>,
    /// The PostgreSQL URL it runs on, when it does.
    pub url: Option<String>,
    pub http: reqwest::Client,
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub token: Option<String>,
    /// What the process wrote after its first line (stdout and stderr), when captured.
    pub output: Option<Arc<Mutex<String>>>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_casebridge")
}

/// Whether the tests run the binary on PostgreSQL (`CASEBRIDGE_TEST_BACKEND=postgres`) rather
/// than on its SQLite file.
pub fn on_postgres() -> bool {
    std::env::var("CASEBRIDGE_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A fresh database for one server when the tests run on PostgreSQL; a missing server then
/// fails the test (the backend was asked for).
async fn test_database() -> Option<casebridge_store::testing::TestDatabase> {
    if !on_postgres() {
        return None;
    }
    match casebridge_store::testing::fresh_database().await {
        Ok(db) => Some(db),
        Err(why) => panic!("CASEBRIDGE_TEST_BACKEND=postgres but no PostgreSQL server: {why}"),
    }
}

fn spawn(
    data: &Path,
    db: Option<&str>,
    extra_env: &[(&str, &str)],
    args: &[&str],
    capture: Option<Arc<Mutex<String>>>,
) -> (Child, String) {
    let mut cmd = Command::new(bin());
    cmd.arg("serve").arg("--bind").arg("127.0.0.1:0").arg("--data-dir").arg(data);
    if let Some(url) = db {
        cmd.arg("--database-url").arg(url);
    }
    cmd.args(args);
    cmd.env_remove("CASEBRIDGE_API_TOKEN").env_remove("CASEBRIDGE_DATABASE_URL").env("RUST_LOG", "warn");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let stderr = if capture.is_some() { Stdio::piped() } else { Stdio::inherit() };
    let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().expect("spawn casebridge");
    if let (Some(buf), Some(err)) = (capture.clone(), child.stderr.take()) {
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                buf.lock().unwrap().push_str(&(line + "\n"));
            }
        });
    }
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a line").expect("readable");
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Some(buf) = &capture {
                buf.lock().unwrap().push_str(&(line + "\n"));
            }
        }
    });
    (child, format!("http://{addr}"))
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(&[], &[]).await
    }

    pub async fn start_with(env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::start_inner(env, args, None).await
    }

    /// Starts the binary with its stderr (and stdout after the first line) captured: see
    /// [`Server::output`].
    pub async fn start_capturing(env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::start_inner(env, args, Some(Arc::default())).await
    }

    async fn start_inner(env: &[(&str, &str)], args: &[&str], capture: Option<Arc<Mutex<String>>>) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = test_database().await;
        let url = db.as_ref().map(|d| d.url.clone());
        let (child, base) = spawn(&dir.path().join("data"), url.as_deref(), env, args, capture.clone());
        let token = env.iter().find(|(k, _)| *k == "CASEBRIDGE_API_TOKEN").map(|(_, v)| v.to_string());
        let s = Server { base, db, url, http: reqwest::Client::new(), child: Some(child), dir, token, output: capture };
        s.wait_ready().await;
        s
    }

    /// Starts a node on a PostgreSQL database other nodes may share.
    pub async fn start_on(url: &str, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let (child, base) = spawn(&dir.path().join("data"), Some(url), env, &[], None);
        let url = Some(url.to_string());
        let s = Server {
            base,
            db: None,
            url,
            http: reqwest::Client::new(),
            child: Some(child),
            dir,
            token: None,
            output: None,
        };
        s.wait_ready().await;
        s
    }

    /// The captured output so far.
    pub fn output(&self) -> String {
        self.output.as_ref().map(|o| o.lock().unwrap().clone()).unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Kills the process with SIGKILL (no cleanup at all).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the binary again on the same data folder.
    pub async fn restart(&mut self) {
        self.restart_with(&[]).await;
    }

    /// Starts the binary again on the same data folder, with these environment variables.
    pub async fn restart_with(&mut self, env: &[(&str, &str)]) {
        self.kill();
        let (child, base) = spawn(&self.data_dir(), self.url.as_deref(), env, &[], None);
        self.child = Some(child);
        self.base = base;
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "server never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(m, format!("{}{}", self.base, path));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn call(&self, m: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut r = self.req(m, path);
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(&body)).await
    }

    /// Polls `path` until `ok` holds for its body, or fails after 15 s with the last body.
    pub async fn poll(&self, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = self.get(path).await;
            if ok(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "GET {path} never matched: {v}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn put_settings(&self, v: Value) -> Value {
        let (s, out) = self.call(reqwest::Method::PUT, "/v1/settings", Some(&v)).await;
        assert_eq!(s, 200, "PUT settings: {out}");
        out
    }

    /// Posts events and waits until their work is settled.
    pub async fn send(&self, events: Vec<Value>) -> Value {
        let (s, v) = self.call(reqwest::Method::POST, "/v1/events?wait=20", Some(&Value::Array(events))).await;
        assert_eq!(s, 202, "POST events: {v}");
        assert_eq!(v["settled"], true, "events did not settle: {v}");
        v
    }

    pub async fn session(&self, id: &str) -> Value {
        self.get(&format!("/v1/sessions/{id}")).await
    }

    /// The session's record from the built-in CRM.
    pub async fn record_of(&self, id: &str) -> Value {
        let s = self.session(id).await;
        let rid = s["record_id"].as_str().unwrap_or_else(|| panic!("session {id} has no record: {s}"));
        self.get(&format!("/v1/crm/records/{rid}")).await
    }

    pub async fn create_account(&self, body: Value) -> Value {
        let (s, v) = self.call(reqwest::Method::POST, "/v1/crm/accounts", Some(&body)).await;
        assert_eq!(s, 201, "{v}");
        v
    }

    pub async fn create_record(&self, body: Value) -> Value {
        let (s, v) = self.call(reqwest::Method::POST, "/v1/crm/records", Some(&body)).await;
        assert_eq!(s, 201, "{v}");
        v
    }

    pub async fn records(&self, query: &str) -> Vec<Value> {
        self.get(&format!("/v1/crm/records?{query}")).await["records"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Builds events of one session with increasing times and unique ids.
pub struct Ses {
    pub id: String,
    pub t: chrono::DateTime<chrono::Utc>,
    n: u32,
}

impl Ses {
    pub fn new(id: &str, start: &str) -> Ses {
        let t = chrono::DateTime::parse_from_rfc3339(start).expect("time").with_timezone(&chrono::Utc);
        Ses { id: id.into(), t, n: 0 }
    }

    /// An event `secs` after the previous one.
    pub fn ev(&mut self, secs: i64, ty: &str, data: Value) -> Value {
        self.t += chrono::Duration::seconds(secs);
        self.n += 1;
        json!({"id": format!("{}-{}", self.id, self.n), "session_id": self.id, "type": ty,
               "at": self.t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "data": data})
    }

    pub fn created(&mut self, session_type: &str, customer: Value, queue: &[&str]) -> Value {
        let channel = if session_type.starts_with("messaging") {
            "chat"
        } else if session_type == "voicemail" {
            "voicemail"
        } else {
            "voice"
        };
        let direction = if session_type == "voice_outbound" { "outbound" } else { "inbound" };
        self.ev(
            0,
            "session.created",
            json!({"channel": channel, "session_type": session_type, "direction": direction,
            "customer": customer, "queue_path": queue, "dialed_number": "+18005550000"}),
        )
    }

    pub fn assigned(&mut self, agent: &str) -> Value {
        self.ev(5, "session.assigned", json!({"agent": {"id": agent}}))
    }
    pub fn connected(&mut self) -> Value {
        self.ev(5, "session.connected", json!({}))
    }
    pub fn ended(&mut self) -> Value {
        self.ev(60, "session.ended", json!({}))
    }
    pub fn abandoned(&mut self, secs: i64) -> Value {
        self.ev(secs, "session.abandoned", json!({}))
    }
    pub fn msg(&mut self, sender: &str) -> Value {
        self.ev(2, "message.created", json!({"sender": sender, "text": "hello"}))
    }
}

/// A voice call that is assigned, connected and ends.
pub fn call(id: &str, start: &str, phone: &str, queue: &[&str]) -> Vec<Value> {
    let mut s = Ses::new(id, start);
    vec![s.created("voice_inbound_ivr", json!({"phone": phone}), queue), s.assigned("ag-1"), s.connected(), s.ended()]
}

/// Whether the timeline has a decision by `rule`.
pub fn has_rule(session: &Value, rule: &str) -> bool {
    session["timeline"].as_array().is_some_and(|t| t.iter().any(|e| e["rule"] == rule))
}

pub fn settings(patch: Value) -> Value {
    let mut base = json!({});
    merge(&mut base, patch);
    base
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// A raw request: a path, headers and a body as sent. Returns status and body (JSON when it
/// parses).
pub async fn raw(
    s: &Server,
    path: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut r = s.http.post(format!("{}{}", s.base, path)).header("content-type", content_type).body(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// What must be the same for a session made from native events and the same lifecycle in
/// casebridge's own schema: the session's outcome and its record in the built-in CRM.
pub async fn outcome(s: &Server, id: &str) -> Value {
    let sess = s.session(id).await;
    let pick = |v: &Value, keys: &[&str]| -> Value {
        Value::Object(keys.iter().map(|k| (k.to_string(), v[*k].clone())).collect())
    };
    let session = pick(
        &sess,
        &[
            "channel",
            "session_type",
            "direction",
            "state",
            "leaf_queue",
            "account_outcome",
            "record_outcome",
            "record_rule",
            "abandoned",
            "missed_reason",
            "customer_messages",
            "agent_id",
        ],
    );
    let record = match sess["record_id"].as_str() {
        Some(rid) => {
            let r = s.get(&format!("/v1/crm/records/{rid}")).await;
            let attachments: Vec<Value> = r["attachments"]
                .as_array()
                .map(|a| a.iter().map(|x| x["content"].clone()).collect())
                .unwrap_or_default();
            json!({"record": pick(&r, &["title", "status", "leaf_queue", "channel", "owner_agent_id", "tags"]),
                   "notes": r["notes"].as_array().map(|n| n.iter().map(|x| x["body"].clone()).collect::<Vec<_>>()),
                   "transcripts": attachments})
        }
        None => Value::Null,
    };
    let account = match sess["account_id"].as_str() {
        Some(aid) => pick(&s.get(&format!("/v1/crm/accounts/{aid}")).await, &["kind", "name", "phone", "email"]),
        None => Value::Null,
    };
    json!({"session": session, "record": record, "account": account})
}

/// Polls a session until it is settled and in `state`.
pub async fn settled_in(s: &Server, id: &str, state: &str) -> Value {
    let path = format!("/v1/sessions/{id}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, v) = s.call(reqwest::Method::GET, &path, None).await;
        if code == 200 && v["settled"] == true && v["state"] == state {
            return v;
        }
        assert!(Instant::now() < deadline, "session {id} never settled in {state}: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
