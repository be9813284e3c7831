//! The do-nothing handler every intake figure is stated against: reads the body of
//! `POST /v1/events` and answers 202 with intake's body, storing nothing. Shared by `loadgen
//! --baseline` and `examples/do_nothing.rs` (for load tools other than loadgen).

/// Its router.
pub fn router() -> axum::Router {
    axum::Router::new().route(
        "/v1/events",
        axum::routing::post(|_body: bytes::Bytes| async {
            (axum::http::StatusCode::ACCEPTED, axum::Json(serde_json::json!({"accepted": 1, "duplicates": 0})))
        }),
    )
}
