//! Signing in, dead letters, reports.

use serde_json::json;

use super::Browser;
use crate::harness::{Server, Ses};

#[tokio::test]
async fn login_refuses_a_wrong_token_and_signs_in_with_the_right_one() {
    let s = Server::start_with(&[("CASEBRIDGE_API_TOKEN", "console-secret-1")], &[]).await;
    let Some(b) = Browser::start("login_refuses_a_wrong_token_and_signs_in_with_the_right_one", &s.base).await else {
        return;
    };
    b.goto("/sessions").await;
    b.find("#token").await;
    assert!(b.path().await.starts_with("/login"), "{}", b.path().await);
    b.screenshot("login").await;
    b.fill("#token", "not-the-token").await;
    b.click("button[type=submit]").await;
    b.wait_text("#login-error", "That is not the API token").await;
    b.fill("#token", "console-secret-1").await;
    b.click("button[type=submit]").await;
    b.wait_text("h1", "Sessions").await;
    assert_eq!(b.path().await, "/sessions", "back where the sign-in started");
    // The cookie is HttpOnly: the page's scripts cannot read it.
    let cookies = b.c.execute("return document.cookie", vec![]).await.unwrap();
    assert_eq!(cookies, json!(""), "the session cookie is HttpOnly");
    b.click("form.logout button").await;
    b.find("#token").await;
    b.goto("/rules").await;
    b.find("#token").await;
    b.assert_no_errors().await;
    b.close().await;
}

#[tokio::test]
async fn console_refuses_forms_without_their_csrf_token_and_takes_the_bearer_token() {
    let s = Server::start_with(&[("CASEBRIDGE_API_TOKEN", "console-secret-2")], &[]).await;
    let http = reqwest::Client::new();
    let page = http.get(format!("{}/rules", s.base)).bearer_auth("console-secret-2").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let no = http.get(format!("{}/rules", s.base)).send().await.unwrap();
    assert!(no.url().path().starts_with("/login"), "redirected to the login page: {}", no.url());
    // Signed in with a cookie, a POST without the CSRF token is refused and changes nothing.
    let login = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = login.post(format!("{}/login", s.base)).form(&[("token", "console-secret-2")]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let value = cookie.split(';').next().unwrap().to_string();
    let r = login
        .post(format!("{}/rules", s.base))
        .header("cookie", &value)
        .form(&[("records.tag_platform", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("CSRF token"));
    assert_eq!(s.get("/v1/settings").await["records"]["tag_platform"], false, "nothing saved");
}

#[tokio::test]
async fn dead_letters_are_listed_and_retried_from_the_console() {
    let s = Server::start().await;
    let mut o = Ses::new("ghost", "2026-11-20T10:00:00Z");
    s.send(vec![o.ev(
        0,
        "session.created",
        json!({"channel": "voice", "session_type": "voice_outbound", "direction": "outbound",
        "customer": {"phone": "+14155550500"}, "origin_record_id": "rec_does_not_exist"}),
    )])
    .await;
    let dead = s.get("/v1/outbox?state=dead").await;
    let id = dead["writes"][0]["id"].as_i64().unwrap();
    let Some(b) = Browser::start("dead_letters_are_listed_and_retried_from_the_console", &s.base).await else { return };
    b.goto("/dead-letters").await;
    let row = format!("#dead-{id}");
    b.wait_text(&row, "rec_does_not_exist").await;
    assert_eq!(b.text(&format!("{row} .attempts")).await, "1");
    b.screenshot("dead-letters").await;
    b.click(&format!("{row} button")).await;
    b.wait_text("#notice", &format!("Write {id} is back in line")).await;
    // The retry runs, fails the same way, and the write is parked again with a second attempt.
    b.wait_text(&format!("{row} .attempts"), "2").await;
    b.click("#retry-all").await;
    b.wait_text("#notice", "back in line").await;
    b.wait_text(&format!("{row} .attempts"), "3").await;
    b.assert_no_errors().await;
    b.close().await;
}

#[tokio::test]
async fn reports_draw_disposition_and_abandoned_charts() {
    let s = Server::start().await;
    s.post("/v1/dispositions", json!({"code": "resolved", "label": "Resolved"})).await;
    s.post("/v1/dispositions", json!({"code": "callback", "label": "Call back later"})).await;
    let now = chrono::Utc::now() - chrono::Duration::minutes(30);
    let start = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (i, code) in ["resolved", "resolved", "callback"].iter().enumerate() {
        let id = format!("rep-{i}");
        s.send(crate::harness::call(&id, &start, &format!("+1415555070{i}"), &["Support"])).await;
        let (c, v) = s.post(&format!("/v1/sessions/{id}/wrapup"), json!({"disposition": code, "action": "log"})).await;
        assert_eq!(c, 200, "{v}");
    }
    let mut a = Ses::new("rep-gone", &start);
    s.send(vec![a.created("voice_inbound_ivr", json!({"phone": "+14155550799"}), &["Support"]), a.abandoned(30)]).await;
    let Some(b) = Browser::start("reports_draw_disposition_and_abandoned_charts", &s.base).await else { return };
    b.goto("/reports").await;
    b.find("#chart-dispositions-day").await;
    b.wait_js(
        "const c = document.querySelector('#chart-dispositions-day'); const ch = window.Chart && Chart.getChart(c); return !!ch && ch.data.datasets.length === 2 && c.width > 0;",
        "the disposition chart is drawn with one series a disposition",
    )
    .await;
    b.wait_js(
        "return !!(window.Chart && Chart.getChart(document.querySelector('#chart-abandoned-reason')));",
        "the abandoned chart",
    )
    .await;
    b.screenshot("reports").await;
    b.assert_no_errors().await;
    b.close().await;
}
