//! `casebridge simulate`: the real rules replayed event by event, in memory, against a built-in
//! CRM in memory (see `replay`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use casebridge_crm::builtin::memory::MemoryCrm;
use casebridge_crm::builtin::storage::{BuiltinCrmStore, NewAccount, NewRecord, STATUSES};
use casebridge_rules::event::{Event, parse_event};
use casebridge_rules::phone::Phone;
use casebridge_rules::settings::Settings;
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{Value, json};

use self::replay::Replay;
use crate::config;

mod replay;

/// Output formats.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON object per line.
    Json,
}

/// Options of `simulate`.
#[derive(Args)]
pub struct SimulateArgs {
    /// Settings document (JSON or TOML); defaults when absent.
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Built-in CRM content to start from: {"accounts": [...], "records": [...]}.
    #[arg(long)]
    pub crm_fixture: Option<PathBuf>,
    /// A second settings document: print only the sessions whose outcome differs.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// The file holds a platform's own events (one JSON payload per line) instead of
    /// casebridge events; the settings' `ingest.<source>.mapping` applies.
    #[arg(long, value_enum)]
    pub source: Option<NativeSource>,
    /// Events, one JSON object per line (NDJSON).
    pub events: PathBuf,
}

/// Platforms whose own events `simulate --source` reads.
#[derive(Clone, Copy, ValueEnum)]
pub enum NativeSource {
    /// EventBridge contact events, contact records, SNS chat messages (notifications or their Message).
    AmazonConnect,
    /// TaskRouter callbacks (their fields as a JSON object) and Event Streams CloudEvents.
    Twilio,
    /// EventBridge events of the Genesys Cloud integration.
    Genesys,
    /// Generic CTI events; an `at` member (RFC 3339) stands for the receipt time.
    Cti,
}

enum Item {
    /// A casebridge event as JSON text: parsed events take several times the room, and the
    /// input is held whole while the settings documents replay it.
    Event(Box<str>),
    RecordUpdate {
        session: String,
        status: String,
        at: DateTime<Utc>,
    },
}

/// One session's result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outcome {
    session_id: String,
    account_outcome: Value,
    account_id: Option<String>,
    record_outcome: Value,
    record_id: Option<String>,
    title: Option<String>,
    tags: Vec<String>,
    reason: String,
}

impl Outcome {
    fn key(&self) -> (Value, Value, Option<String>, Vec<String>) {
        (self.account_outcome.clone(), self.record_outcome.clone(), self.title.clone(), self.tags.clone())
    }
}

fn bad(line: usize, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("line {line}: {why}")
}

/// Reads a file of a platform's own events into casebridge events, as native ingest makes
/// them (duplicates dropped, steps made in the order of their times).
fn read_native(path: &PathBuf, source: NativeSource, settings: &Settings) -> anyhow::Result<Vec<Item>> {
    use casebridge_rules::native::{Reading, Snapshot, amazon_connect, cti, genesys, twilio};
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let ingest = &settings.ingest;
    let mut snapshots: BTreeMap<String, Snapshot> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut items = Vec::new();
    let start = DateTime::<Utc>::from_timestamp(1_798_761_600, 0).unwrap_or_default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| bad(n, format!("not valid JSON: {e}")))?;
        let read = match source {
            NativeSource::AmazonConnect => {
                let m = &ingest.amazon_connect.mapping;
                let inner =
                    v.get("Message").and_then(Value::as_str).and_then(|m| serde_json::from_str::<Value>(m).ok());
                match inner {
                    Some(msg) => amazon_connect::read_chat_message(&msg),
                    None if amazon_connect::is_chat_message(&v) => amazon_connect::read_chat_message(&v),
                    None if amazon_connect::is_contact_record(&v) => amazon_connect::read_contact_record(&v, m),
                    None => amazon_connect::read_contact_event(&v, m),
                }
            }
            NativeSource::Twilio if v.get("specversion").is_some() => {
                twilio::read_cloud_event(&v, &ingest.twilio.mapping)
            }
            NativeSource::Twilio => twilio::read_task_event(&v, &ingest.twilio.mapping, None),
            NativeSource::Genesys => genesys::read(&v, &ingest.genesys.mapping),
            NativeSource::Cti => {
                let at = v
                    .get("at")
                    .and_then(Value::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or(start + chrono::Duration::seconds(n as i64));
                cti::read(&v, &ingest.cti.mapping, at)
            }
        };
        let reading = read.map_err(|errs| {
            bad(n, errs.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))
        })?;
        let Reading::Session(native) = reading else { continue };
        if !seen.insert(native.id.clone()) {
            continue;
        }
        let snap = snapshots.entry(native.session_id.clone()).or_default();
        for e in snap.absorb(&native.session_id, &native) {
            items.push(Item::Event(serde_json::to_string(&e)?.into()));
        }
    }
    Ok(items)
}

fn read_items(path: &PathBuf) -> anyhow::Result<Vec<Item>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut items = Vec::new();
    // An event id seen before is left out, as intake leaves it out.
    let mut ids = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| bad(n, format!("not valid JSON: {e}")))?;
        if v.get("type").and_then(Value::as_str) == Some("crm.record.updated") {
            let at = v
                .get("at")
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .ok_or_else(|| bad(n, "at: must be an RFC 3339 timestamp"))?;
            let data = v.get("data").ok_or_else(|| bad(n, "data: is required"))?;
            let session = data
                .get("record_of_session")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(n, "data.record_of_session: is required (a session id)"))?;
            let status =
                data.get("status").and_then(Value::as_str).ok_or_else(|| bad(n, "data.status: is required"))?;
            if !STATUSES.contains(&status) {
                return Err(bad(n, format!("data.status: must be one of {}", STATUSES.join(", "))));
            }
            items.push(Item::RecordUpdate {
                session: session.into(),
                status: status.into(),
                at: at.with_timezone(&Utc),
            });
            continue;
        }
        match parse_event(&v) {
            Ok(e) if ids.insert(e.id.clone()) => items.push(Item::Event(serde_json::to_string(&e)?.into())),
            Ok(_) => {}
            Err(errs) => {
                let why = errs.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
                return Err(bad(n, why));
            }
        }
    }
    Ok(items)
}

async fn load_fixture(store: &dyn BuiltinCrmStore, path: &std::path::Path, region: &str) -> anyhow::Result<()> {
    let doc = config::read_document(path)?;
    let time = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    for a in doc.get("accounts").and_then(Value::as_array).cloned().unwrap_or_default() {
        let phone = s(&a, "phone");
        store
            .crm_create_account(NewAccount {
                id: s(&a, "id"),
                kind: s(&a, "kind").unwrap_or_else(|| "contact".into()),
                name: s(&a, "name"),
                phone_key: phone.as_deref().map(|p| Phone::parse(p, region).number),
                phone,
                email: s(&a, "email"),
                user_id: s(&a, "user_id"),
                ext_key: None,
                at: time(&a, "updated_at").or(time(&a, "created_at")).unwrap_or(epoch),
            })
            .await?;
    }
    for r in doc.get("records").and_then(Value::as_array).cloned().unwrap_or_default() {
        store
            .crm_create_record(NewRecord {
                id: s(&r, "id"),
                closed_at: time(&r, "closed_at"),
                account_id: s(&r, "account_id"),
                title: s(&r, "title").unwrap_or_default(),
                status: s(&r, "status"),
                leaf_queue: s(&r, "leaf_queue"),
                channel: s(&r, "channel"),
                at: time(&r, "created_at").unwrap_or(epoch),
                ..Default::default()
            })
            .await?;
    }
    Ok(())
}

/// Runs the settings documents over the same events, each on its own replay and built-in CRM,
/// side by side (one task each, so several cores share the work).
async fn simulate_all(
    settings: Vec<(Settings, Option<&'static str>)>,
    fixture: Option<&PathBuf>,
    items: Vec<Item>,
) -> anyhow::Result<Vec<Vec<Outcome>>> {
    let items = Arc::new(items);
    let multi = indicatif::MultiProgress::new();
    let mut tasks = Vec::new();
    for (s, label) in settings {
        let (items, fixture, multi) = (items.clone(), fixture.cloned(), multi.clone());
        tasks.push(tokio::spawn(async move { simulate_once(&s, fixture.as_ref(), &items, label, &multi).await }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.context("a simulation task failed")??);
    }
    Ok(out)
}

async fn simulate_once(
    settings: &Settings,
    fixture: Option<&PathBuf>,
    items: &[Item],
    label: Option<&str>,
    multi: &indicatif::MultiProgress,
) -> anyhow::Result<Vec<Outcome>> {
    if settings.crm.kind != "builtin"
        && let Some(l) = label
    {
        eprintln!(
            "note: {l}: simulate replays against a built-in CRM in memory, never the {} CRM the settings name",
            settings.crm.kind
        );
    }
    let crm: Arc<dyn BuiltinCrmStore> = Arc::new(MemoryCrm::new());
    if let Some(f) = fixture {
        load_fixture(crm.as_ref(), f, &settings.region).await.context("cannot load the CRM fixture")?;
    }
    let mut replay = Replay::new(settings.clone(), crm.clone())?;
    let bar = label.filter(|_| std::io::stderr().is_terminal() && items.len() >= 1000).map(|label| {
        let b = multi.add(indicatif::ProgressBar::new(items.len() as u64));
        b.set_message(label.to_string());
        b
    });
    let mut order: Vec<String> = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Event(json) => {
                let e: Event = serde_json::from_str(json)?;
                if seen.insert(e.session_id.clone()) {
                    order.push(e.session_id.clone());
                }
                replay.apply(&e).await?;
                // The replay never waits: in the server ("What if") it gives the runtime's
                // threads back now and then so that requests and workers go on.
                if i % 64 == 63 {
                    tokio::task::yield_now().await;
                }
            }
            Item::RecordUpdate { session, status, at } => {
                match replay.session(session)?.and_then(|s| s.record.as_ref().and_then(|r| replay.crm_id(r))) {
                    Some(id) => {
                        if let Err(e) = crm.crm_set_status(&id, status, *at).await {
                            eprintln!("note: crm.record.updated for session {session}: {e}; ignored");
                        }
                    }
                    None => eprintln!("note: crm.record.updated for session {session}, which has no record; ignored"),
                }
            }
        }
        if let Some(b) = &bar
            && i % 256 == 0
        {
            b.set_position(i as u64 + 1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if replay.failed_writes > 0 {
        eprintln!(
            "note: {} CRM write(s) of the replay were refused by the built-in CRM{}",
            replay.failed_writes,
            label.map(|l| format!(" ({l})")).unwrap_or_default()
        );
    }
    let mut out = Vec::new();
    for id in order {
        out.push(outcome(&replay, crm.as_ref(), &id).await?);
    }
    Ok(out)
}

async fn outcome(replay: &Replay, crm: &dyn BuiltinCrmStore, id: &str) -> anyhow::Result<Outcome> {
    let s = replay.session(id)?.context("session vanished")?;
    let record_id = s.record.as_ref().and_then(|r| replay.crm_id(r));
    let rec = match &record_id {
        Some(r) => crm.crm_get_record(r).await?,
        None => None,
    };
    let reason = match &s.record_rule {
        Some(rule) => match replay.decision(id, rule) {
            Some(summary) => format!("{rule}: {summary}"),
            None => rule.clone(),
        },
        None => "record trigger not reached".into(),
    };
    Ok(Outcome {
        session_id: id.to_string(),
        account_outcome: serde_json::to_value(s.account_outcome)?,
        account_id: s.account.as_ref().and_then(|a| replay.crm_id(a)),
        record_outcome: serde_json::to_value(s.record_outcome)?,
        title: rec.as_ref().map(|r| r.title.clone()),
        tags: rec.map(|r| r.tags).unwrap_or_default(),
        record_id,
        reason,
    })
}

/// The sessions whose outcome differs between two runs, in the first run's order.
fn differing<'a>(ra: &'a [Outcome], rb: &'a [Outcome]) -> Vec<(&'a Outcome, &'a Outcome)> {
    let by_b: BTreeMap<&str, &Outcome> = rb.iter().map(|o| (o.session_id.as_str(), o)).collect();
    ra.iter().filter_map(|x| by_b.get(x.session_id.as_str()).filter(|y| x.key() != y.key()).map(|y| (x, *y))).collect()
}

/// Replays stored events (their JSON bodies, in arrival order) under two settings documents,
/// each on its own replay and in-memory built-in CRM (never the real CRM): how many sessions
/// ran, and those whose outcome differs as `{session_id, a, b}`.
pub async fn compare_events(a: &Settings, b: &Settings, bodies: &[String]) -> anyhow::Result<(usize, Vec<Value>)> {
    let items: Vec<Item> = bodies
        .iter()
        .filter(|b| serde_json::from_str::<Event>(b).is_ok())
        .map(|b| Item::Event(b.as_str().into()))
        .collect();
    let mut runs = simulate_all(vec![(a.clone(), None), (b.clone(), None)], None, items).await?.into_iter();
    let (ra, rb) = (runs.next().unwrap_or_default(), runs.next().unwrap_or_default());
    let diffs =
        differing(&ra, &rb).into_iter().map(|(x, y)| json!({"session_id": x.session_id, "a": x, "b": y})).collect();
    Ok((ra.len(), diffs))
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

/// What the comparison table's columns and values mean.
fn print_legend(a: &str, b: &str) {
    println!("Sessions whose outcome differs between {a} and {b}.");
    println!("Each cell is ACCOUNT/RECORD \"record title\":");
    println!("  account: found (an existing account matched), created (casebridge created one),");
    println!("           none (no account), pending (not decided when the events ran out)");
    println!("  record:  created (a new record), appended (added to an open record),");
    println!("           reopened (added to a closed record, which was reopened), none (no record),");
    println!("           pending (the record trigger was not reached)");
    println!();
}

fn print_table(rows: &[Vec<String>]) {
    let mut widths = vec![0; rows.first().map_or(0, Vec::len)];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count().min(60));
        }
    }
    for r in rows {
        let line: Vec<String> = r.iter().enumerate().map(|(i, c)| format!("{:<w$}", c, w = widths[i])).collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// Runs the command.
pub async fn run(a: SimulateArgs) -> anyhow::Result<ExitCode> {
    let load = |p: &Option<PathBuf>| -> anyhow::Result<Settings> {
        match p {
            Some(p) => Ok(config::load_settings(p)?.0),
            None => Ok(Settings::default()),
        }
    };
    let sa = match load(&a.settings) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let sb = match a.compare.as_ref().map(|p| load(&Some(p.clone()))).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let items = match a.source {
        Some(source) => read_native(&a.events, source, &sa),
        None => read_items(&a.events),
    };
    let items = match items {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {}: {e}", a.events.display());
            return Ok(ExitCode::from(2));
        }
    };
    let mut docs = vec![(sa, Some("settings"))];
    if let Some(sb) = sb {
        docs.push((sb, Some("compare")));
    }
    let mut runs = simulate_all(docs, a.crm_fixture.as_ref(), items).await?.into_iter();
    let ra = runs.next().unwrap_or_default();
    let rb = runs.next();
    match rb {
        None => match a.format {
            Format::Json => {
                for o in &ra {
                    println!("{}", serde_json::to_string(o)?);
                }
            }
            Format::Table => {
                let mut rows = vec![vec![
                    "SESSION".into(),
                    "ACCOUNT".into(),
                    "RECORD".into(),
                    "TITLE".into(),
                    "TAGS".into(),
                    "REASON".into(),
                ]];
                for o in &ra {
                    rows.push(vec![
                        o.session_id.clone(),
                        format!("{} {}", text(&o.account_outcome), o.account_id.clone().unwrap_or_default())
                            .trim()
                            .to_string(),
                        format!("{} {}", text(&o.record_outcome), o.record_id.clone().unwrap_or_default())
                            .trim()
                            .to_string(),
                        o.title.clone().unwrap_or_default(),
                        o.tags.join(","),
                        o.reason.clone(),
                    ]);
                }
                print_table(&rows);
            }
        },
        Some(rb) => {
            let diffs = differing(&ra, &rb);
            match a.format {
                Format::Json => {
                    for (x, y) in &diffs {
                        println!("{}", json!({"session_id": x.session_id, "a": x, "b": y}));
                    }
                }
                Format::Table => {
                    let name = |p: Option<&PathBuf>| match p {
                        Some(p) => {
                            p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
                        }
                        None => "defaults".to_string(),
                    };
                    let (na, nb) = (name(a.settings.as_ref()), name(a.compare.as_ref()));
                    print_legend(&na, &nb);
                    let mut rows = vec![vec![
                        "SESSION".into(),
                        format!("WITH {na}"),
                        format!("WITH {nb}"),
                        format!("WHY (WITH {nb})"),
                    ]];
                    for (x, y) in &diffs {
                        let show = |o: &Outcome| {
                            format!(
                                "{}/{} {}",
                                text(&o.account_outcome),
                                text(&o.record_outcome),
                                o.title.clone().map(|t| format!("\"{t}\"")).unwrap_or_default()
                            )
                            .trim()
                            .to_string()
                        };
                        rows.push(vec![x.session_id.clone(), show(x), show(y), y.reason.clone()]);
                    }
                    print_table(&rows);
                    println!("{} of {} session(s) differ", diffs.len(), ra.len());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
