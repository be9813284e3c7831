//! Cases of [`AgentStore`]: dispositions, agents, dial requests, the activity log, fields.

use std::sync::Arc;

use casebridge_rules::model::EntryKind;
use casebridge_store::agents::{ActivityFilter, DialRequestRow, NewActivity};
use casebridge_store::{OutboxState, StepCommit, Store, StoreError};

use crate::support::{activity, at, command, event, line, step};

pub async fn dispositions_create_update_and_conflict(store: Arc<dyn Store>) {
    assert!(store.dispositions().await.expect("list").is_empty());
    let sale = store.disposition_create("sale", "Sale").await.expect("create");
    assert_eq!((sale.code.as_str(), sale.label.as_str(), sale.active), ("sale", "Sale", true));
    store.disposition_create("callback", "Call back").await.expect("create");
    let again = store.disposition_create("sale", "Other").await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let codes: Vec<String> = store.dispositions().await.expect("list").into_iter().map(|d| d.code).collect();
    assert_eq!(codes, ["callback", "sale"]);

    let changed = store.disposition_update("sale", Some("Sold"), Some(false)).await.expect("update").expect("known");
    assert_eq!((changed.label.as_str(), changed.active), ("Sold", false));
    let kept = store.disposition_update("sale", None, Some(true)).await.expect("update").expect("known");
    assert_eq!((kept.label.as_str(), kept.active), ("Sold", true), "absent values are kept");
    assert_eq!(store.disposition("sale").await.expect("get"), Some(kept));
    assert_eq!(store.disposition_update("nope", Some("x"), None).await.expect("update"), None);
    assert_eq!(store.disposition("nope").await.expect("get"), None);
}

pub async fn agent_identity_and_versioned_save(store: Arc<dyn Store>) {
    let (ann, created) = store.agent_put("a1", " Ann@X.com ", Some("Ann")).await.expect("put");
    assert!(created);
    assert_eq!((ann.email.as_str(), ann.name.as_deref(), ann.version), ("Ann@X.com", Some("Ann"), 0));
    let (again, created) = store.agent_put("a1", "ann@x.com", None).await.expect("put");
    assert!(!created);
    assert_eq!(again.name.as_deref(), Some("Ann"), "an absent name is kept");
    assert_eq!(again.email, "ann@x.com", "the email is replaced");
    let by_email = store.agent_by_email(" ANN@x.com").await.expect("by email").expect("found");
    assert_eq!(by_email.id, "a1");
    let taken = store.agent_put("a2", "ann@x.com", None).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");

    let push = command("agent:a1:1", "agent:a1", "agent:a1", &[]);
    assert!(store.agent_save("a1", 0, r#"{"status":"busy"}"#, std::slice::from_ref(&push)).await.expect("save"));
    let saved = store.agent("a1").await.expect("get").expect("known");
    assert_eq!((saved.state.as_str(), saved.version), (r#"{"status":"busy"}"#, 1));
    assert_eq!(store.command_state("agent:a1:1").await.expect("state").map(|s| s.0), Some(OutboxState::Pending));
    let stale = command("agent:a1:stale", "agent:a1", "agent:a1", &[]);
    assert!(!store.agent_save("a1", 0, r#"{"status":"away"}"#, &[stale]).await.expect("save"), "stale version");
    let kept = store.agent("a1").await.expect("get").expect("known");
    assert_eq!((kept.state.as_str(), kept.version), (r#"{"status":"busy"}"#, 1));
    assert_eq!(store.command_state("agent:a1:stale").await.expect("state"), None, "nothing of a refused save");
    assert!(!store.agent_save("ghost", 0, "{}", &[]).await.expect("save"), "unknown agent");

    store.agent_ensure("a3").await.expect("ensure");
    store.agent_ensure("a3").await.expect("ensure twice");
    store.agent_ensure("a1").await.expect("ensure known");
    let a3 = store.agent("a3").await.expect("get").expect("registered");
    assert_eq!((a3.email.as_str(), a3.version), ("", 0));
    assert_eq!(store.agent("a1").await.expect("get").expect("known").email, "ann@x.com", "left as it was");
    assert_eq!(store.agent("a4").await.expect("get"), None);
}

pub async fn agent_busy_while_on_a_session_not_over(store: Arc<dyn Store>) {
    assert!(!store.agent_busy("a1").await.expect("busy"));
    let on = StepCommit { agent_id: Some("a1".into()), ..step("s1") };
    store.commit_steps(vec![on.clone()]).await.expect("commit");
    assert!(store.agent_busy("a1").await.expect("busy"));
    assert!(!store.agent_busy("a2").await.expect("busy"));
    store.commit_steps(vec![StepCommit { over: true, ..on }]).await.expect("commit");
    assert!(!store.agent_busy("a1").await.expect("busy"));
}

pub async fn dial_requests_with_their_handoff(store: Arc<dyn Store>) {
    let d = DialRequestRow {
        id: "dial_1".into(),
        agent_id: "a1".into(),
        phone: "+15550001".into(),
        origin_record_id: Some("rec_1".into()),
        created_at: at(10),
    };
    let handoff = command("dial:dial_1", "dial", "dial:dial_1", &[]);
    store.dial_create(&d, Some(&handoff)).await.expect("create");
    assert_eq!(store.dial("dial_1").await.expect("get"), Some(d.clone()));
    assert_eq!(store.command_state("dial:dial_1").await.expect("state"), Some((OutboxState::Pending, 0, None)));
    let quiet = DialRequestRow { id: "dial_2".into(), origin_record_id: None, ..d };
    store.dial_create(&quiet, None).await.expect("create");
    assert_eq!(store.dial("dial_2").await.expect("get"), Some(quiet));
    assert_eq!(store.command_state("dial:dial_2").await.expect("state"), None);
    assert_eq!(store.dial("dial_3").await.expect("get"), None);
}

fn session_ids(rows: &[casebridge_store::agents::ActivityRow]) -> Vec<&str> {
    rows.iter().map(|r| r.session_id.as_str()).collect()
}

pub async fn activities_filter_and_wrapup_revisions(store: Arc<dyn Store>) {
    let acts = vec![
        activity("s1", "call_log", Some(("acct_1", false)), 1),
        activity("s2", "missed", Some(("key:p2", true)), 2),
        activity("s3", "abandoned", None, 3),
    ];
    let s = StepCommit { activities: acts, commands: vec![command("create-p2", "l", "s2", &[])], ..step("s1") };
    store.commit_steps(vec![s]).await.expect("commit");
    let by = |f: ActivityFilter| {
        let store = store.clone();
        async move { store.activities(&f).await.expect("activities") }
    };
    let all = by(ActivityFilter::default()).await;
    assert_eq!(session_ids(&all), ["s3", "s2", "s1"], "newest session first");
    let p1 = by(ActivityFilter { person_id: Some("acct_1".into()), ..Default::default() }).await;
    assert_eq!(session_ids(&p1), ["s1"]);
    assert_eq!(p1[0].person_id.as_deref(), Some("acct_1"));
    let s2 = by(ActivityFilter { session_id: Some("s2".into()), ..Default::default() }).await;
    assert_eq!((s2.len(), s2[0].person_id.as_deref()), (1, None), "a person still being created");
    let kinds = vec!["missed".to_string(), "abandoned".to_string()];
    assert_eq!(session_ids(&by(ActivityFilter { kinds, ..Default::default() }).await), ["s3", "s2"]);
    assert_eq!(session_ids(&by(ActivityFilter { from: Some(at(2)), ..Default::default() }).await), ["s3", "s2"]);
    assert_eq!(session_ids(&by(ActivityFilter { to: Some(at(2)), ..Default::default() }).await), ["s1"]);

    let row = crate::support::claim(&*store, chrono::Utc::now() + chrono::Duration::seconds(1), 10).await;
    store
        .complete_command(&row[0], line(4, EntryKind::Crm, "created"), Some(("key:p2", "acct_2")))
        .await
        .expect("done");
    let p2 = by(ActivityFilter { person_id: Some("acct_2".into()), ..Default::default() }).await;
    assert_eq!(session_ids(&p2), ["s2"], "the key resolves to the created person");

    let wrap = NewActivity {
        action: Some("log".into()),
        disposition: Some("sale".into()),
        notes: Some("bought".into()),
        ..activity("s1", "call_log", Some(("acct_1", false)), 1)
    };
    let note = line(5, EntryKind::Decision, "wrapped up");
    let first = store
        .wrapup_commit(&wrap, std::slice::from_ref(&note), &[command("w-s1", "l", "s1", &[])], &event("wu1", "s1"))
        .await
        .expect("wrap-up");
    assert_eq!(first, p1[0].id, "the same activity line");
    let again = NewActivity { notes: Some("changed".into()), ..wrap };
    let second = store.wrapup_commit(&again, &[], &[], &event("wu2", "s1")).await.expect("wrap-up");
    assert_eq!(second, first);
    let s1 = by(ActivityFilter { session_id: Some("s1".into()), ..Default::default() }).await;
    assert_eq!((s1[0].revision, s1[0].notes.as_deref(), s1[0].action.as_deref()), (3, Some("changed"), Some("log")));
    assert_eq!(store.timeline("s1").await.expect("timeline"), [note]);
    assert_eq!(store.command_state("w-s1").await.expect("state").map(|s| s.0), Some(OutboxState::Pending));
    assert_eq!(store.pending_event_count().await.expect("count"), 2, "each wrap-up carries an event");
}

pub async fn enabled_fields_keep_the_first_time(store: Arc<dyn Store>) {
    assert!(store.enabled_fields().await.expect("list").is_empty());
    assert!(store.enable_field("queue", "casebridge_queue", at(1)).await.expect("enable"));
    assert!(!store.enable_field("queue", "other_name", at(2)).await.expect("enable again"));
    assert!(store.enable_field("channel", "casebridge_channel", at(3)).await.expect("enable"));
    let fields = store.enabled_fields().await.expect("list");
    let got: Vec<(&str, &str)> = fields.iter().map(|f| (f.key.as_str(), f.crm_field.as_str())).collect();
    assert_eq!(got, [("channel", "casebridge_channel"), ("queue", "casebridge_queue")]);
    assert_eq!(fields[1].enabled_at, at(1));
}

/// The rules apply a wrap-up's event only once its writes are stored: the writes the event's
/// step gives follow the wrap-up's in their lane.
pub async fn a_wrapup_event_is_applied_after_its_writes(store: Arc<dyn Store>) {
    let wrap = NewActivity { action: Some("log".into()), ..activity("sw", "call_log", None, 1) };
    let writes: Vec<_> = (0..20).map(|i| command(&format!("wrap-{i}"), "lane", "sw", &[])).collect();
    let wrapup = {
        let store = store.clone();
        tokio::spawn(async move { store.wrapup_commit(&wrap, &[], &writes, &event("wu-sw", "sw")).await })
    };
    // As soon as the event can be read as pending, a rules step applies it with a write of its
    // own in the same lane.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let seq = loop {
        let pending = store.pending_events(None, 100).await.expect("pending");
        if let Some(e) = pending.iter().find(|e| e.session_id == "sw") {
            break e.seq;
        }
        assert!(std::time::Instant::now() < deadline, "the wrap-up's event never became pending");
        tokio::task::yield_now().await;
    };
    let applied =
        StepCommit { event_seqs: vec![seq], commands: vec![command("rules-sw", "lane", "sw", &[])], ..step("sw") };
    store.commit_steps(vec![applied]).await.expect("the step commits");
    wrapup.await.expect("task").expect("wrap-up");
    let keys: Vec<String> =
        store.list_commands(OutboxState::Pending, 50).await.expect("list").into_iter().map(|c| c.key).collect();
    assert_eq!(keys.len(), 21, "{keys:?}");
    assert_eq!(keys.last().map(String::as_str), Some("rules-sw"), "the step's write after the wrap-up's: {keys:?}");
}
