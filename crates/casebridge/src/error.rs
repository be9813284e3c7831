//! Problem details (RFC 9457) for every refusal.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use casebridge_rules::event::FieldError;
use serde::Serialize;

/// A refusal's detail (and the fields it names), kept on the response for the log line.
#[derive(Debug, Clone)]
pub struct Refusal(pub String);

/// An HTTP refusal as `application/problem+json`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Problem type URI.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short title.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened and what to do.
    pub detail: String,
    /// Field errors, for validation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<serde_json::Value>,
    /// Extra members.
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem with a status, a slug for its type and a detail.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Problem {
            type_: format!("urn:casebridge:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: vec![],
            extra: serde_json::Map::new(),
            retry_after: None,
        }
    }

    /// 422 with field errors.
    pub fn validation(detail: impl Into<String>, errors: Vec<serde_json::Value>) -> Self {
        let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail);
        p.errors = errors;
        p
    }

    /// 422 from field errors.
    pub fn fields(detail: impl Into<String>, errors: &[FieldError]) -> Self {
        Problem::validation(
            detail,
            errors.iter().map(|e| serde_json::json!({"field": e.field, "message": e.message})).collect(),
        )
    }

    /// 400 for a body that is not what the endpoint reads.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 503 with Retry-After.
    pub fn unavailable(detail: impl Into<String>, retry_after: u64) -> Self {
        let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail);
        p.retry_after = Some(retry_after);
        p
    }

    /// 429 with Retry-After.
    pub fn too_many(detail: impl Into<String>, retry_after: u64) -> Self {
        let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "backlog-full", detail);
        p.retry_after = Some(retry_after);
        p
    }

    /// 500 without leaking internals.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "Request failed.");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "casebridge could not complete the request; see the server log",
        )
    }

    /// Adds a member.
    pub fn with(mut self, k: &str, v: serde_json::Value) -> Self {
        self.extra.insert(k.into(), v);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (status, body).into_response();
        let fields: Vec<&str> = self.errors.iter().filter_map(|e| e["field"].as_str()).collect();
        let detail =
            if fields.is_empty() { self.detail.clone() } else { format!("{} ({})", self.detail, fields.join(", ")) };
        r.extensions_mut().insert(Refusal(detail));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

impl From<casebridge_store::StoreError> for Problem {
    fn from(e: casebridge_store::StoreError) -> Self {
        match e {
            casebridge_store::StoreError::NotFound(m) => Problem::not_found(m),
            casebridge_store::StoreError::Conflict(m) => Problem::conflict(m),
            other => Problem::internal(other),
        }
    }
}

impl From<casebridge_crm::builtin::storage::BuiltinStoreError> for Problem {
    fn from(e: casebridge_crm::builtin::storage::BuiltinStoreError) -> Self {
        match e {
            casebridge_crm::builtin::storage::BuiltinStoreError::NotFound(m) => Problem::not_found(m),
            casebridge_crm::builtin::storage::BuiltinStoreError::Conflict(m) => Problem::conflict(m),
            other => Problem::internal(other),
        }
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, Problem>;
