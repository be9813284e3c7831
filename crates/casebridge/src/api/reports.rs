//! Reports over casebridge's activity log (api.md "Agents, wrap-up, dispositions, reports").

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use casebridge_store::agents::ActivityFilter;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::input::field;
use super::state::AppState;
use crate::error::{ApiResult, Problem};

/// Reports.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/reports/dispositions", get(report_dispositions))
        .route("/v1/reports/abandoned", get(report_abandoned))
}

/// Query of the reports.
#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    /// Start: RFC 3339, or a date (start of that day in the settings' time zone).
    pub from: Option<String>,
    /// End (exclusive): RFC 3339, or a date (included: up to the end of that day).
    pub to: Option<String>,
    /// Grouping.
    pub group_by: Option<String>,
}

fn parse_bound(s: &str, tz: chrono_tz::Tz, end: bool) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let d = if end { d.succ_opt()? } else { d };
    tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?).earliest().map(|t| t.with_timezone(&Utc))
}

/// The end of today in `tz` (the start of tomorrow), as UTC.
fn end_of_today(tz: chrono_tz::Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now.with_timezone(&tz).date_naive().succ_opt().unwrap_or(NaiveDate::MAX);
    tomorrow
        .and_hms_opt(0, 0, 0)
        .and_then(|d| tz.from_local_datetime(&d).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now)
}

/// The report's period. Without `to`: seven days from `from`, but no later than the end of
/// today; without either: the last seven days up to the end of today (whole days in the
/// settings' time zone); without `from`: the seven days before `to`. The previous period is
/// the one of the same length just before.
fn period(q: &ReportQuery, tz: chrono_tz::Tz) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let mut errors = Vec::new();
    let msg = "must be an RFC 3339 time or a date such as 2026-11-20";
    let week = chrono::Duration::days(7);
    let today_end = end_of_today(tz, Utc::now());
    let from = match &q.from {
        Some(s) => parse_bound(s, tz, false).or_else(|| {
            errors.push(field("from", msg));
            None
        }),
        None => None,
    };
    let to = match &q.to {
        Some(s) => parse_bound(s, tz, true).or_else(|| {
            errors.push(field("to", msg));
            None
        }),
        None => Some(from.map_or(today_end, |f| (f + week).min(today_end))),
    };
    let from = match (&q.from, from) {
        (None, _) => to.map(|t| t - week),
        (Some(_), f) => f,
    };
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            errors.push(field("from", "must be before to"));
        } else if t - f > chrono::Duration::days(366) {
            errors.push(field("from", "the period is at most 366 days"));
        }
    }
    match (from, to) {
        (Some(f), Some(t)) if errors.is_empty() => Ok((f, t)),
        _ => Err(Problem::fields("the report period is invalid", &errors)),
    }
}

type Counts = BTreeMap<String, BTreeMap<String, u64>>;

/// What every report is framed by: the settings' time zone, the grouping and the period.
struct Frame {
    tz: chrono_tz::Tz,
    time_zone: String,
    group_by: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// Reads a report's query; `groupings[0]` is the default grouping.
async fn frame(st: &AppState, q: &ReportQuery, groupings: &[&str]) -> ApiResult<Frame> {
    let settings = st.pipeline.settings().await;
    let tz: chrono_tz::Tz = settings.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let group_by = q.group_by.clone().unwrap_or_else(|| groupings[0].to_string());
    if !groupings.contains(&group_by.as_str()) {
        let (last, rest) = groupings.split_last().unwrap_or((&"", &[]));
        let message = format!("must be {} or {last}", rest.join(", "));
        return Err(Problem::fields("the report is invalid", &[field("group_by", &message)]));
    }
    let (from, to) = period(q, tz)?;
    Ok(Frame { tz, time_zone: settings.time_zone.clone(), group_by, from, to })
}

/// One count of the disposition report.
#[derive(Debug, Serialize, ToSchema)]
pub struct DispositionCountOut {
    /// The day, agent or queue.
    pub group: String,
    /// Disposition code.
    pub disposition: String,
    /// Calls logged with it.
    pub count: u64,
}

/// A code's count against the previous period of the same length.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrendLineOut {
    /// Disposition code.
    pub disposition: String,
    /// Count in the period.
    pub count: u64,
    /// Count in the previous period.
    pub previous_count: u64,
    /// count - previous_count.
    pub change: i64,
}

/// The previous period and each code's change.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrendOut {
    /// Start of the previous period.
    pub previous_from: DateTime<Utc>,
    /// Its end (the report's start).
    pub previous_to: DateTime<Utc>,
    /// Per code.
    pub dispositions: Vec<TrendLineOut>,
}

/// `GET /v1/reports/dispositions` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DispositionReportOut {
    /// Start.
    pub from: DateTime<Utc>,
    /// End (exclusive).
    pub to: DateTime<Utc>,
    /// day, agent or queue.
    pub group_by: String,
    /// Days are counted in this time zone.
    pub time_zone: String,
    /// Counts by group and code.
    pub rows: Vec<DispositionCountOut>,
    /// Counts by code.
    pub totals: BTreeMap<String, u64>,
    /// Labels by code.
    pub labels: BTreeMap<String, String>,
    /// Against the previous period.
    pub trend: TrendOut,
}

/// `GET /v1/reports/dispositions?from=&to=&group_by=day|agent|queue`.
#[utoipa::path(get, path = "/v1/reports/dispositions", tag = "reports",
    description = "Calls logged per disposition in a period, against the previous period of the same length just before it. `from` and `to` are RFC 3339 times or dates in the settings' time zone (`to` as a date includes that day). Defaults: without either, the last seven days up to the end of today; without `to`, seven days from `from` (no later than the end of today); without `from`, the seven days before `to`.",
    params(("from" = Option<String>, Query), ("to" = Option<String>, Query), ("group_by" = Option<String>, Query, description = "day (default), agent or queue")),
    responses((status = 200, body = DispositionReportOut), (status = 422)))]
pub async fn report_dispositions(
    State(st): State<AppState>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<DispositionReportOut>> {
    let Frame { tz, time_zone, group_by, from, to } = frame(&st, &q, &["day", "agent", "queue"]).await?;
    let span = to - from;
    let logged = |from, to| ActivityFilter {
        kinds: vec!["call_log".into()],
        from: Some(from),
        to: Some(to),
        ..Default::default()
    };
    let rows = st.store.activities(&logged(from, to)).await?;
    let prev = st.store.activities(&logged(from - span, from)).await?;
    let mut counts: Counts = BTreeMap::new();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for a in rows.iter().filter(|a| a.action.as_deref() == Some("log")) {
        let Some(code) = a.disposition.clone().filter(|d| !d.is_empty()) else { continue };
        let group = match group_by.as_str() {
            "agent" => a.agent_id.clone().unwrap_or_else(|| "(none)".into()),
            "queue" => a.queue.clone().unwrap_or_else(|| "(none)".into()),
            _ => a.session_at.with_timezone(&tz).format("%Y-%m-%d").to_string(),
        };
        *counts.entry(group).or_default().entry(code.clone()).or_default() += 1;
        *totals.entry(code.clone()).or_default() += 1;
        if let Some(l) = &a.label {
            labels.insert(code, l.clone());
        }
    }
    let mut before: BTreeMap<String, u64> = BTreeMap::new();
    for a in prev.iter().filter(|a| a.action.as_deref() == Some("log")) {
        if let Some(code) = a.disposition.clone().filter(|d| !d.is_empty()) {
            *before.entry(code).or_default() += 1;
        }
    }
    let codes: BTreeSet<&String> = totals.keys().chain(before.keys()).collect();
    let trend = codes
        .into_iter()
        .map(|c| {
            let now = totals.get(c).copied().unwrap_or(0);
            let was = before.get(c).copied().unwrap_or(0);
            TrendLineOut { disposition: c.clone(), count: now, previous_count: was, change: now as i64 - was as i64 }
        })
        .collect();
    let rows = counts
        .into_iter()
        .flat_map(|(group, by)| {
            by.into_iter().map(move |(disposition, count)| DispositionCountOut {
                group: group.clone(),
                disposition,
                count,
            })
        })
        .collect();
    Ok(Json(DispositionReportOut {
        from,
        to,
        group_by,
        time_zone,
        rows,
        totals,
        labels,
        trend: TrendOut { previous_from: from - span, previous_to: from, dispositions: trend },
    }))
}

/// One count of the abandoned report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReasonCountOut {
    /// The reason, day or queue.
    pub group: String,
    /// Missed-session reason.
    pub reason: String,
    /// Sessions.
    pub count: u64,
}

/// `GET /v1/reports/abandoned` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AbandonedReportOut {
    /// Start.
    pub from: DateTime<Utc>,
    /// End (exclusive).
    pub to: DateTime<Utc>,
    /// reason, day or queue.
    pub group_by: String,
    /// Days are counted in this time zone.
    pub time_zone: String,
    /// Counts by group and reason.
    pub rows: Vec<ReasonCountOut>,
    /// Counts by reason.
    pub totals: BTreeMap<String, u64>,
    /// Missed sessions in the period.
    pub total: usize,
}

/// `GET /v1/reports/abandoned?from=&to=&group_by=reason|day|queue`: missed sessions by reason.
#[utoipa::path(get, path = "/v1/reports/abandoned", tag = "reports",
    params(("from" = Option<String>, Query), ("to" = Option<String>, Query), ("group_by" = Option<String>, Query, description = "reason (default), day or queue")),
    responses((status = 200, body = AbandonedReportOut), (status = 422)))]
pub async fn report_abandoned(
    State(st): State<AppState>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<AbandonedReportOut>> {
    let Frame { tz, time_zone, group_by, from, to } = frame(&st, &q, &["reason", "day", "queue"]).await?;
    let found = st
        .pipeline
        .store
        .activities(&ActivityFilter {
            kinds: vec!["missed".into(), "abandoned".into()],
            from: Some(from),
            to: Some(to),
            ..Default::default()
        })
        .await?;
    let mut counts: Counts = BTreeMap::new();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for a in &found {
        let reason = a.missed_reason.clone().unwrap_or_else(|| "unknown".into());
        let group = match group_by.as_str() {
            "day" => a.session_at.with_timezone(&tz).format("%Y-%m-%d").to_string(),
            "queue" => a.queue.clone().unwrap_or_else(|| "(none)".into()),
            _ => reason.clone(),
        };
        *counts.entry(group).or_default().entry(reason.clone()).or_default() += 1;
        *totals.entry(reason).or_default() += 1;
    }
    let rows = counts
        .into_iter()
        .flat_map(|(group, by)| {
            by.into_iter().map(move |(reason, count)| ReasonCountOut { group: group.clone(), reason, count })
        })
        .collect();
    Ok(Json(AbandonedReportOut { from, to, group_by, time_zone, rows, totals, total: found.len() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(from: Option<&str>, to: Option<&str>) -> ReportQuery {
        ReportQuery { from: from.map(Into::into), to: to.map(Into::into), group_by: None }
    }

    #[test]
    fn a_period_without_to_is_the_week_from_from() {
        let (f, t) = period(&q(Some("2025-03-01"), None), chrono_tz::UTC).expect("valid");
        assert_eq!(f.to_rfc3339(), "2025-03-01T00:00:00+00:00");
        assert_eq!(t - f, chrono::Duration::days(7), "the previous period is the week before");
    }

    #[test]
    fn a_period_without_bounds_is_the_last_seven_whole_days() {
        let (f, t) = period(&q(None, None), chrono_tz::UTC).expect("valid");
        assert_eq!(t - f, chrono::Duration::days(7));
        assert_eq!(t, end_of_today(chrono_tz::UTC, Utc::now()));
        assert!(t > Utc::now() && t - Utc::now() <= chrono::Duration::days(1));
    }

    #[test]
    fn a_period_without_from_is_the_week_before_to() {
        let (f, t) = period(&q(None, Some("2025-03-07")), chrono_tz::UTC).expect("valid");
        assert_eq!(
            (f.to_rfc3339(), t.to_rfc3339()),
            ("2025-03-01T00:00:00+00:00".into(), "2025-03-08T00:00:00+00:00".into())
        );
    }
}
