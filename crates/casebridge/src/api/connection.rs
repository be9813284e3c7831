//! The CRM connection: `POST /v1/crm/test` checks the stored connection, or one given in
//! the body (the settings' `crm` member) before it is saved.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::routing::post;
use axum::{Json, Router};
use casebridge_crm::{Check, ConnectorConfig};
use casebridge_rules::settings::{CrmSettings, Settings};
use serde::Serialize;
use utoipa::ToSchema;

use super::input::{body, field, json_body};
use super::state::AppState;
use crate::error::{ApiResult, Problem};

/// The connection test.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/crm/test", post(test_connection))
}

/// `POST /v1/crm/test` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestOut {
    /// Whether every check passed.
    pub ok: bool,
    /// The connector kind tested.
    pub kind: String,
    /// Each check, with what to do about a failed one.
    pub checks: Vec<Check>,
}

/// `POST /v1/crm/test`: checks reachability, credentials, the objects and fields casebridge
/// needs, and which statuses count as closed. An empty body (or `{}`) tests the saved connection; a
/// `crm` member (as in the settings; credentials sent as `"set"` keep the saved ones) tests
/// that one without saving it.
#[utoipa::path(post, path = "/v1/crm/test", tag = "crm",
    request_body(content = Option<CrmSettings>, description = "Optional: a `crm` settings member to test instead of the saved one"),
    responses((status = 200, description = "Every check, passed or not", body = TestOut),
              (status = 422, description = "The given `crm` member is invalid; nothing was tested")))]
pub async fn test_connection(
    State(st): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<TestOut>> {
    let raw = body(raw, st.max_body_bytes)?;
    let given = if raw.iter().all(u8::is_ascii_whitespace) { None } else { Some(json_body(&raw)?) };
    let given = given.filter(|v| !(v.is_null() || v.as_object().is_some_and(|o| o.is_empty())));
    let crm = if let Some(v) = given {
        let given: CrmSettings = serde_json::from_value(v).map_err(|e| {
            Problem::fields(
                "not a crm settings member",
                &[field(
                    "",
                    format!("{e}; send the settings' crm member, e.g. {{\"kind\": \"salesforce\", \"base_url\": …}}"),
                )],
            )
        })?;
        let saved = st.pipeline.settings().await;
        let mut s = Settings { crm: given, ..(*saved).clone() };
        s.keep_secrets_from(&saved);
        let (config, _) = ConnectorConfig::parse(&s.crm).map_err(|e| Problem::fields("invalid crm settings", &e))?;
        st.pipeline.connect(&config)
    } else {
        st.pipeline.crm()
    };
    let checks = crm.check().await;
    let ok = checks.iter().all(|c| c.ok);
    metrics::counter!("casebridge_crm_tests_total", "ok" => ok.to_string()).increment(1);
    Ok(Json(TestOut { ok, kind: crm.kind().to_string(), checks }))
}
