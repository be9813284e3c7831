//! Several nodes on one PostgreSQL database (quality.md "Several nodes"): three `serve`
//! processes, sessions of one customer posted to different nodes at once, one node SIGKILLed
//! and restarted, the CRM failing meanwhile. Then: every event applied, one CRM person per
//! customer, one record per customer (the others appended to it), no write twice, nothing
//! dead-lettered; the nodes' view and the takeovers visible in `GET /v1/nodes` and
//! `/metrics`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fakes::FakeCrm;
use crate::harness::{Server, Ses, settings};

/// Fast retries, a short CRM timeout and a short lease, so a takeover plays out in seconds.
const ENV: &[(&str, &str)] =
    &[("CASEBRIDGE_RETRY_BASE_MS", "100"), ("CASEBRIDGE_CRM_TIMEOUT_MS", "1500"), ("CASEBRIDGE_LEASE_MS", "3000")];

const CUSTOMERS: usize = 10;

fn recent(minutes_ago: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(minutes_ago)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn phone(c: usize) -> String {
    format!("+1415555{:04}", 3000 + c)
}

/// An ordinary inbound call of customer `c` in wave `w`.
fn session(c: usize, w: usize) -> (String, Vec<Value>) {
    let id = format!("n-{c}-{w}");
    let mut s = Ses::new(&id, &recent(60 - 10 * w as i64));
    let events = vec![
        s.created("voice_inbound_ivr", json!({"phone": phone(c)}), &["Support"]),
        s.assigned("ag-1"),
        s.connected(),
        s.ended(),
        s.ev(30, "csat.submitted", json!({"score": 4})),
    ];
    (id, events)
}

/// Posts a wave: customer `c`'s session goes to node `(c + shift) % n` of `nodes`, all at
/// once; each answer is a 202 (stored durably by then).
async fn wave(nodes: &[&Server], w: usize, shift: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut posts = tokio::task::JoinSet::new();
    for c in 0..CUSTOMERS {
        let (id, events) = session(c, w);
        ids.push(id);
        let node = nodes[(c + shift) % nodes.len()];
        let req = node.http.post(format!("{}/v1/events", node.base)).json(&events);
        posts.spawn(async move { req.send().await.map(|r| r.status().as_u16()) });
    }
    while let Some(r) = posts.join_next().await {
        assert_eq!(r.unwrap().unwrap(), 202);
    }
    ids
}

fn obj_id(v: &Value) -> String {
    v["Id"].as_str().or(v["id"].as_str()).unwrap_or_default().to_string()
}

/// Sum of a counter across the nodes' `/metrics`, for the lines that contain `label`.
async fn metric(nodes: &[&Server], name: &str, label: &str) -> f64 {
    let mut sum = 0.0;
    for n in nodes {
        let text = n.http.get(format!("{}/metrics", n.base)).send().await.unwrap().text().await.unwrap();
        sum += text
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    sum
}

#[tokio::test]
async fn three_nodes_one_killed_nothing_lost_nothing_doubled() {
    let Some(db) = casebridge_store::testing::fresh_database_or_skip("cluster::three_nodes").await else { return };
    let fake = FakeCrm::start("kustomer").await;
    let a = Server::start_on(&db.url, ENV).await;
    let mut b = Server::start_on(&db.url, ENV).await;
    let c = Server::start_on(&db.url, ENV).await;

    // Saved on one node, followed by the others.
    a.put_settings(settings(json!({
        "crm": fake.crm_settings(),
        "records": {"append_to_open_in_leaf_queue": true},
    })))
    .await;
    for n in [&b, &c] {
        n.poll("/v1/settings", |v| {
            v["crm"]["kind"] == "kustomer" && v["records"]["append_to_open_in_leaf_queue"] == true
        })
        .await;
    }
    // The rules shards are split among the three, none twice.
    let view = a
        .poll("/v1/nodes", |v| {
            v["live"] == 3
                && v["nodes"].as_array().is_some_and(|ns| {
                    ns.iter().filter_map(|n| n["rules_shards"].as_array()).map(Vec::len).sum::<usize>() == 16
                })
        })
        .await;
    let mut shards = HashSet::new();
    for n in view["nodes"].as_array().unwrap() {
        for s in n["rules_shards"].as_array().unwrap() {
            assert!(shards.insert(s.as_i64().unwrap()), "shard {s} held twice: {view}");
        }
    }
    assert_eq!(view["database"], "postgres");

    // The CRM fails a while; the first waves race three sessions of each customer on three
    // nodes; one node is killed right after.
    fake.fault(json!({"status": 503, "count": 6})).await;
    let mut ids = Vec::new();
    let all = [&a, &b, &c];
    let (w0, w1, w2) = tokio::join!(wave(&all, 0, 0), wave(&all, 1, 1), wave(&all, 2, 2));
    ids.extend(w0.into_iter().chain(w1).chain(w2));
    let killed = b.get("/v1/nodes").await["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["this_node"] == true)
        .map(|n| n["id"].as_str().unwrap().to_string())
        .unwrap();
    b.kill();
    ids.extend(wave(&[&a, &c], 3, 0).await);
    b.restart_with(ENV).await;
    ids.extend(wave(&[&a, &b, &c], 4, 1).await);

    // Everything settles, whichever node is asked.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut records: HashMap<String, String> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let node = [&a, &b, &c][i % 3];
        loop {
            let (st, v) = node.call(reqwest::Method::GET, &format!("/v1/sessions/{id}"), None).await;
            if st == 200 && v["state"] == "ended" && v["record_id"].is_string() && v["record_outcome"] != "pending" {
                records.insert(id.clone(), v["record_id"].as_str().unwrap().to_string());
                break;
            }
            assert!(Instant::now() < deadline, "session {id} never settled: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.get("/v1/outbox?state=pending").await["writes"].as_array().is_some_and(|w| !w.is_empty()) {
        assert!(Instant::now() < deadline, "writes never delivered: {}", a.get("/v1/outbox?state=pending").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = a.get("/v1/outbox?state=dead").await;
    assert!(dead["writes"].as_array().is_some_and(Vec::is_empty), "dead letters: {dead}");

    // The oracle: one person and one record per customer; every session of a customer on
    // that record; nothing twice in the CRM.
    let people = fake.objects(fake.account_type()).await;
    assert_eq!(people.len(), CUSTOMERS, "one person per customer");
    let convs = fake.objects(fake.record_type()).await;
    let by: Vec<&Value> = convs.iter().map(|c| &c["externalId"]).collect();
    assert_eq!(convs.len(), CUSTOMERS, "one record per customer, the other sessions appended; created: {by:?}");
    let conv_ids: HashSet<String> = convs.iter().map(obj_id).collect();
    for c in 0..CUSTOMERS {
        let of_customer: HashSet<&String> = (0..5).map(|w| &records[&format!("n-{c}-{w}")]).collect();
        assert_eq!(of_customer.len(), 1, "customer {c}'s sessions on one record: {of_customer:?}");
        assert!(of_customer.iter().all(|r| conv_ids.contains(*r)), "the record exists in the CRM");
    }
    let mut created = 0;
    for id in &ids {
        if a.session(id).await["record_outcome"] == "created" {
            created += 1;
        }
    }
    assert_eq!(created, CUSTOMERS, "one created per customer, the rest appended");

    // The nodes' view: the killed node is lost, its shards were taken over.
    let view = a.poll("/v1/nodes", |v| v["live"] == 3).await;
    let lost = view["nodes"].as_array().unwrap().iter().find(|n| n["id"] == killed.as_str()).cloned().unwrap();
    assert_eq!(lost["state"], "lost", "{view}");
    assert!(lost["rules_shards"].as_array().is_some_and(Vec::is_empty), "{view}");
    let takeovers = metric(&[&a, &b, &c], "casebridge_lease_takeovers_total", "rules_shard").await;
    assert!(takeovers >= 1.0, "the killed node's shards were taken over");
    // The gauge is refreshed with the node table, a moment after /v1/nodes shows it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&[&a], "casebridge_nodes_live", "").await != 3.0 {
        assert!(Instant::now() < deadline, "casebridge_nodes_live never showed the three live nodes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `rate_limit_per_minute` holds for all nodes together: three nodes each with a call to
/// handle send no more than the limit to the CRM in the first minute.
#[tokio::test]
async fn the_crm_rate_limit_is_shared_by_the_nodes() {
    let Some(db) = casebridge_store::testing::fresh_database_or_skip("cluster::rate_limit").await else { return };
    let fake = FakeCrm::start("kustomer").await;
    let nodes = [
        Server::start_on(&db.url, ENV).await,
        Server::start_on(&db.url, ENV).await,
        Server::start_on(&db.url, ENV).await,
    ];
    let mut crm = fake.crm_settings();
    crm["rate_limit_per_minute"] = json!(3);
    nodes[0].put_settings(settings(json!({"crm": crm}))).await;
    for n in &nodes[1..] {
        n.poll("/v1/settings", |v| v["crm"]["rate_limit_per_minute"] == 3).await;
    }
    let all: Vec<&Server> = nodes.iter().collect();
    let mut posts = Vec::new();
    for (i, n) in all.iter().enumerate() {
        let (id, events) = session(100 + i, 0);
        posts.push(id);
        let (st, v) = n.post("/v1/events", Value::Array(events)).await;
        assert_eq!(st, 202, "{v}");
    }
    // Every node has work for the CRM (the sessions' shards are spread); some of it waits.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&all, "casebridge_crm_paced_total", "").await < 1.0 {
        assert!(Instant::now() < deadline, "no request ever waited for the shared limit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Watched for a while: nodes that did not share the limit would each send their own 3.
    let watch = Instant::now() + Duration::from_millis(1500);
    loop {
        let stats = fake.stats().await;
        let sent = stats["requests"].as_u64().unwrap_or(0) + stats["in_flight"].as_u64().unwrap_or(0);
        assert!(
            sent <= 3,
            "three nodes sent {sent} requests under a shared limit of 3 a minute: {}",
            stats["by_route"]
        );
        if Instant::now() >= watch {
            assert_eq!(sent, 3, "the limit's 3 requests went out");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
