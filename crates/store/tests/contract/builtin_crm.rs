//! Cases of the built-in CRM's storage ([`BuiltinCrmStore`]): every database backend through
//! the union, and the in-memory store replays use.

use std::sync::Arc;

use casebridge_crm::builtin::storage::{BuiltinCrmStore, BuiltinStoreError, NewAccount, NewRecord, RecordFilter};
use serde_json::json;

use crate::support::at;

fn person(phone_key: Option<&str>, email: Option<&str>, user_id: Option<&str>, secs: i64) -> NewAccount {
    NewAccount {
        kind: "contact".into(),
        name: Some("Ann".into()),
        phone: phone_key.map(str::to_string),
        phone_key: phone_key.map(str::to_string),
        email: email.map(str::to_string),
        user_id: user_id.map(str::to_string),
        at: at(secs),
        ..Default::default()
    }
}

fn record(ext_key: Option<&str>, session: Option<&str>) -> NewRecord {
    NewRecord {
        title: "Call".into(),
        ext_key: ext_key.map(str::to_string),
        session_id: session.map(str::to_string),
        tags: vec!["phone".into()],
        at: at(1),
        ..Default::default()
    }
}

fn not_found<T: std::fmt::Debug>(r: Result<T, BuiltinStoreError>) -> bool {
    matches!(r, Err(BuiltinStoreError::NotFound(_)))
}

pub async fn accounts_are_idempotent_by_external_key(store: Arc<dyn BuiltinCrmStore>) {
    let keyed = NewAccount { ext_key: Some("key:p1".into()), ..person(Some("+15550001"), None, None, 1) };
    let (first, created) = store.crm_create_account(keyed.clone()).await.expect("create");
    assert!(created);
    assert_eq!(first.external_key.as_deref(), Some("key:p1"));
    assert_eq!((first.kind.as_str(), first.phone.as_deref()), ("contact", Some("+15550001")));
    let renamed = NewAccount { name: Some("Other".into()), ..keyed };
    let (again, created) = store.crm_create_account(renamed).await.expect("create again");
    assert!(!created);
    assert_eq!(again, first, "the first one, unchanged");
    let (a, _) = store.crm_create_account(person(None, None, None, 2)).await.expect("create");
    let (b, _) = store.crm_create_account(person(None, None, None, 2)).await.expect("create");
    assert_ne!(a.id, b.id, "without a key every create is new");
    let given = NewAccount { id: Some("acct_fixture".into()), ..person(None, None, None, 3) };
    assert_eq!(store.crm_create_account(given).await.expect("create").0.id, "acct_fixture");
    assert_eq!(store.crm_get_account(&first.id).await.expect("get"), Some(first));
    assert_eq!(store.crm_get_account("nope").await.expect("get"), None);
}

pub async fn accounts_are_found_by_phone_email_or_user_id(store: Arc<dyn BuiltinCrmStore>) {
    let (ann, _) =
        store.crm_create_account(person(Some("+15550001"), Some("Ann@X.com"), Some("u1"), 1)).await.expect("create");
    let (bob, _) = store.crm_create_account(person(Some("+15550002"), None, None, 2)).await.expect("create");
    let ids = |v: Vec<casebridge_crm::builtin::storage::CrmAccount>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
    let find = |p: Option<&'static str>, e: Option<&'static str>, u: Option<&'static str>| {
        let store = store.clone();
        async move { ids(store.crm_find_accounts(p, e, u).await.expect("find")) }
    };
    assert_eq!(find(Some("+15550001"), None, None).await, [ann.id.as_str()]);
    assert_eq!(find(None, Some(" ann@x.COM "), None).await, [ann.id.as_str()], "email ignores case and spaces");
    assert_eq!(find(None, None, Some("u1")).await, [ann.id.as_str()]);
    assert_eq!(find(Some("+15550002"), Some("ann@x.com"), None).await, [ann.id.as_str(), bob.id.as_str()]);
    assert!(find(Some("+15559999"), None, Some("u9")).await.is_empty());
    assert!(find(None, None, None).await.is_empty());
    let listed = ids(store.crm_list_accounts(10).await.expect("list"));
    assert_eq!(listed, [bob.id.as_str(), ann.id.as_str()], "newest first");
    assert_eq!(ids(store.crm_list_accounts(1).await.expect("list")), [bob.id.as_str()]);

    store.crm_update_account(&bob.id, Some("Bob"), Some("Bob@Y.com"), None, at(5)).await.expect("update");
    assert_eq!(find(None, Some("bob@y.com"), None).await, [bob.id.as_str()]);
    let bob = store.crm_get_account(&bob.id).await.expect("get").expect("known");
    assert_eq!((bob.name.as_deref(), bob.phone.as_deref(), bob.updated_at), (Some("Bob"), Some("+15550002"), at(5)));
}

pub async fn records_are_idempotent_by_key(store: Arc<dyn BuiltinCrmStore>) {
    let (rec, created) = store.crm_create_record(record(Some("key:r1"), Some("s1"))).await.expect("create");
    assert!(created);
    assert_eq!((rec.status.as_str(), rec.is_closed, rec.closed_at), ("new", false, None));
    assert_eq!((rec.session_ids.clone(), rec.tags.clone()), (vec!["s1".to_string()], vec!["phone".to_string()]));
    let (again, created) = store.crm_create_record(record(Some("key:r1"), Some("s2"))).await.expect("again");
    assert!(!created);
    assert_eq!(again, rec);
    let (other, _) = store.crm_create_record(record(None, None)).await.expect("create");
    assert_ne!(other.id, rec.id);
    assert!(other.session_ids.is_empty());
    assert_eq!(store.crm_get_record(&rec.id).await.expect("get"), Some(rec.clone()));
    assert_eq!(store.crm_get_record("nope").await.expect("get"), None);
    let by_session = store
        .crm_list_records(RecordFilter { session_id: Some("s1".into()), ..Default::default() })
        .await
        .expect("list");
    assert_eq!(by_session, [rec]);
    assert_eq!(store.crm_list_records(RecordFilter::default()).await.expect("list").len(), 2);
}

pub async fn status_decides_closedness(store: Arc<dyn BuiltinCrmStore>) {
    let (rec, _) = store.crm_create_record(record(None, None)).await.expect("create");
    store.crm_set_status(&rec.id, "solved", at(10)).await.expect("status");
    let solved = store.crm_get_record(&rec.id).await.expect("get").expect("known");
    assert_eq!((solved.status.as_str(), solved.is_closed, solved.closed_at), ("solved", true, Some(at(10))));
    store.crm_set_status(&rec.id, "closed", at(20)).await.expect("status");
    let closed = store.crm_get_record(&rec.id).await.expect("get").expect("known");
    assert_eq!((closed.is_closed, closed.closed_at), (true, Some(at(10))), "closed since it was solved");
    store.crm_set_status(&rec.id, "open", at(30)).await.expect("status");
    let open = store.crm_get_record(&rec.id).await.expect("get").expect("known");
    assert_eq!((open.status.as_str(), open.is_closed, open.closed_at), ("open", false, None));
    assert!(not_found(store.crm_set_status("nope", "open", at(30)).await));
    let born_closed = NewRecord { status: Some("closed".into()), ..record(None, None) };
    let (c, _) = store.crm_create_record(born_closed).await.expect("create");
    assert_eq!((c.is_closed, c.closed_at), (true, Some(at(1))), "closed when created");
    let listed = store
        .crm_list_records(RecordFilter { status: Some("closed".into()), ..Default::default() })
        .await
        .expect("list");
    assert_eq!(listed, [c]);
}

pub async fn append_session_adds_tags_and_reopens(store: Arc<dyn BuiltinCrmStore>) {
    let (rec, _) = store.crm_create_record(record(None, Some("s1"))).await.expect("create");
    store.crm_set_status(&rec.id, "solved", at(2)).await.expect("status");
    let tags = vec!["phone".to_string(), "vip".to_string()];
    store.crm_append_session(&rec.id, "s2", &tags, Some("open"), at(3)).await.expect("append");
    let r = store.crm_get_record(&rec.id).await.expect("get").expect("known");
    assert_eq!((r.status.as_str(), r.is_closed, r.closed_at), ("open", false, None));
    assert_eq!(r.session_ids, ["s1", "s2"]);
    assert_eq!(r.tags, ["phone", "vip"]);
    store.crm_append_session(&rec.id, "s2", &[], Some("new"), at(4)).await.expect("append again");
    let r = store.crm_get_record(&rec.id).await.expect("get").expect("known");
    assert_eq!(r.session_ids, ["s1", "s2"], "a session is on a record once");
    assert_eq!(r.status, "open", "an open record is not reopened");
    assert!(not_found(store.crm_append_session("nope", "s3", &[], None, at(5)).await));
}

pub async fn notes_are_idempotent_by_key(store: Arc<dyn BuiltinCrmStore>) {
    let (rec, _) = store.crm_create_record(record(None, None)).await.expect("create");
    store.crm_add_note("n1", &rec.id, "hello", at(2)).await.expect("note");
    store.crm_add_note("n1", &rec.id, "hello again", at(3)).await.expect("replayed note");
    store.crm_add_note("n2", &rec.id, "second", at(4)).await.expect("note");
    let (_, notes, _, _) = store.crm_record_details(&rec.id).await.expect("details");
    let bodies: Vec<&str> = notes.iter().map(|n| n.body.as_str()).collect();
    assert_eq!(bodies, ["hello", "second"]);
    assert!(not_found(store.crm_add_note("n3", "nope", "x", at(5)).await));
}

pub async fn custom_field_definitions_are_ensured_once(store: Arc<dyn BuiltinCrmStore>) {
    assert!(store.crm_custom_fields().await.expect("list").is_empty());
    assert!(store.crm_ensure_custom_field("casebridge_queue", "record", "Queue", "text").await.expect("ensure"));
    assert!(!store.crm_ensure_custom_field("casebridge_queue", "record", "Other", "number").await.expect("again"));
    assert!(store.crm_ensure_custom_field("casebridge_agent", "account", "Agent", "text").await.expect("ensure"));
    let fields = store.crm_custom_fields().await.expect("list");
    let want = [("casebridge_agent", "account", "Agent", "text"), ("casebridge_queue", "record", "Queue", "text")];
    let got: Vec<(&str, &str, &str, &str)> =
        fields.iter().map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), d.as_str())).collect();
    assert_eq!(got, want);
}

pub async fn fields_merge_and_activities_withdraw(store: Arc<dyn BuiltinCrmStore>) {
    let (rec, _) = store.crm_create_record(record(None, None)).await.expect("create");
    let first = json!({"queue": "sales", "agent": "a1"});
    let second = json!({"agent": "a2"});
    for f in [&first, &second] {
        store.crm_set_fields(&rec.id, f.as_object().expect("object"), at(2)).await.expect("fields");
    }
    let r = store.crm_get_record(&rec.id).await.expect("get").expect("known");
    assert_eq!(serde_json::Value::Object(r.custom_fields), json!({"queue": "sales", "agent": "a2"}));
    assert!(not_found(store.crm_set_fields("nope", second.as_object().expect("object"), at(2)).await));

    let (acct, _) = store.crm_create_account(person(None, None, None, 1)).await.expect("account");
    let body = json!({"duration": 30});
    let write = |subject: &'static str| {
        let (store, rec, acct, body) = (store.clone(), rec.id.clone(), acct.id.clone(), body.clone());
        async move {
            store
                .crm_upsert_activity("act-1", Some(&rec), Some(&acct), Some("s1"), subject, &body, at(3))
                .await
                .expect("activity")
        }
    };
    write("Call").await;
    write("Call (edited)").await;
    let (acts, _, _, _) = store.crm_record_details(&rec.id).await.expect("details");
    assert_eq!(acts.len(), 1, "keyed: rewritten, not duplicated");
    assert_eq!(acts[0].subject, "Call (edited)");
    assert_eq!(store.crm_account_activities(&acct.id).await.expect("person's").len(), 1);
    assert!(store.crm_withdraw_activity("act-1", at(4)).await.expect("withdraw"));
    assert!(!store.crm_withdraw_activity("act-1", at(5)).await.expect("withdraw again"), "already detached");
    assert!(store.crm_record_details(&rec.id).await.expect("details").0.is_empty());
    assert!(store.crm_account_activities(&acct.id).await.expect("person's").is_empty());
}
