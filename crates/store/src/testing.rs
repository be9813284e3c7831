//! Fresh PostgreSQL databases for tests (feature `test-server`).
//!
//! The server is `CASEBRIDGE_TEST_DATABASE_URL` when set (any database on it: each test gets
//! its own, created there and dropped after), otherwise a throwaway server started once per
//! test process from the installed binaries (`initdb`, `postgres`, `pg_isready`), in a
//! temporary folder, on a free loopback port. As root it runs as the `postgres` (or `nobody`)
//! user, since PostgreSQL refuses root. It stops, and its folder is removed, when the test
//! process exits: a shell holds the server and waits for the end of a pipe only this process
//! writes to.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::Connection;

/// A database made for one test.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    /// Dropped with the value when the server is not a throwaway one.
    drop_from: Option<(String, String)>,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.drop_from.take() else { return };
        // Dropping needs async I/O and Drop is sync: a thread with its own small runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await;
                    let _ = c.close().await;
                }
            });
        })
        .join();
    }
}

struct Server {
    /// URL of a database to connect to for CREATE DATABASE.
    admin: String,
    /// Whether this process started the server (then nothing needs dropping).
    throwaway: bool,
    /// The shell holding the server; its stdin closes when this process exits.
    _holder: Option<Mutex<Child>>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// Whether tests must not skip (`CASEBRIDGE_REQUIRE_ALL=1`, as in CI).
pub fn require_all() -> bool {
    std::env::var("CASEBRIDGE_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// A new empty database, or why none can be had (then the caller skips).
pub async fn fresh_database() -> Result<TestDatabase, String> {
    let server = SERVER.get_or_init(start_server).as_ref().map_err(Clone::clone)?;
    let name = format!("casebridge_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&server.admin)
        .await
        .map_err(|e| format!("cannot connect to the test PostgreSQL server: {e}"))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .map_err(|e| format!("cannot create a test database (the role needs CREATEDB): {e}"))?;
    let _ = admin.close().await;
    let url = with_database(&server.admin, &name);
    let drop_from = (!server.throwaway).then(|| (server.admin.clone(), name));
    Ok(TestDatabase { url, drop_from })
}

/// A fresh database, or `None` after printing a `SKIPPED:` line; with
/// `CASEBRIDGE_REQUIRE_ALL=1` a missing server fails the test instead.
pub async fn fresh_database_or_skip(test: &str) -> Option<TestDatabase> {
    match fresh_database().await {
        Ok(db) => Some(db),
        Err(why) if require_all() => panic!("{test}: no PostgreSQL server for the test: {why}"),
        Err(why) => {
            println!(
                "SKIPPED: {test}: no PostgreSQL server ({why}); install PostgreSQL's server package or set CASEBRIDGE_TEST_DATABASE_URL"
            );
            None
        }
    }
}

/// The same server URL naming another database (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..].find('/').map(|i| i + after_scheme).unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn start_server() -> Result<Server, String> {
    if let Ok(url) = std::env::var("CASEBRIDGE_TEST_DATABASE_URL")
        && !url.is_empty()
    {
        return Ok(Server { admin: url, throwaway: false, _holder: None });
    }
    let bin = find_bindir().ok_or("no initdb found in /usr/lib/postgresql/*/bin or on PATH")?;
    let dir =
        std::env::temp_dir().join(format!("casebridge-pg-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let user = if is_root() { Some(unprivileged_user()?) } else { None };
    if let Some((_, uid, gid)) = &user {
        run(Command::new("chown").arg(format!("{uid}:{gid}")).arg(&dir), "chown the server folder")?;
    }
    let data = dir.join("data");
    let mut initdb = as_user(&user, &bin.join("initdb"));
    initdb.args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions", "-D"]);
    initdb.arg(&data);
    run(&mut initdb, "initdb")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    // Durability settings off: a test server's data is thrown away anyway.
    let server = format!(
        "{postgres} -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300",
        postgres = shell_quote(&bin.join("postgres")),
        data = shell_quote(&data),
        dir = shell_quote(&dir),
    );
    let run_as = match &user {
        Some((_, uid, gid)) => format!("setpriv --reuid={uid} --regid={gid} --clear-groups "),
        None => String::new(),
    };
    let script = format!(
        "{run_as}{server} >{log} 2>&1 & pid=$!; cat >/dev/null; kill -INT $pid; wait $pid; rm -rf {dir}",
        log = shell_quote(&dir.join("log")),
        dir = shell_quote(&dir),
    );
    let holder = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start sh: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(format!("the test server did not start within 30 s: {log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Server {
        admin: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        throwaway: true,
        _holder: Some(Mutex::new(holder)),
    })
}

/// The newest installed server's binaries.
fn find_bindir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").exists())
        .collect();
    found.sort();
    if let Some((_, p)) = found.pop() {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|p| p.join("initdb").exists() && p.join("postgres").exists())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// (name, uid, gid) of an account PostgreSQL may run as.
fn unprivileged_user() -> Result<(String, String, String), String> {
    for name in ["postgres", "nobody"] {
        let id = |flag: &str| {
            Command::new("id")
                .args([flag, name])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        if let (Some(uid), Some(gid)) = (id("-u"), id("-g")) {
            return Ok((name.to_string(), uid, gid));
        }
    }
    Err("running as root and neither a postgres nor a nobody account exists to run the server".into())
}

fn as_user(user: &Option<(String, String, String)>, program: &Path) -> Command {
    match user {
        Some((_, uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).arg("--clear-groups").arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_database_on_the_same_server() {
        assert_eq!(with_database("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://h/test?sslmode=disable", "x"), "postgres://h/x?sslmode=disable");
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
