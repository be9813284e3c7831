//! The fake's own Kustomer semantics, over real HTTP.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure with its message

use serde_json::{Value, json};

use super::API_KEY;

struct T {
    base: String,
    http: reqwest::Client,
}

async fn start() -> T {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(crate::serve(super::make(), listener));
    T { base, http: reqwest::Client::new() }
}

impl T {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut r = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(API_KEY);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.call(reqwest::Method::POST, path, Some(body)).await;
        (s, v)
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.call(reqwest::Method::GET, path, None).await;
        (s, v)
    }
    async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.call(reqwest::Method::PATCH, path, Some(body)).await;
        (s, v)
    }
    async fn customer(&self, phone: &str) -> String {
        let (s, v) =
            self.post("/v1/customers", json!({"name": "Ann", "phones": [{"type": "mobile", "phone": phone}]})).await;
        assert_eq!(s, 201, "{v}");
        v["data"]["id"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn kustomer_wrong_keys_are_refused_with_a_jsonapi_error_and_limit_headers() {
    let t = start().await;
    let r = t.http.get(format!("{}/v1/customers", t.base)).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("x-ratelimit-remaining"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["status"], 401, "{v}");
    let (s, _, h) = t.call(reqwest::Method::GET, "/v1/customers", None).await;
    assert_eq!(s, 200);
    for k in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
        assert!(h.contains_key(k), "{k} missing");
    }
}

#[tokio::test]
async fn kustomer_identifiers_are_unique_and_found_by_phone_email_and_external_id() {
    let t = start().await;
    let (s, v) = t
        .post(
            "/v1/customers",
            json!({"name": "Ann", "phones": [{"type": "mobile", "phone": "+14155550100"}],
                "emails": [{"type": "home", "email": "Ann@Example.com"}],
                "externalIds": [{"externalId": "cb-acct-s1", "verified": false}]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["data"]["type"], "customer");
    for path in [
        "/v1/customers/phone=%2B14155550100",
        "/v1/customers/email=ann@example.com",
        "/v1/customers/externalId=cb-acct-s1",
    ] {
        let (s, v) = t.get(path).await;
        assert_eq!((s, v["data"]["id"].as_str()), (200, Some(id.as_str())), "{path}: {v}");
    }
    assert_eq!(t.get("/v1/customers/phone=%2B14155550199").await.0, 404);
    let (s, v) = t.post("/v1/customers", json!({"name": "Bob", "phones": [{"phone": "+1 415 555 0100"}]})).await;
    assert_eq!(s, 409, "a second customer with the phone is refused: {v}");
    assert_eq!(v["errors"][0]["code"], "duplicate");
    let (s, _) = t.post("/v1/customers", json!({"id": id, "name": "Ann again"})).await;
    assert_eq!(s, 409, "a reused id is refused");
}

#[tokio::test]
async fn kustomer_statuses_tags_and_reopening_by_an_inbound_message() {
    let t = start().await;
    let c = t.customer("+14155550101").await;
    let (s, v) = t.post("/v1/conversations", json!({"customer": c, "name": "Call", "status": "closed"})).await;
    assert_eq!(s, 400, "only open, snoozed and done: {v}");
    assert_eq!(v["errors"][0]["source"]["pointer"], "/status");
    let (s, v) = t
        .post(
            "/v1/conversations",
            json!({"customer": c, "name": "Call", "externalId": "cb-rec-s1", "tags": ["Voice Inbound - IVR"]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    let (s, _) = t.post("/v1/conversations", json!({"customer": c, "externalId": "cb-rec-s1"})).await;
    assert_eq!(s, 409, "external ids of conversations are unique");
    assert_eq!(t.get("/v1/conversations/externalId=cb-rec-s1").await.1["data"]["id"], json!(id));
    let (s, v) = t.post(&format!("/v1/conversations/{id}/tags"), json!(["casebridge", "Voice Inbound - IVR"])).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["attributes"]["tags"].as_array().unwrap().len(), 2, "appended once each");
    let (_, v) = t.patch(&format!("/v1/conversations/{id}"), json!({"tags": ["only"], "status": "done"})).await;
    assert_eq!(v["data"]["attributes"]["tags"].as_array().unwrap().len(), 1, "tags in an update replace the set");
    assert_eq!(v["data"]["attributes"]["ended"], true);
    let (s, _) = t
        .post(
            &format!("/v1/conversations/{id}/messages"),
            json!({"direction": "in", "channel": "email", "preview": "hi"}),
        )
        .await;
    assert_eq!(s, 201);
    let (_, v) = t.get(&format!("/v1/conversations/{id}")).await;
    assert_eq!(v["data"]["attributes"]["status"], "open", "an inbound message reopens a done conversation");
    let (s, v) = t.patch(&format!("/v1/conversations/{id}"), json!({"custom": {"queue": "x"}})).await;
    assert_eq!(s, 400, "custom attributes need a type suffix: {v}");
    let (_, v) = t.get(&format!("/v1/customers/{c}/conversations?pageSize=1")).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert!(v["links"]["next"].is_null(), "one conversation, one page: {v}");
}

#[tokio::test]
async fn kustomer_notes_are_limited_per_customer_and_the_org_limit_answers_429() {
    let t = start().await;
    let c = t.customer("+14155550102").await;
    let (_, v) = t.post("/v1/conversations", json!({"customer": c})).await;
    let conv = v["data"]["id"].as_str().unwrap().to_string();
    let (s, _) = t.post("/__fake/kustomer/limits", json!({"notes_per_customer": 2})).await;
    assert_eq!(s, 204);
    for _ in 0..2 {
        assert_eq!(t.post(&format!("/v1/conversations/{conv}/notes"), json!({"body": "n"})).await.0, 201);
    }
    let (s, v, h) = t.call(reqwest::Method::POST, "/v1/notes", Some(json!({"conversation": conv, "body": "n"}))).await;
    assert_eq!(s, 429, "{v}");
    assert!(h.contains_key("retry-after"));
    let (_, v) = t.get(&format!("/v1/conversations/{conv}/notes")).await;
    assert_eq!(v["meta"]["total"], 2);
    t.post("/__fake/kustomer/limits", json!({"org_per_minute": 1, "window_s": 30})).await;
    assert_eq!(t.get("/v1/users").await.0, 200);
    let (s, _, h) = t.call(reqwest::Method::GET, "/v1/users", None).await;
    assert_eq!(s, 429);
    assert_eq!(h["x-ratelimit-remaining"], "0");
    let wait: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
}

#[tokio::test]
async fn kustomer_attachments_upload_in_two_steps_and_metadata_needs_permission() {
    let t = start().await;
    let (s, v) =
        t.post("/v1/attachments", json!({"name": "r.mp3", "contentType": "audio/mpeg", "contentLength": 5})).await;
    assert_eq!(s, 201, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    let url = v["meta"]["upload"]["url"].as_str().unwrap().to_string();
    let fields = v["meta"]["upload"]["fields"].as_object().unwrap().clone();
    let c = t.customer("+14155550103").await;
    let (_, v) = t.post("/v1/conversations", json!({"customer": c})).await;
    let conv = v["data"]["id"].as_str().unwrap().to_string();
    let att = json!([{"_id": id, "name": "r.mp3", "contentType": "audio/mpeg", "contentLength": 5}]);
    let (s, _) = t.post("/v1/notes", json!({"conversation": conv, "body": "rec", "attachments": att})).await;
    assert_eq!(s, 400, "not uploaded yet");
    let boundary = "XyZ";
    let mut body = String::new();
    for (k, v) in &fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{}\r\n",
            v.as_str().unwrap()
        ));
    }
    body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\nhello\r\n--{boundary}--\r\n"));
    let r = t
        .http
        .post(&url)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().await.unwrap());
    let (s, v) = t.post("/v1/notes", json!({"conversation": conv, "body": "rec", "attachments": att})).await;
    assert_eq!(s, 201, "{v}");
    let (s, _, _) = t
        .call(
            reqwest::Method::PUT,
            "/v1/metadata/conversation",
            Some(json!({"properties": {"casebridgeQueueStr": {"displayName": "Queue"}}})),
        )
        .await;
    assert_eq!(s, 200);
    t.post("/__fake/kustomer/limits", json!({"denied": ["metadata.update"]})).await;
    let (s, v, _) =
        t.call(reqwest::Method::PUT, "/v1/metadata/conversation", Some(json!({"properties": {"xNum": {}}}))).await;
    assert_eq!(s, 403, "{v}");
    let (_, v) = t.get("/v1/metadata/conversation").await;
    assert!(v["data"]["attributes"]["properties"]["casebridgeQueueStr"].is_object(), "{v}");
}
