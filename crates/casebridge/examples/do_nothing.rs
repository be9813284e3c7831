//! The do-nothing handler of `loadgen --baseline` on its own, for load tools other than
//! `loadgen` (see `bench/calibrate.sh`): reads the body of `POST /v1/events` and answers 202,
//! as intake does.
//!
//!     cargo run --release --example do_nothing -- 127.0.0.1:7071

// The binary's own module, so that both measure the very same handler.
#[path = "../src/loadgen/baseline.rs"]
mod baseline;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7071".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("do-nothing handler on http://{}", listener.local_addr()?);
    axum::serve(listener, baseline::router()).await
}
