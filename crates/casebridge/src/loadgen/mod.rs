//! `casebridge loadgen`: realistic contact-center traffic against a casebridge server, with
//! throughput, latency from event accepted to CRM write done, refusals, a do-nothing baseline
//! measured in the same run, SIGKILLs of its own server, and an oracle (`--verify`).

mod baseline;
mod client;
mod servers;
mod traffic;
mod verify;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use self::client::{Client, Posted, latency_buckets, percentiles};
use self::servers::{OwnServer, baseline_server};
use self::traffic::{Session, Traffic};

/// Options of `loadgen`.
#[derive(Args)]
pub struct LoadgenArgs {
    /// Server to load (base URL). Without it, loadgen runs its own `casebridge serve` on a
    /// fresh data directory (SQLite, built-in CRM) and stops it afterwards.
    #[arg(long)]
    pub url: Option<String>,
    /// API token of the server.
    #[arg(long, env = "CASEBRIDGE_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// What to send: `sessions` (calls, chats, voicemails, abandons, callbacks and transfers
    /// of repeat customers, about seven events each, one event per request) or `intake` (one
    /// cheap event per request: the durable intake path alone).
    #[arg(long, value_enum, default_value = "sessions")]
    pub traffic: TrafficKind,
    /// Sessions started per second; without it, as many as the server takes.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds each round sends for (default 10 unless --sessions is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Sessions each round sends.
    #[arg(long)]
    pub sessions: Option<u64>,
    /// Concurrent connections (each sends one session's events in order).
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Distinct customers (default: a quarter of the sessions, at least 10), so that
    /// sessions find their customer's account and append to open records.
    #[arg(long)]
    pub customers: Option<u64>,
    /// Also measure a do-nothing HTTP handler (answers 202) in this process with the same
    /// traffic and connections, interleaved with the rounds, and state rates as a ratio of it.
    #[arg(long)]
    pub baseline: bool,
    /// Rounds; figures are the medians.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// After the rounds, wait until everything is applied and check the outcome against the
    /// rules: every accepted event applied, one account per customer, the records the rules
    /// give, none twice, no dead letter. Sets the record rules it checks (append to the open
    /// record of the leaf queue): use a test server with the built-in CRM.
    #[arg(long)]
    pub verify: bool,
    /// With its own server: SIGKILL it every this many seconds (restarted at once).
    #[arg(long)]
    pub kill_every: Option<f64>,
    /// With its own server: its data directory (default: a fresh temporary one).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// With its own server: a PostgreSQL URL instead of SQLite.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Write the events of `--sessions` sessions to this file (NDJSON, each session's events
    /// together, sessions in order) instead of sending them: input for `simulate`.
    #[arg(long, value_name = "FILE")]
    pub write_events: Option<PathBuf>,
}

/// Traffic kinds.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TrafficKind {
    /// Realistic sessions.
    Sessions,
    /// Single cheap events: the intake path.
    Intake,
}

/// Figures of one round against one server.
#[derive(Default, Clone)]
struct Round {
    events: u64,
    sessions: u64,
    send_s: f64,
    drain_s: f64,
    refused_429: u64,
    refused_503: u64,
    errors: u64,
    latency: Option<(f64, [f64; 3])>,
    cpu: Option<RoundCpu>,
}

/// CPU seconds (user + system) used during a round (Linux).
#[derive(Clone, Copy)]
struct RoundCpu {
    /// By loadgen itself.
    loadgen: f64,
    /// By its own server, when it ran the whole round (no restart).
    server: Option<f64>,
}

impl Round {
    fn events_per_s(&self) -> f64 {
        self.events as f64 / self.send_s.max(1e-9)
    }
    fn sessions_per_s(&self) -> f64 {
        self.sessions as f64 / (self.send_s + self.drain_s).max(1e-9)
    }
}

/// CPU seconds (user + system, all threads) a process has used: `/proc/<pid>/stat` on Linux
/// (loadgen itself when `pid` is `None`), `None` elsewhere.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or_else(|| "/proc/self/stat".to_string(), |p| format!("/proc/{p}/stat"));
    cpu_of_stat(&std::fs::read_to_string(path).ok()?)
}

/// User + system CPU seconds from the line of `/proc/<pid>/stat`.
fn cpu_of_stat(line: &str) -> Option<f64> {
    // The fields after the command name (in parentheses, which may hold spaces and
    // parentheses): utime and stime are the 14th and 15th of the line, the 12th and 13th
    // after the name.
    let fields: Vec<&str> = line.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // In clock ticks of USER_HZ, which Linux fixes at 100 for what it reports to user space.
    Some(ticks / 100.0)
}

/// Shared state of the sending tasks.
struct Run {
    client: Client,
    traffic: Traffic,
    next: AtomicU64,
    count: Option<u64>,
    until: Option<Instant>,
    rate: Option<f64>,
    started: Instant,
    stats: Mutex<(Round, HashMap<String, usize>, Vec<Session>)>,
    keep: bool,
    bar: Option<indicatif::ProgressBar>,
}

/// How long an event is retried (refused or unreachable) before it counts as an error.
const GIVE_UP: Duration = Duration::from_secs(120);

async fn sender(run: Arc<Run>) {
    loop {
        let n = run.next.fetch_add(1, Ordering::Relaxed);
        if run.count.is_some_and(|c| n >= c) || run.until.is_some_and(|u| Instant::now() >= u) {
            return;
        }
        if let Some(rate) = run.rate {
            let due = run.started + Duration::from_secs_f64(n as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let mut s = run.traffic.session(n);
        let (mut accepted, mut r429, mut r503, mut errors) = (0usize, 0, 0, 0);
        'events: for e in &s.events {
            let first = Instant::now();
            loop {
                match run.client.post_event(e).await {
                    Posted::Accepted => {
                        accepted += 1;
                        break;
                    }
                    Posted::Refused { status, retry_after } => {
                        if status == 429 {
                            r429 += 1
                        } else {
                            r503 += 1
                        }
                        tokio::time::sleep(
                            retry_after.unwrap_or(Duration::from_millis(100)).min(Duration::from_secs(5)),
                        )
                        .await;
                    }
                    Posted::Failed(why) => {
                        if first.elapsed() > GIVE_UP {
                            tracing::warn!(event = %e["id"], error = %why, "Event never accepted; the session's other events are not sent.");
                            errors += 1;
                            break 'events;
                        }
                        // Unreachable (restarting) or a transport error: send it again.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        if accepted == s.events.len() {
            run.traffic.finished(&s);
        }
        let mut st = run.stats.lock().unwrap_or_else(|e| e.into_inner());
        st.0.events += accepted as u64;
        st.0.sessions += 1;
        st.0.refused_429 += r429;
        st.0.refused_503 += r503;
        st.0.errors += errors;
        if run.keep {
            st.1.insert(s.id.clone(), accepted);
            s.events = Vec::new();
            st.2.push(s);
        }
        drop(st);
        if let Some(b) = &run.bar {
            if run.count.is_some() {
                b.inc(1);
            } else {
                b.set_position(run.started.elapsed().as_secs());
            }
        }
    }
}

async fn round(
    client: &Client,
    a: &LoadgenArgs,
    tag: &str,
    baseline: bool,
    keep: bool,
) -> anyhow::Result<(Round, HashMap<String, usize>, Vec<Session>)> {
    let intake_only = a.traffic == TrafficKind::Intake;
    let count = a.sessions;
    let duration = a.duration.or(if count.is_none() { Some(10.0) } else { None });
    let customers = customers_of(a, count);
    let label = if baseline { "do-nothing" } else { "casebridge" };
    let bar = (std::io::stderr().is_terminal() && !a.json).then(|| {
        let b = match count {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new(duration.unwrap_or(10.0).ceil() as u64),
        };
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg:12} [{bar:30}] {pos}/{len} {per_sec} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(label);
        b
    });
    let before = if baseline { None } else { client.metrics().await.ok() };
    let started = Instant::now();
    let run = Arc::new(Run {
        client: client.clone(),
        traffic: Traffic::new(tag, customers, intake_only),
        next: AtomicU64::new(0),
        count,
        until: duration.map(|d| started + Duration::from_secs_f64(d)),
        rate: a.rate,
        started,
        stats: Mutex::new(Default::default()),
        keep,
        bar: bar.clone(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..a.connections.max(1) {
        tasks.spawn(sender(run.clone()));
    }
    while tasks.join_next().await.is_some() {}
    let send_s = started.elapsed().as_secs_f64();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let (mut r, accepted, sessions) = std::mem::take(&mut *run.stats.lock().unwrap_or_else(|e| e.into_inner()));
    r.send_s = send_s;
    if !baseline {
        let held = before.as_deref().map_or(0.0, verify::pending_writes);
        r.drain_s = verify::drained(client, Duration::from_secs(900), held).await?.as_secs_f64();
        if let (Some(b), Ok(after)) = (before, client.metrics().await) {
            r.latency = percentiles(&latency_buckets(&b), &latency_buckets(&after));
        }
    }
    Ok((r, accepted, sessions))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => 0.0,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Runs the command.
pub async fn run(a: LoadgenArgs) -> anyhow::Result<ExitCode> {
    if a.kill_every.is_some() && a.url.is_some() {
        eprintln!("error: --kill-every needs loadgen's own server: leave out --url");
        return Ok(ExitCode::from(2));
    }
    if a.rate.is_some_and(|r| r.is_nan() || r <= 0.0) || a.rounds == 0 || a.sessions == Some(0) {
        eprintln!("error: --rate, --rounds and --sessions must be positive");
        return Ok(ExitCode::from(2));
    }
    if let Some(path) = &a.write_events {
        return write_events(&a, path);
    }
    let own = match &a.url {
        Some(_) => None,
        None => Some(Arc::new(tokio::sync::Mutex::new(OwnServer::start(&a).await?))),
    };
    let base = match (&a.url, &own) {
        (Some(u), _) => u.clone(),
        (None, Some(o)) => o.lock().await.base.clone(),
        (None, None) => unreachable!("a server either way"),
    };
    let client = Client::new(&base, a.token.clone(), a.connections)?;
    if a.verify {
        verify::verify_settings(&client).await?;
    }
    let baseline = match a.baseline {
        true => Some(Client::new(&baseline_server().await?, None, a.connections)?),
        false => None,
    };
    let stop_kills = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let killer = match (a.kill_every, &own) {
        (Some(every), Some(server)) => {
            let (server, stop, kills, quiet) = (server.clone(), stop_kills.clone(), kills.clone(), a.json);
            Some(tokio::spawn(async move {
                let mut k = 0u64;
                loop {
                    // Kills at uneven moments: between half and all of the period apart.
                    k += 1;
                    let frac = 0.5 + (traffic::mix(k) % 500) as f64 / 1000.0;
                    tokio::time::sleep(Duration::from_secs_f64(every * frac)).await;
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let t = Instant::now();
                    if let Err(e) = server.lock().await.kill_and_restart().await {
                        eprintln!("error: restarting the server: {e:#}");
                        return;
                    }
                    let n = kills.fetch_add(1, Ordering::Relaxed) + 1;
                    if !quiet {
                        eprintln!("SIGKILL {n}: server back in {} ms", t.elapsed().as_millis());
                    }
                }
            }))
        }
        _ => None,
    };
    let tag = format!("{:x}", chrono::Utc::now().timestamp_millis());
    let (mut rounds, mut bases) = (Vec::new(), Vec::new());
    let (mut accepted, mut sessions) = (HashMap::new(), Vec::new());
    for i in 0..a.rounds {
        if let Some(b) = &baseline {
            let (r, _, _) = round(b, &a, &format!("{tag}b{i}"), true, false).await?;
            if !a.json {
                eprintln!("round {}: do-nothing handler {:.0} events/s", i + 1, r.events_per_s());
            }
            bases.push(r);
        }
        let server_pid = match &own {
            Some(o) => o.lock().await.pid(),
            None => None,
        };
        let cpu_before = (cpu_seconds(None), server_pid.and_then(|p| cpu_seconds(Some(p))));
        let kills_before = kills.load(Ordering::Relaxed);
        let (mut r, acc, ss) = round(&client, &a, &format!("{tag}r{i}"), false, a.verify).await?;
        let restarted = kills.load(Ordering::Relaxed) != kills_before;
        let server_cpu = match (cpu_before.1, server_pid.and_then(|p| cpu_seconds(Some(p)))) {
            (Some(b), Some(e)) if !restarted => Some(e - b),
            _ => None,
        };
        r.cpu = cpu_before.0.zip(cpu_seconds(None)).map(|(b, e)| RoundCpu { loadgen: e - b, server: server_cpu });
        if !a.json {
            eprintln!(
                "round {}: casebridge {:.0} events/s, {:.0} sessions/s end to end, 429s {}, 503s {}, errors {}",
                i + 1,
                r.events_per_s(),
                r.sessions_per_s(),
                r.refused_429,
                r.refused_503,
                r.errors
            );
        }
        rounds.push(r);
        accepted.extend(acc);
        sessions.extend(ss);
    }
    stop_kills.store(true, Ordering::Relaxed);
    if let Some(k) = killer {
        k.abort();
    }
    let problems = if a.verify {
        // A kill may have been under way: the server must answer again before the check.
        if let Some(o) = &own {
            o.lock().await.ready().await?;
        }
        verify::drained(&client, Duration::from_secs(900), 0.0).await?;
        Some(verify::check(&client, &sessions, &accepted).await)
    } else {
        None
    };
    let kills = kills.load(Ordering::Relaxed);
    let report = report(&a, &rounds, &bases, kills, problems.as_deref());
    if a.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(match problems {
        Some(p) if !p.is_empty() => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

/// `--write-events`: the traffic as a file, nothing sent.
fn write_events(a: &LoadgenArgs, path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let Some(count) = a.sessions else {
        eprintln!("error: --write-events needs --sessions (how many sessions to write)");
        return Ok(ExitCode::from(2));
    };
    if a.url.is_some() || a.verify || a.baseline || a.kill_every.is_some() {
        eprintln!("error: --write-events sends nothing: leave out --url, --verify, --baseline and --kill-every");
        return Ok(ExitCode::from(2));
    }
    use std::io::Write as _;
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let traffic = Traffic::new("w", customers_of(a, Some(count)), a.traffic == TrafficKind::Intake);
    let mut events = 0u64;
    for n in 0..count {
        let s = traffic.session(n);
        for e in &s.events {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        events += s.events.len() as u64;
        traffic.finished(&s);
    }
    out.flush().with_context(|| format!("cannot write {}", path.display()))?;
    if !a.json {
        eprintln!("wrote {count} sessions ({events} events) to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Distinct customers: as given, or a quarter of the sessions (at least 10).
fn customers_of(a: &LoadgenArgs, count: Option<u64>) -> u64 {
    a.customers.unwrap_or_else(|| (count.unwrap_or(20_000) / 4).max(10))
}

fn report(a: &LoadgenArgs, rounds: &[Round], bases: &[Round], kills: u64, problems: Option<&[String]>) -> Value {
    let med = |f: &dyn Fn(&Round) -> f64, rs: &[Round]| median(rs.iter().map(f).collect());
    let events = med(&|r| r.events_per_s(), rounds);
    let base = (!bases.is_empty()).then(|| med(&|r| r.events_per_s(), bases));
    // CPU milliseconds a session, median of the rounds that measured it.
    let cpu = |which: fn(&RoundCpu) -> Option<f64>, rs: &[Round]| {
        let v: Vec<f64> = rs
            .iter()
            .filter(|r| r.sessions > 0)
            .filter_map(|r| r.cpu.as_ref().and_then(which).map(|s| s * 1000.0 / r.sessions as f64))
            .collect();
        (!v.is_empty()).then(|| (median(v) * 1000.0).round() / 1000.0)
    };
    // The server's CPU over the round's time: how many cores it kept busy.
    let cores = |rs: &[Round]| {
        let v: Vec<f64> = rs
            .iter()
            .filter_map(|r| r.cpu.and_then(|c| c.server).map(|s| s / (r.send_s + r.drain_s).max(1e-9)))
            .collect();
        (!v.is_empty()).then(|| (median(v) * 100.0).round() / 100.0)
    };
    let lat = |i: usize| {
        let v: Vec<f64> = rounds.iter().filter_map(|r| r.latency.map(|l| l.1[i])).collect();
        (!v.is_empty() && kills == 0).then(|| median(v))
    };
    json!({
        "traffic": match a.traffic { TrafficKind::Sessions => "sessions", TrafficKind::Intake => "intake" },
        "connections": a.connections,
        "rate": a.rate,
        "rounds": rounds.len(),
        "sessions": rounds.iter().map(|r| r.sessions).sum::<u64>(),
        "events": rounds.iter().map(|r| r.events).sum::<u64>(),
        "events_per_s": events.round(),
        "baseline_events_per_s": base.map(f64::round),
        "ratio_to_baseline": base.map(|b| (events / b * 1000.0).round() / 1000.0),
        "sessions_per_s_end_to_end": med(&|r| r.sessions_per_s(), rounds).round(),
        "drain_s": (med(&|r| r.drain_s, rounds) * 1000.0).round() / 1000.0,
        "accepted_to_crm_write_ms": {"p50": lat(0), "p90": lat(1), "p99": lat(2),
            "writes": rounds.iter().filter_map(|r| r.latency.map(|l| l.0)).sum::<f64>()},
        "refused_429": rounds.iter().map(|r| r.refused_429).sum::<u64>(),
        "refused_503": rounds.iter().map(|r| r.refused_503).sum::<u64>(),
        "errors": rounds.iter().map(|r| r.errors).sum::<u64>(),
        "cpu_ms_per_session": {
            "server": cpu(|c| c.server, rounds),
            "loadgen": cpu(|c| Some(c.loadgen), rounds),
        },
        "server_cores_busy": cores(rounds),
        "kills": kills,
        "verify": problems.map(|p| json!({"clean": p.is_empty(), "problems": p.iter().take(50).collect::<Vec<_>>(),
            "problem_count": p.len()})),
    })
}

fn print_report(r: &Value) {
    let f = |k: &str| r.get(k).cloned().unwrap_or(Value::Null);
    println!(
        "{} rounds, {} sessions, {} events accepted, {} connections{}",
        f("rounds"),
        f("sessions"),
        f("events"),
        f("connections"),
        r["rate"].as_f64().map(|x| format!(", {x} sessions/s offered")).unwrap_or_default()
    );
    println!("intake: {} events/s (median)", f("events_per_s"));
    if let Some(b) = r["baseline_events_per_s"].as_f64() {
        println!("do-nothing handler, same run: {b} events/s; ratio {}", f("ratio_to_baseline"));
    }
    println!(
        "end to end: {} sessions/s (until every event applied and every CRM write done)",
        f("sessions_per_s_end_to_end")
    );
    let l = &r["accepted_to_crm_write_ms"];
    match (l["p50"].as_f64(), l["p90"].as_f64(), l["p99"].as_f64()) {
        (Some(a), Some(b), Some(c)) => println!(
            "event accepted → CRM write done: p50 ≤ {a} ms, p90 ≤ {b} ms, p99 ≤ {c} ms ({} writes; bucket bounds)",
            l["writes"]
        ),
        _ => println!("event accepted → CRM write done: not measured (no writes, or the server restarted)"),
    }
    let c = &r["cpu_ms_per_session"];
    match (c["server"].as_f64(), c["loadgen"].as_f64()) {
        (Some(sv), Some(lg)) => println!(
            "CPU a session (user + system): server {sv} ms ({} cores busy), loadgen {lg} ms",
            r["server_cores_busy"]
        ),
        (None, Some(lg)) => println!(
            "CPU a session (user + system): loadgen {lg} ms (the server's: only for loadgen's own server, without kills)"
        ),
        _ => {}
    }
    println!(
        "refused: {} × 429, {} × 503; errors {}; kills {}",
        f("refused_429"),
        f("refused_503"),
        f("errors"),
        f("kills")
    );
    if let Some(v) = r.get("verify").filter(|v| !v.is_null()) {
        if v["clean"].as_bool() == Some(true) {
            println!("verify: clean");
        } else {
            println!("verify: {} problems", v["problem_count"]);
            for p in v["problems"].as_array().into_iter().flatten() {
                println!("  {}", p.as_str().unwrap_or_default());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cpu_of_stat;

    #[test]
    fn cpu_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (tokio rt (x)) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_of_stat(line), Some(3.25));
        assert_eq!(cpu_of_stat("4242 (short) S 1"), None);
        assert_eq!(cpu_of_stat("no parenthesis"), None);
    }
}
