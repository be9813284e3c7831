//! The `casebridge` binary: `serve`, `simulate`, `migrate`, `check-config`.
// Problem details travel only on the refusal path; their size does not matter there.
#![allow(clippy::result_large_err)]

/// mimalloc instead of glibc malloc: allocation and freeing from the runtime's threads was
/// about a tenth of the server's CPU under load.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod agents;
mod api;
mod backlog;
mod cluster;
mod config;
mod console;
mod dial;
mod error;
mod intake;
mod loadgen;
mod native;
mod node;
mod outbox;
mod pipeline;
mod secrets;
mod serve;
mod simulate;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// casebridge: contact-center sessions in, correct CRM records out.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about = None,
    after_help = "Examples:\n  casebridge serve                                  # http://127.0.0.1:8080, data in ./casebridge-data\n  CASEBRIDGE_API_TOKEN=secret casebridge serve --bind 0.0.0.0:8080\n  casebridge simulate --settings a.toml --compare b.toml events.ndjson\n  casebridge check-config casebridge.toml"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service and its CRM workers.
    #[command(after_help = serve::SERVE_AUTH_HELP)]
    Serve(serve::ServeArgs),
    /// Replay a file of events through the rules offline and print what each session gets.
    Simulate(simulate::SimulateArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(serve::DbArgs),
    /// Send realistic contact-center traffic to a server (its own by default) and report
    /// throughput, latency from event accepted to CRM write done and refusals; `--verify`
    /// checks the outcome against the rules.
    Loadgen(loadgen::LoadgenArgs),
    /// Validate a configuration or settings file (TOML or JSON) and print its warnings.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Run a stateful local fake of a CRM vendor's API (to try a connector without an account).
    #[command(
        after_help = "Control routes: GET /__fake/stats, POST /__fake/faults, GET /__fake/objects/{type}.\nExample:\n  casebridge fake-crm salesforce --bind 127.0.0.1:9100"
    )]
    FakeCrm {
        /// The vendor to fake.
        kind: String,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9100")]
        bind: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(a) => serve::run(a).await.map(|_| ExitCode::SUCCESS),
            Command::Migrate(a) => serve::migrate(a).await.map(|_| ExitCode::SUCCESS),
            Command::Simulate(a) => simulate::run(a).await,
            Command::Loadgen(a) => loadgen::run(a).await,
            Command::CheckConfig { file } => Ok(check_config(&file)),
            Command::FakeCrm { kind, bind } => fake_crm(&kind, &bind).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn fake_crm(kind: &str, bind: &str) -> anyhow::Result<ExitCode> {
    let Some(fake) = casebridge_fakes::fake(kind) else {
        eprintln!("error: no fake for {kind:?}; this build fakes: {}", casebridge_fakes::kinds().join(", "));
        return Ok(ExitCode::from(2));
    };
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}; pass another address with --bind"))?;
    let addr = listener.local_addr()?;
    println!("Fake {kind} API on http://{addr} (control: http://{addr}/__fake/stats)");
    casebridge_fakes::serve(fake, listener).await?;
    Ok(ExitCode::SUCCESS)
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match config::load(file) {
        Ok(c) => {
            for w in &c.warnings {
                println!("warning: {}: {}", w.field, w.message);
            }
            println!(
                "{}: valid{}",
                file.display(),
                if c.settings.is_none() { " (no settings; defaults apply)" } else { "" }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
