//! The servers loadgen runs itself: a do-nothing handler, and its own `casebridge serve`.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::LoadgenArgs;

/// The do-nothing handler (see `baseline.rs`) on a loopback port of this process.
pub async fn baseline_server() -> anyhow::Result<String> {
    let app = super::baseline::router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// Its own `casebridge serve`, restartable on the same port and data.
pub struct OwnServer {
    child: tokio::process::Child,
    args: Vec<String>,
    /// Its base URL.
    pub base: String,
    _tmp: Option<ScratchDir>,
}

/// A temporary data folder, removed with its server.
struct ScratchDir(std::path::PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl OwnServer {
    /// Starts `casebridge serve` as `a` says (data folder, database URL).
    pub async fn start(a: &LoadgenArgs) -> anyhow::Result<OwnServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut args = vec!["serve".to_string(), "--bind".into(), format!("127.0.0.1:{port}")];
        let mut tmp = None;
        match (&a.database_url, &a.data_dir) {
            (Some(url), _) => args.extend(["--database-url".into(), url.clone()]),
            (None, Some(d)) => args.extend(["--data-dir".into(), d.display().to_string()]),
            (None, None) => {
                let d = std::env::temp_dir().join(format!("casebridge-loadgen-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&d)?;
                args.extend(["--data-dir".into(), d.display().to_string()]);
                tmp = Some(ScratchDir(d));
            }
        }
        let child = Self::spawn(&args)?;
        let me = OwnServer { child, args, base: format!("http://127.0.0.1:{port}"), _tmp: tmp };
        me.ready().await?;
        Ok(me)
    }

    fn spawn(args: &[String]) -> anyhow::Result<tokio::process::Child> {
        let exe = std::env::current_exe().context("cannot find the casebridge executable")?;
        tokio::process::Command::new(exe)
            .args(args)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()))
            .env_remove("CASEBRIDGE_API_TOKEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start casebridge serve")
    }

    /// Its process id (the current one: a restart makes another).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits until `/readyz` answers 200 (at most a minute).
    pub async fn ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if http.get(format!("{}/readyz", self.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("casebridge serve did not become ready within 60 s")
    }

    /// SIGKILL, then start again on the same port and data.
    pub async fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        let _ = self.child.wait().await;
        self.child = Self::spawn(&self.args)?;
        self.ready().await
    }
}
