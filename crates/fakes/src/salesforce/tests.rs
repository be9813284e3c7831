//! The fake's own Salesforce semantics.

use std::sync::Arc;

use serde_json::{Value, json};

use super::dispatch::{Api, Call};
use super::soql::{Scope, like, parse_soql, parse_sosl, phone_matches};
use super::*;

fn call(api: &mut Api, method: &str, path: &str, body: Value) -> Answer {
    let text = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (path.to_string(), None),
    };
    api.handle(&Call { method, path: &path, query: query.as_deref(), content_type: "application/json", body: &text })
}

fn code(a: &Answer) -> &str {
    a.body.as_ref().and_then(|b| b[0]["errorCode"].as_str()).unwrap_or("")
}

const V: &str = "/services/data/v66.0";

#[test]
fn upsert_by_external_id_creates_then_updates_then_reports_duplicates() {
    let mut api = Api::default();
    let url = format!("{V}/sobjects/Case/Casebridge_Key__c/cb-rec-s1");
    let a = call(&mut api, "PATCH", &url, json!({"Subject": "Call"}));
    assert_eq!(a.status, 201, "{a:?}");
    let id = a.body.as_ref().unwrap()["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("500"));
    let b = call(&mut api, "PATCH", &url, json!({"Subject": "Call again"}));
    assert_eq!(b.status, 200);
    assert_eq!(b.body.as_ref().unwrap()["created"], false);
    assert_eq!(api.org.all("Case").len(), 1);
    assert_eq!(api.org.all("Case")[0]["Status"], "New", "the default status");
    // A key given twice (seeded duplicates) answers 300 with both.
    api.org.insert_raw("Case", json!({"Casebridge_Key__c": "dup", "Subject": "a"}));
    api.org.insert_raw("Case", json!({"Casebridge_Key__c": "dup", "Subject": "b"}));
    let c = call(&mut api, "PATCH", &format!("{V}/sobjects/Case/Casebridge_Key__c/dup"), json!({"Subject": "x"}));
    assert_eq!(c.status, 300);
    assert_eq!(c.body.unwrap().as_array().unwrap().len(), 2);
    // Not an external id.
    let d = call(&mut api, "PATCH", &format!("{V}/sobjects/Case/Subject/x"), json!({}));
    assert_eq!(d.status, 400);
}

#[test]
fn closedness_is_case_status_data() {
    let mut api = Api::default();
    let a = call(&mut api, "POST", &format!("{V}/sobjects/Case"), json!({"Subject": "x"}));
    let id = a.body.unwrap()["id"].as_str().unwrap().to_string();
    let r = call(&mut api, "PATCH", &format!("{V}/sobjects/Case/{id}"), json!({"Status": "Resolved"}));
    assert_eq!(r.status, 204);
    let case = api.org.get(&id).unwrap().1.clone();
    assert_eq!(case["IsClosed"], true, "Resolved is a closed status");
    assert!(case["ClosedDate"].is_string());
    call(&mut api, "PATCH", &format!("{V}/sobjects/Case/{id}"), json!({"Status": "Working"}));
    let case = api.org.get(&id).unwrap().1.clone();
    assert_eq!(case["IsClosed"], false);
    assert!(case["ClosedDate"].is_null(), "reopening clears ClosedDate");
    let bad = call(&mut api, "PATCH", &format!("{V}/sobjects/Case/{id}"), json!({"Status": "Nope"}));
    assert_eq!(code(&bad), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    let ro = call(&mut api, "PATCH", &format!("{V}/sobjects/Case/{id}"), json!({"IsClosed": true}));
    assert_eq!(code(&ro), "INVALID_FIELD_FOR_INSERT_UPDATE");
    let unknown = call(&mut api, "PATCH", &format!("{V}/sobjects/Case/{id}"), json!({"Nope__c": 1}));
    assert_eq!(code(&unknown), "INVALID_FIELD");
}

#[test]
fn queries_page_and_refuse_what_they_do_not_understand() {
    let mut api = Api::default();
    api.org.config.page_size = 2;
    for i in 0..5 {
        api.org.insert_raw("Contact", json!({"LastName": format!("N{i}"), "Email": "a@b.c"}));
    }
    let q = "SELECT+Id%2C+Name+FROM+Contact+WHERE+Email+%3D+%27A%40B.C%27+ORDER+BY+Name+DESC";
    let a = call(&mut api, "GET", &format!("{V}/query?q={q}"), Value::Null);
    let body = a.body.unwrap();
    assert_eq!(body["totalSize"], 5);
    assert_eq!(body["done"], false);
    assert_eq!(body["records"][0]["Name"], "N4");
    let mut next = body["nextRecordsUrl"].as_str().map(str::to_string);
    let mut seen = 2;
    while let Some(url) = next {
        let page = call(&mut api, "GET", &url, Value::Null).body.unwrap();
        seen += page["records"].as_array().unwrap().len();
        next = page["nextRecordsUrl"].as_str().map(str::to_string);
    }
    assert_eq!(seen, 5);
    let bad = call(&mut api, "GET", &format!("{V}/query?q=SELECT+Id+FROM+Contact+WHERE+A%3D1+OR+B%3D2"), Value::Null);
    assert_eq!(code(&bad), "MALFORMED_QUERY");
    let field = call(&mut api, "GET", &format!("{V}/query?q=SELECT+Nope+FROM+Contact"), Value::Null);
    assert_eq!(code(&field), "INVALID_FIELD");
}

#[test]
fn sosl_matches_phone_digits_and_person_accounts_need_enabling() {
    let mut api = Api::default();
    api.org.insert_raw("Contact", json!({"LastName": "Ann", "Phone": "(415) 555-0100"}));
    api.org.insert_raw("Lead", json!({"LastName": "Bo", "Company": "X", "MobilePhone": "+1 415.555.0100"}));
    api.org.insert_raw("Lead", json!({"LastName": "Cy", "Company": "X", "Phone": "4155550100", "IsConverted": true}));
    let find = "FIND+%7B4155550100%7D+IN+PHONE+FIELDS+RETURNING+Contact(Id%2CName)%2C+Lead(Id%2CName+WHERE+IsConverted%3Dfalse)";
    let a = call(&mut api, "GET", &format!("{V}/search?q={find}"), Value::Null).body.unwrap();
    let names: Vec<&str> = a["searchRecords"].as_array().unwrap().iter().filter_map(|r| r["Name"].as_str()).collect();
    assert_eq!(names, ["Ann", "Bo"]);
    let with_accounts = format!("{find}%2C+Account(Id+WHERE+IsPersonAccount%3Dtrue)");
    let refused = call(&mut api, "GET", &format!("{V}/search?q={with_accounts}"), Value::Null);
    assert_eq!(code(&refused), "INVALID_FIELD");
    api.org.config.person_accounts = true;
    api.org.insert_raw("Account", json!({"LastName": "Di", "PersonMobilePhone": "415-555-0100"}));
    let a = call(&mut api, "GET", &format!("{V}/search?q={with_accounts}"), Value::Null).body.unwrap();
    assert_eq!(a["searchRecords"].as_array().unwrap().len(), 3);
}

#[test]
fn composite_resolves_references_and_reports_each_subrequest() {
    let mut api = Api::default();
    let body = json!({"allOrNone": false, "compositeRequest": [
        {"method": "PATCH", "url": format!("{V}/sobjects/Contact/Casebridge_Key__c/cb-acct-s1"), "referenceId": "r0",
         "body": {"LastName": "Caller"}},
        {"method": "PATCH", "url": format!("{V}/sobjects/Case/Casebridge_Key__c/cb-rec-s1"), "referenceId": "r1",
         "body": {"Subject": "Call", "ContactId": "@{r0.id}"}},
        {"method": "POST", "url": format!("{V}/sobjects/CaseComment"), "referenceId": "r2",
         "body": {"ParentId": "@{r1.id}", "CommentBody": "hi"}},
        {"method": "PATCH", "url": format!("{V}/sobjects/Case/500FK0000009999AAA"), "referenceId": "r3",
         "body": {"Subject": "x"}},
        {"method": "POST", "url": format!("{V}/sobjects/CaseComment"), "referenceId": "r4",
         "body": {"ParentId": "@{r3.id}", "CommentBody": "never"}}
    ]});
    let a = call(&mut api, "POST", &format!("{V}/composite"), body);
    assert_eq!(a.status, 200);
    let subs = a.body.unwrap()["compositeResponse"].as_array().unwrap().clone();
    let codes: Vec<u64> = subs.iter().map(|s| s["httpStatusCode"].as_u64().unwrap()).collect();
    assert_eq!(codes, [201, 201, 201, 404, 400]);
    assert_eq!(subs[4]["body"][0]["errorCode"], "PROCESSING_HALTED");
    let case = &api.org.all("Case")[0];
    assert_eq!(case["ContactId"], api.org.all("Contact")[0]["Id"]);
    assert_eq!(api.org.all("CaseComment").len(), 1);
}

#[test]
fn custom_fields_are_created_once_and_need_permission() {
    let mut api = Api::default();
    let body = json!({"FullName": "Case.Casebridge_Csat_Score__c", "Metadata": {"label": "CSAT", "type": "Number",
                      "precision": 18, "scale": 2}});
    let a = call(&mut api, "POST", &format!("{V}/tooling/sobjects/CustomField"), body.clone());
    assert_eq!(a.status, 201);
    let again = call(&mut api, "POST", &format!("{V}/tooling/sobjects/CustomField"), body.clone());
    assert_eq!(code(&again), "DUPLICATE_DEVELOPER_NAME");
    let case = call(&mut api, "POST", &format!("{V}/sobjects/Case"), json!({"Casebridge_Csat_Score__c": 9}));
    assert_eq!(case.status, 201, "the new field is writable");
    api.org.config.tooling_allowed = false;
    let denied = call(
        &mut api,
        "POST",
        &format!("{V}/tooling/sobjects/CustomField"),
        json!({"FullName": "Case.Other__c", "Metadata": {"type": "Text", "length": 255}}),
    );
    assert_eq!((denied.status, code(&denied)), (403, "INSUFFICIENT_ACCESS"));
}

#[test]
fn multipart_content_versions_keep_their_bytes() {
    let mut api = Api::default();
    let case = call(&mut api, "POST", &format!("{V}/sobjects/Case"), json!({"Subject": "x"})).body.unwrap();
    let id = case["id"].as_str().unwrap();
    let body = format!(
        "--b1\r\nContent-Disposition: form-data; name=\"entity_content\"\r\nContent-Type: application/json\r\n\r\n{}\r\n--b1\r\nContent-Disposition: form-data; name=\"VersionData\"; filename=\"rec.mp3\"\r\nContent-Type: application/octet-stream\r\n\r\nAUDIO\r\n--b1--\r\n",
        json!({"Title": "rec", "PathOnClient": "rec.mp3", "FirstPublishLocationId": id})
    );
    let a = api.handle(&Call {
        method: "POST",
        path: &format!("{V}/sobjects/ContentVersion"),
        query: None,
        content_type: "multipart/form-data; boundary=b1",
        body: body.as_bytes(),
    });
    assert_eq!(a.status, 201, "{a:?}");
    let cv = &api.org.all("ContentVersion")[0];
    assert_eq!(cv["VersionData"], "AUDIO");
    assert_eq!(cv["ContentSize"], 5);
}

#[tokio::test]
async fn tokens_limits_and_errors_over_http() {
    let fake: Arc<SalesforceFake> = Arc::new(SalesforceFake::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(crate::serve(fake.clone(), listener));
    let http = reqwest::Client::new();
    let bad = http
        .post(format!("{base}/services/oauth2/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", CLIENT_ID), ("client_secret", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"], "invalid_client");
    let tok: Value = http
        .post(format!("{base}/services/oauth2/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_string();
    assert_eq!(tok["instance_url"], base);
    let limits = format!("{base}/services/data/v66.0/limits");
    let ok = http.get(&limits).bearer_auth(&token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["sforce-limit-info"], "api-usage=1/100000");
    http.post(format!("{base}/__fake/salesforce/config")).json(&json!({"daily_limit": 1})).send().await.unwrap();
    let over = http.get(&limits).bearer_auth(&token).send().await.unwrap();
    assert_eq!(over.status(), 403);
    assert_eq!(over.json::<Value>().await.unwrap()[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    http.post(format!("{base}/__fake/salesforce/expire-tokens")).send().await.unwrap();
    let expired = http.get(&limits).bearer_auth(&token).send().await.unwrap();
    assert_eq!(expired.status(), 401);
    assert_eq!(expired.json::<Value>().await.unwrap()[0]["errorCode"], "INVALID_SESSION_ID");
}

#[test]
fn selects_parse_and_filter() {
    let q = parse_soql(
        "SELECT Id, Status FROM Case WHERE ContactId = '003X' AND IsClosed = false ORDER BY CreatedDate DESC LIMIT 5",
    )
    .unwrap();
    assert_eq!(q.object, "Case");
    assert_eq!(q.fields, ["Id", "Status"]);
    assert_eq!(q.limit, Some(5));
    let a = json!({"Id": "1", "ContactId": "003x", "IsClosed": false, "CreatedDate": "2026-01-02"});
    let b = json!({"Id": "2", "ContactId": "003X", "IsClosed": true, "CreatedDate": "2026-01-03"});
    let rs = [a.as_object().unwrap().clone(), b.as_object().unwrap().clone()];
    let out = q.run(rs.iter());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["Id"], "1");
}

#[test]
fn what_the_fake_does_not_understand_is_refused() {
    assert!(parse_soql("SELECT Id FROM Case WHERE A = 'x' OR B = 'y'").is_err());
    assert!(parse_soql("SELECT Id FROM Case GROUP BY Status").is_err());
    assert!(parse_soql("SELECT Id FROM Case WHERE (A = 'x')").is_err());
    assert!(parse_soql("DELETE FROM Case").is_err());
    assert!(parse_soql("SELECT Id FROM Case WHERE Subject = 'unterminated").is_err());
}

#[test]
fn sosl_returning_clauses_and_phone_digits() {
    let s = parse_sosl(
        "FIND {4155550100} IN PHONE FIELDS RETURNING Contact(Id,Name,LastModifiedDate), Lead(Id,Name WHERE IsConverted=false), Account",
    )
    .unwrap();
    assert_eq!(s.scope, Scope::Phone);
    assert_eq!(s.term, "4155550100");
    assert_eq!(s.returning.len(), 3);
    assert_eq!(s.returning[1].conds[0].field, "IsConverted");
    assert!(phone_matches("+1 (415) 555-0100", "4155550100"));
    assert!(phone_matches("415.555.0100", "4155550100"));
    assert!(!phone_matches("415 555 0199", "4155550100"));
    assert!(like("Hello World", "hello%"));
    assert!(!like("Hello", "h_lo"));
}
