//! A CRM vendor's fake, served over real HTTP on a loopback port for the length of a test,
//! and the settings that point casebridge at it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct FakeCrm {
    pub kind: &'static str,
    pub base: String,
    http: reqwest::Client,
    _task: tokio::task::JoinHandle<()>,
}

impl FakeCrm {
    /// Starts a fresh fake of `kind` on a free loopback port.
    pub async fn start(kind: &'static str) -> FakeCrm {
        let fake = casebridge_fakes::fake(kind).unwrap_or_else(|| panic!("no fake for {kind}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = casebridge_fakes::serve(fake, listener).await;
        });
        FakeCrm { kind, base, http: reqwest::Client::new(), _task: task }
    }

    /// `GET /__fake/stats`.
    pub async fn stats(&self) -> Value {
        self.http.get(format!("{}/__fake/stats", self.base)).send().await.expect("stats").json().await.expect("json")
    }

    /// Forgets the counters.
    pub async fn reset_stats(&self) {
        self.http.post(format!("{}/__fake/reset", self.base)).send().await.expect("reset");
    }

    /// `GET /__fake/objects/{type}` as a list.
    pub async fn objects(&self, object_type: &str) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/__fake/objects/{object_type}", self.base))
            .send()
            .await
            .expect("objects")
            .json()
            .await
            .expect("json");
        v.as_array().cloned().unwrap_or_else(|| panic!("objects of {object_type}: {v}"))
    }

    /// Polls the objects of a type until `ok` holds, or fails after 20 s with the last list.
    pub async fn poll_objects(&self, object_type: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.objects(object_type).await;
            if ok(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{object_type} objects never matched: {v:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST /__fake/faults`.
    pub async fn fault(&self, fault: Value) {
        let r = self.http.post(format!("{}/__fake/faults", self.base)).json(&fault).send().await.expect("fault");
        assert!(r.status().is_success(), "fault refused: {}", r.status());
    }

    /// The vendor's type of record (case, conversation…) in `/__fake/objects/{type}`.
    pub fn record_type(&self) -> &'static str {
        match self.kind {
            "salesforce" => "Case",
            _ => "conversation",
        }
    }

    /// The vendor's type of person in `/__fake/objects/{type}`.
    pub fn account_type(&self) -> &'static str {
        match self.kind {
            "salesforce" => "Contact",
            _ => "customer",
        }
    }

    /// The log of requests the fake answered (`at_ms`, `method`, `route`, `path`, `status`).
    pub async fn log(&self) -> Vec<Value> {
        self.stats().await["log"].as_array().cloned().unwrap_or_default()
    }

    /// The `crm` settings member that points casebridge at this fake.
    pub fn crm_settings(&self) -> Value {
        let credentials = match self.kind {
            "salesforce" => json!({"client_id": "casebridge-test", "client_secret": "fake-secret"}),
            _ => json!({"api_key": "fake-api-key"}),
        };
        json!({"kind": self.kind, "base_url": self.base, "credentials": credentials})
    }
}
