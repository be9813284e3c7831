//! The operator's pages: the overview, dead letters and reports.

use std::time::Instant;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use casebridge_rules::session::Session;
use casebridge_store::SessionFilter;
use casebridge_store::outbox::OutboxState;
use chrono::{TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::console::call::{answer, via_router};
use crate::console::render;
use crate::console::state::{Console, Viewer};

/// The accepted-events counter from the metrics text.
fn accepted_total(c: &Console) -> Option<f64> {
    let text = c.app.metrics.as_ref()?.render();
    text.lines()
        .filter(|l| l.starts_with("casebridge_events_accepted_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
        .or(Some(0.0))
}

/// Events a second since the previous look at the overview (the page refreshes itself).
fn events_rate(c: &Console) -> Option<f64> {
    let now = Instant::now();
    let total = accepted_total(c)?;
    let mut last = c.rate.lock().ok()?;
    let rate = last.and_then(|(t, n)| {
        let secs = now.duration_since(t).as_secs_f64();
        (secs >= 0.5).then(|| (total - n).max(0.0) / secs)
    });
    if last.is_none_or(|(t, _)| now.duration_since(t).as_secs_f64() >= 0.5) {
        *last = Some((now, total));
    }
    rate
}

/// `GET /`: what is happening now.
pub async fn overview(State(c): State<Console>, Extension(v): Extension<Viewer>) -> Response {
    let st = &c.app;
    let settings = st.pipeline.settings().await;
    let tz: chrono_tz::Tz = settings.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let today = Utc::now().with_timezone(&tz).date_naive();
    let midnight =
        today.and_hms_opt(0, 0, 0).and_then(|d| tz.from_local_datetime(&d).earliest()).map(|t| t.with_timezone(&Utc));
    const CAP: i64 = 5000;
    let rows = st
        .store
        .list_sessions(&SessionFilter { from: midnight, limit: CAP + 1, ..Default::default() })
        .await
        .unwrap_or_default();
    let mut outcomes = std::collections::BTreeMap::from([
        ("created", 0),
        ("appended", 0),
        ("reopened", 0),
        ("none", 0),
        ("pending", 0),
    ]);
    for (_, row) in rows.iter().take(CAP as usize) {
        if let Ok(s) = serde_json::from_str::<Session>(&row.body)
            && let Ok(Value::String(o)) = serde_json::to_value(s.record_outcome)
            && let Some(n) = outcomes.get_mut(o.as_str())
        {
            *n += 1;
        }
    }
    let sessions_today = if rows.len() as i64 > CAP { format!("{CAP}+") } else { rows.len().to_string() };
    let counts = st.store.outbox_counts().await.unwrap_or_default();
    let count = |s: OutboxState| counts.iter().find(|(x, _)| *x == s).map_or(0, |(_, n)| *n);
    let pending_events = st.store.pending_event_count().await.unwrap_or(0);
    let failing: Vec<Value> = st
        .store
        .list_commands(OutboxState::Pending, 200)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.attempts > 0)
        .take(5)
        .map(|r| json!({"session_id": r.session_id, "attempts": r.attempts, "error": r.last_error}))
        .collect();
    let dead = count(OutboxState::Dead);
    let health = if !failing.is_empty() {
        "failing: writes are being retried"
    } else if dead > 0 {
        "answering, with dead letters to look at"
    } else {
        "healthy"
    };
    let ctx = json!({
        "title": "Overview",
        "rate": events_rate(&c).map(|r| format!("{r:.1}")),
        "sessions_today": sessions_today, "outcomes": outcomes, "day": today.to_string(), "time_zone": settings.time_zone,
        "pending_events": pending_events, "pending_writes": count(OutboxState::Pending), "dead": dead,
        "crm": {"kind": st.pipeline.crm().kind(), "health": health, "failing": failing, "ok": failing.is_empty()},
    });
    render::page(&v, "overview.html", "overview", ctx)
}

/// `GET /dead-letters`.
pub async fn dead_letters(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Query(q): Query<Notice>,
) -> Response {
    let oq = crate::api::ops::OutboxQuery { state: Some("dead".into()), limit: Some(500) };
    let a = answer(crate::api::ops::list_outbox(State(c.app.clone()), Query(oq)).await).await;
    let writes: Vec<Value> = a.body["writes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut w| {
            w["op_name"] = w["op"]["op"].clone();
            w
        })
        .collect();
    let notice = q.notice.map(|t| json!({"ok": !q.bad.unwrap_or(false), "text": t}));
    render::page(&v, "dead_letters.html", "dead", json!({"title": "Dead letters", "writes": writes, "notice": notice}))
}

/// A message carried through a redirect.
#[derive(Debug, Deserialize)]
pub struct Notice {
    /// The text.
    pub notice: Option<String>,
    /// It says something went wrong.
    pub bad: Option<bool>,
}

fn back(notice: &str, bad: bool) -> Response {
    let q = serde_urlencoded::to_string([("notice", notice), ("bad", if bad { "true" } else { "false" })])
        .unwrap_or_default();
    crate::console::pages::admin::back(&format!("/dead-letters?{q}"))
}

/// `POST /dead-letters/{id}/retry`: the API's retry.
pub async fn retry_one(State(c): State<Console>, Path(id): Path<i64>) -> Response {
    let a = answer(crate::api::ops::retry_outbox(State(c.app.clone()), Path(id)).await).await;
    if a.ok() { back(&format!("Write {id} is back in line."), false) } else { back(&a.detail(), true) }
}

/// `POST /dead-letters/retry-all`: `POST /v1/outbox/retry?state=dead`; where this build lacks
/// it, each dead letter's own retry.
pub async fn retry_all(State(c): State<Console>) -> Response {
    let a = via_router(&c, "POST", "/v1/outbox/retry?state=dead", None).await;
    if a.ok() {
        return back("Every dead letter is back in line.", false);
    }
    if a.status.as_u16() != 404 && a.status.as_u16() != 405 {
        return back(&a.detail(), true);
    }
    let rows = c.app.store.list_commands(OutboxState::Dead, 10_000).await.unwrap_or_default();
    let mut n = 0;
    for r in rows {
        if answer(crate::api::ops::retry_outbox(State(c.app.clone()), Path(r.id)).await).await.ok() {
            n += 1;
        }
    }
    back(&format!("{n} dead letter(s) back in line."), false)
}

/// The report period.
#[derive(Debug, Deserialize)]
pub struct Period {
    /// First day (YYYY-MM-DD).
    pub from: Option<String>,
    /// Last day.
    pub to: Option<String>,
}

/// A chart spec for the page's script: labels on x, one dataset a series.
fn chart(rows: &Value, series_key: &str, stacked: bool) -> Value {
    let mut labels: Vec<String> = Vec::new();
    let mut series: Vec<String> = Vec::new();
    for r in rows.as_array().into_iter().flatten() {
        let g = r["group"].as_str().unwrap_or("").to_string();
        let s = r[series_key].as_str().unwrap_or("").to_string();
        if !labels.contains(&g) {
            labels.push(g);
        }
        if !series.contains(&s) {
            series.push(s);
        }
    }
    const COLOURS: &[&str] = &["#1f5fbf", "#d9822b", "#2e8b57", "#b3261e", "#7b4fbf", "#5b6473", "#c2a400", "#1a8fa3"];
    let datasets: Vec<Value> = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let data: Vec<u64> = labels
                .iter()
                .map(|g| {
                    rows.as_array()
                        .into_iter()
                        .flatten()
                        .find(|r| r["group"].as_str() == Some(g) && r[series_key].as_str() == Some(s))
                        .and_then(|r| r["count"].as_u64())
                        .unwrap_or(0)
                })
                .collect();
            json!({"label": if s.is_empty() { "Sessions" } else { s.as_str() }, "data": data, "backgroundColor": COLOURS[i % COLOURS.len()]})
        })
        .collect();
    json!({"type": "bar", "labels": labels, "datasets": datasets, "stacked": stacked})
}

/// `GET /reports`: dispositions by day, agent and queue, with the trend; abandoned sessions
/// by reason and by day.
pub async fn reports(State(c): State<Console>, Extension(v): Extension<Viewer>, Query(p): Query<Period>) -> Response {
    let from = p.from.filter(|s| !s.trim().is_empty());
    let to = p.to.filter(|s| !s.trim().is_empty());
    let q = |g: &str| crate::api::reports::ReportQuery { from: from.clone(), to: to.clone(), group_by: Some(g.into()) };
    let mut charts = Vec::new();
    let mut error = Value::Null;
    let mut period = Value::Null;
    let mut trend = Value::Null;
    for (g, title) in
        [("day", "Dispositions by day"), ("agent", "Dispositions by agent"), ("queue", "Dispositions by queue")]
    {
        let a = answer(crate::api::reports::report_dispositions(State(c.app.clone()), Query(q(g))).await).await;
        if !a.ok() {
            error = json!(format!("{} {}", a.detail(), fields_text(&a.body)));
            break;
        }
        period = json!({"from": a.body["from"], "to": a.body["to"], "time_zone": a.body["time_zone"]});
        trend = a.body["trend"].clone();
        charts.push(json!({"id": format!("dispositions-{g}"), "title": title, "spec": chart(&a.body["rows"], "disposition", true), "rows": a.body["rows"], "series": "Disposition"}));
    }
    if error.is_null() {
        for (g, title) in [("reason", "Abandoned sessions by reason"), ("day", "Abandoned sessions by day")] {
            let a = answer(crate::api::reports::report_abandoned(State(c.app.clone()), Query(q(g))).await).await;
            if !a.ok() {
                error = json!(a.detail());
                break;
            }
            let rows = a.body["rows"].clone();
            let series_key = if g == "reason" { "none" } else { "reason" };
            charts.push(json!({"id": format!("abandoned-{g}"), "title": title, "spec": chart(&rows, series_key, g != "reason"), "rows": rows, "series": "Reason"}));
        }
    }
    let ctx = json!({"title": "Reports", "charts": charts, "error": error, "period": period, "trend": trend,
                     "q": {"from": from, "to": to}});
    render::page(&v, "reports.html", "reports", ctx)
}

fn fields_text(p: &Value) -> String {
    p["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| format!("{}: {}", e["field"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("; ")
}
