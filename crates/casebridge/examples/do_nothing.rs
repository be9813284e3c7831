//! A do-nothing HTTP handler on its own, for load tools other than `loadgen` (see
//! `bench/calibrate.sh`): reads the body of `POST /v1/events` and answers 202, as intake does.
//!
//!     cargo run --release --example do_nothing -- 127.0.0.1:7071

use serde_json::json;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7071".into());
    let app = axum::Router::new().route(
        "/v1/events",
        axum::routing::post(|_body: bytes::Bytes| async {
            (axum::http::StatusCode::ACCEPTED, axum::Json(json!({"accepted": 1, "duplicates": 0})))
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("do-nothing handler on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
