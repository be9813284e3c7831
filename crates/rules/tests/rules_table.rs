//! The rules core alone: every row of the delay × abandoned × channel table and the skip
//! option matrix, with lookups answered by a tiny in-memory CRM.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use casebridge_rules::engine::{Step, apply};
use casebridge_rules::event::{Event, parse_event};
use casebridge_rules::model::{AccountHit, AccountKind, Answer, Answers, CrmProfile, Lookup, ObjRef, RecordInfo};
use casebridge_rules::ops::CrmOp;
use casebridge_rules::session::{AccountOutcome, RecordOutcome, Session};
use casebridge_rules::settings::{Settings, parse_settings};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// A CRM with one known customer (+14155550100, account A1) and the records given.
#[derive(Default)]
struct World {
    records: Vec<RecordInfo>,
    sessions: BTreeMap<String, Session>,
    commands: Vec<CrmOp>,
}

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap().with_timezone(&Utc) + Duration::seconds(secs)
}

impl World {
    fn answer(&self, l: &Lookup) -> Answer {
        match l {
            Lookup::AccountsByPhone(p) if p == "+14155550100" => Answer::Accounts(vec![AccountHit {
                id: "A1".into(),
                kind: AccountKind::Contact,
                name: None,
                updated_at: t(-86400),
            }]),
            Lookup::AccountsByPhone(_) | Lookup::AccountsByEmail(_) | Lookup::AccountsByUserId(_) => {
                Answer::Accounts(vec![])
            }
            Lookup::RecordsOfAccount(ObjRef::Crm(a)) if a == "A1" => Answer::Records(self.records.clone()),
            Lookup::RecordsOfAccount(_) => Answer::Records(vec![]),
            Lookup::RecordOfSession(s) => Answer::Record(self.sessions.get(s).and_then(|s| s.record.clone())),
            Lookup::DialRequestOrigin(_) => Answer::Origin(None),
        }
    }

    fn play(&mut self, settings: &Settings, events: &[Value]) -> Session {
        let mut last = None;
        for v in events {
            let e: Event = parse_event(v).unwrap_or_else(|e| panic!("{e:?}"));
            let mut answers = Answers::new();
            let out = loop {
                match apply(self.sessions.get(&e.session_id), &e, settings, &CrmProfile::builtin(), &answers) {
                    Step::Need(ls) => {
                        for l in ls {
                            let a = self.answer(&l);
                            answers.insert(l, a);
                        }
                    }
                    Step::Done(o) => break o,
                }
            };
            self.commands.extend(out.commands.into_iter().map(|c| c.op));
            self.sessions.insert(e.session_id.clone(), out.session.clone());
            last = Some(out.session);
        }
        last.unwrap()
    }
}

struct Script {
    id: String,
    n: u32,
    at: i64,
}

impl Script {
    fn new(id: &str) -> Script {
        Script { id: id.into(), n: 0, at: 0 }
    }
    fn ev(&mut self, after: i64, ty: &str, data: Value) -> Value {
        self.n += 1;
        self.at += after;
        json!({"id": format!("{}-{}", self.id, self.n), "session_id": self.id, "type": ty,
               "at": t(self.at).to_rfc3339(), "data": data})
    }
    fn created(&mut self, session_type: &str, phone: &str) -> Value {
        let channel = match session_type {
            s if s.starts_with("messaging") => "chat",
            "voicemail" => "voicemail",
            _ => "voice",
        };
        let direction = if session_type == "voice_outbound" { "outbound" } else { "inbound" };
        self.ev(
            0,
            "session.created",
            json!({"channel": channel, "session_type": session_type, "direction": direction,
            "customer": {"phone": phone}, "queue_path": ["Q"]}),
        )
    }
}

fn settings(v: Value) -> Settings {
    let s = parse_settings(v).unwrap();
    s.validate().unwrap();
    s
}

/// A table row: name, settings, steps after creation, expected outcome and missed reason.
type Row = (&'static str, Value, Vec<&'static str>, RecordOutcome, Option<&'static str>);

fn creates(w: &World) -> usize {
    w.commands.iter().filter(|c| matches!(c, CrmOp::CreateRecord { .. })).count()
}

/// Each row: settings, the events after creation, the expected outcome and missed reason.
#[test]
fn voice_rows_of_the_delay_and_abandoned_table() {
    let rows: Vec<Row> = vec![
        ("default: record at assignment", json!({}), vec!["assigned"], RecordOutcome::Created, None),
        ("default: connected without assignment", json!({}), vec!["connected"], RecordOutcome::Created, None),
        (
            "delay: nothing at assignment",
            json!({"records": {"delay_call_until_connected": true}}),
            vec!["assigned"],
            RecordOutcome::Pending,
            None,
        ),
        (
            "delay: record at connection",
            json!({"records": {"delay_call_until_connected": true}}),
            vec!["assigned", "connected"],
            RecordOutcome::Created,
            None,
        ),
        (
            "abandoned in queue, option off",
            json!({}),
            vec!["queued", "abandoned"],
            RecordOutcome::None,
            Some("abandoned_in_queue"),
        ),
        (
            "abandoned in IVR, option on",
            json!({"records": {"abandoned_calls": true}}),
            vec!["abandoned"],
            RecordOutcome::Created,
            Some("abandoned_in_ivr"),
        ),
        (
            "abandoned after assignment: record already made",
            json!({}),
            vec!["queued", "assigned", "abandoned"],
            RecordOutcome::Created,
            Some("abandoned_after_assignment"),
        ),
        (
            "abandoned after assignment, delay on, option on: none",
            json!({"records": {"delay_call_until_connected": true, "abandoned_calls": true}}),
            vec!["queued", "assigned", "abandoned"],
            RecordOutcome::None,
            Some("abandoned_after_assignment"),
        ),
        (
            "abandoned, delay on, option off: none",
            json!({"records": {"delay_call_until_connected": true}}),
            vec!["abandoned"],
            RecordOutcome::None,
            Some("abandoned_in_ivr"),
        ),
        (
            "ended by the platform, option on",
            json!({"records": {"abandoned_calls": true}}),
            vec!["queued", "ended"],
            RecordOutcome::Created,
            Some("no_agent_available"),
        ),
        (
            "ended by the platform, option off",
            json!({}),
            vec!["queued", "ended"],
            RecordOutcome::None,
            Some("no_agent_available"),
        ),
    ];
    for (name, s, steps, want, reason) in rows {
        let st = settings(s);
        let mut w = World::default();
        let mut sc = Script::new("v");
        let mut evs = vec![sc.created("voice_inbound_ivr", "+14155550199")];
        for step in steps {
            evs.push(match step {
                "queued" => sc.ev(5, "session.queued", json!({"queue_path": ["Q"]})),
                "assigned" => sc.ev(5, "session.assigned", json!({"agent": {"id": "ag"}})),
                "connected" => sc.ev(5, "session.connected", json!({})),
                "abandoned" => sc.ev(30, "session.abandoned", json!({})),
                _ => sc.ev(30, "session.ended", json!({})),
            });
        }
        let s = w.play(&st, &evs);
        assert_eq!(s.record_outcome, want, "{name}");
        assert_eq!(s.missed_reason.map(|r| r.as_str()), reason, "{name}");
        assert!(creates(&w) <= 1, "{name}: at most one record");
    }
}

#[test]
fn outbound_and_voicemail_rows() {
    let mut w = World::default();
    let s = w.play(&Settings::default(), &[Script::new("o").created("voice_outbound", "+14155550199")]);
    assert_eq!(s.record_outcome, RecordOutcome::Created);
    let s = w.play(&Settings::default(), &[Script::new("vm").created("voicemail", "+14155550199")]);
    assert_eq!(s.record_outcome, RecordOutcome::Created);
    let s = w.play(
        &settings(json!({"records": {"skip_creation": true}})),
        &[Script::new("vm2").created("voicemail", "+14155550199")],
    );
    assert_eq!(s.record_outcome, RecordOutcome::None, "skip record creation: no new records ever");
}

#[test]
fn chat_rows_of_the_delay_and_abandoned_table() {
    // (name, settings, steps, outcome, missed reason)
    let rows: Vec<Row> = vec![
        ("default: record at connection", json!({}), vec!["assigned", "connected"], RecordOutcome::Created, None),
        (
            "delay 2: one message is not enough",
            json!({"records": {"delay_chat_until_customer_messages": 2}}),
            vec!["connected", "msg"],
            RecordOutcome::Pending,
            None,
        ),
        (
            "delay 2: messages before connection count",
            json!({"records": {"delay_chat_until_customer_messages": 2}}),
            vec!["msg", "msg", "connected"],
            RecordOutcome::Created,
            None,
        ),
        (
            "delay 2: agent messages do not count",
            json!({"records": {"delay_chat_until_customer_messages": 2}}),
            vec!["connected", "msg", "agent_msg"],
            RecordOutcome::Pending,
            None,
        ),
        (
            "delay 2: ends before N: none",
            json!({"records": {"delay_chat_until_customer_messages": 2}}),
            vec!["connected", "msg", "end"],
            RecordOutcome::None,
            None,
        ),
        (
            "abandoned, mode off",
            json!({}),
            vec!["msg", "msg", "msg", "abandon_late"],
            RecordOutcome::None,
            Some("abandoned_in_ivr"),
        ),
        ("short abandoned, mode off", json!({}), vec!["abandon_early"], RecordOutcome::None, Some("short_abandoned")),
        (
            "short abandoned, mode all",
            json!({"records": {"abandoned_chats": {"mode": "all"}}}),
            vec!["abandon_early"],
            RecordOutcome::Created,
            Some("short_abandoned"),
        ),
        (
            "abandoned, mode all",
            json!({"records": {"abandoned_chats": {"mode": "all"}}}),
            vec!["abandon_late"],
            RecordOutcome::Created,
            Some("abandoned_in_ivr"),
        ),
        (
            "mode min 2, one message",
            json!({"records": {"abandoned_chats": {"mode": "min_customer_messages", "min_customer_messages": 2}}}),
            vec!["msg", "abandon_late"],
            RecordOutcome::None,
            Some("abandoned_in_ivr"),
        ),
        (
            "mode min 2, two messages",
            json!({"records": {"abandoned_chats": {"mode": "min_customer_messages", "min_customer_messages": 2}}}),
            vec!["msg", "msg", "abandon_late"],
            RecordOutcome::Created,
            Some("abandoned_in_ivr"),
        ),
        (
            "mode min 2, short but two messages",
            json!({"records": {"abandoned_chats": {"mode": "min_customer_messages", "min_customer_messages": 2}}}),
            vec!["msg", "msg", "abandon_early"],
            RecordOutcome::Created,
            Some("short_abandoned"),
        ),
        (
            "abandoned in queue after queuing",
            json!({"records": {"abandoned_chats": {"mode": "all"}}}),
            vec!["queued", "abandon_late"],
            RecordOutcome::Created,
            Some("abandoned_in_queue"),
        ),
    ];
    for (name, s, steps, want, reason) in rows {
        let st = settings(s);
        let mut w = World::default();
        let mut sc = Script::new("c");
        let mut evs = vec![sc.created("messaging_inbound_web", "+14155550199")];
        for step in steps {
            evs.push(match step {
                "queued" => sc.ev(1, "session.queued", json!({"queue_path": ["Q"]})),
                "assigned" => sc.ev(1, "session.assigned", json!({"agent": {"id": "ag"}})),
                "connected" => sc.ev(1, "session.connected", json!({})),
                "msg" => sc.ev(1, "message.created", json!({"sender": "customer", "text": "hi"})),
                "agent_msg" => sc.ev(1, "message.created", json!({"sender": "agent", "text": "hi"})),
                "abandon_early" => sc.ev(1, "session.abandoned", json!({})),
                "abandon_late" => sc.ev(60, "session.abandoned", json!({})),
                _ => sc.ev(60, "session.ended", json!({})),
            });
        }
        let s = w.play(&st, &evs);
        assert_eq!(s.record_outcome, want, "{name}");
        assert_eq!(s.missed_reason.map(|r| r.as_str()), reason, "{name}");
        assert!(creates(&w) <= 1, "{name}");
    }
}

fn open_record() -> RecordInfo {
    RecordInfo {
        id: ObjRef::Crm("R1".into()),
        leaf_queue: Some("Q".into()),
        channel: None,
        status: "open".into(),
        is_closed: false,
        closed_at: None,
        created_at: t(-3600),
    }
}

/// Known customer (+14155550100, with an open record in Q) and unknown one, under each option.
#[test]
fn skip_option_matrix() {
    struct Row {
        name: &'static str,
        settings: Value,
        phone: &'static str,
        account: AccountOutcome,
        record: RecordOutcome,
    }
    let rows = [
        Row {
            name: "no skip, known, append on",
            settings: json!({"records": {"append_to_open_in_leaf_queue": true}}),
            phone: "+14155550100",
            account: AccountOutcome::Found,
            record: RecordOutcome::Appended,
        },
        Row {
            name: "no skip, unknown",
            settings: json!({}),
            phone: "+14155550199",
            account: AccountOutcome::Created,
            record: RecordOutcome::Created,
        },
        Row {
            name: "skip lookup",
            settings: json!({"accounts": {"skip_lookup": true}, "session_data": {"unrecorded_session_link": "none"}}),
            phone: "+14155550100",
            account: AccountOutcome::None,
            record: RecordOutcome::Created,
        },
        Row {
            name: "skip account creation, known, append on",
            settings: json!({"accounts": {"skip_creation": true}, "records": {"append_to_open_in_leaf_queue": true}}),
            phone: "+14155550100",
            account: AccountOutcome::Found,
            record: RecordOutcome::Appended,
        },
        Row {
            name: "skip account creation, unknown, append on: new record",
            settings: json!({"accounts": {"skip_creation": true}, "records": {"append_to_open_in_leaf_queue": true}}),
            phone: "+14155550199",
            account: AccountOutcome::None,
            record: RecordOutcome::Created,
        },
        Row {
            name: "skip record creation, known, append on: appended",
            settings: json!({"records": {"skip_creation": true, "append_to_open_in_leaf_queue": true}}),
            phone: "+14155550100",
            account: AccountOutcome::Found,
            record: RecordOutcome::Appended,
        },
        Row {
            name: "skip record creation, known, append off: none",
            settings: json!({"records": {"skip_creation": true}}),
            phone: "+14155550100",
            account: AccountOutcome::Found,
            record: RecordOutcome::None,
        },
        Row {
            name: "skip record creation, unknown: none",
            settings: json!({"records": {"skip_creation": true, "append_to_open_in_leaf_queue": true}}),
            phone: "+14155550199",
            account: AccountOutcome::Created,
            record: RecordOutcome::None,
        },
        Row {
            name: "skip lookup and record creation: none",
            settings: json!({"accounts": {"skip_lookup": true}, "records": {"skip_creation": true}, "session_data": {"unrecorded_session_link": "none"}}),
            phone: "+14155550100",
            account: AccountOutcome::None,
            record: RecordOutcome::None,
        },
        Row {
            name: "skip both account options: skip lookup wins",
            settings: json!({"accounts": {"skip_lookup": true, "skip_creation": true}, "session_data": {"unrecorded_session_link": "none"}}),
            phone: "+14155550199",
            account: AccountOutcome::None,
            record: RecordOutcome::Created,
        },
    ];
    for r in rows {
        let st = settings(r.settings);
        let mut w = World { records: vec![open_record()], ..Default::default() };
        let mut sc = Script::new("s");
        let evs = vec![
            sc.created("voice_inbound_ivr", r.phone),
            sc.ev(5, "session.assigned", json!({"agent": {"id": "a"}})),
            sc.ev(60, "session.ended", json!({})),
        ];
        let s = w.play(&st, &evs);
        assert_eq!((s.account_outcome, s.record_outcome), (r.account, r.record), "{}", r.name);
        let data = w.commands.iter().filter(|c| matches!(c, CrmOp::WriteSessionData { .. })).count();
        assert_eq!(data, 1, "{}: one session data write", r.name);
    }
}

#[test]
fn skip_lookup_refuses_append_and_account_links() {
    let s = parse_settings(json!({"accounts": {"skip_lookup": true}, "records": {"append_to_open_in_leaf_queue": true, "append_to_closed_within_days": 3}})).unwrap();
    let errs = s.validate().unwrap_err();
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "records.append_to_open_in_leaf_queue",
            "records.append_to_closed_within_days",
            "session_data.unrecorded_session_link"
        ]
    );
    let ok =
        parse_settings(json!({"accounts": {"skip_lookup": true}, "session_data": {"unrecorded_session_link": "none"}}))
            .unwrap();
    assert!(ok.validate().is_ok());
}

#[test]
fn warning_when_abandoned_calls_cannot_take_effect() {
    let s = parse_settings(json!({"records": {"abandoned_calls": true, "delay_call_until_connected": true}})).unwrap();
    let w = s.validate().unwrap();
    assert_eq!(w[0].field, "records.abandoned_calls");
}

#[test]
fn replay_is_deterministic() {
    let st = settings(json!({"records": {"append_to_open_in_leaf_queue": true, "tag_session_type": true}}));
    let mut sc = Script::new("d");
    let evs = vec![
        sc.created("voice_inbound_ivr", "+14155550100"),
        sc.ev(5, "session.assigned", json!({"agent": {"id": "a"}})),
        sc.ev(60, "session.ended", json!({})),
    ];
    let mut a = World { records: vec![open_record()], ..Default::default() };
    let mut b = World { records: vec![open_record()], ..Default::default() };
    assert_eq!(a.play(&st, &evs), b.play(&st, &evs));
    assert_eq!(a.commands, b.commands);
}

mod shuffled {
    use proptest::prelude::*;

    use super::*;

    fn lifecycle(kind: u8) -> Vec<Value> {
        let mut sc = Script::new("p");
        let created = if kind.is_multiple_of(2) {
            sc.created("voice_inbound_ivr", "+14155550100")
        } else {
            sc.created("messaging_inbound_web", "+14155550100")
        };
        vec![
            created,
            sc.ev(1, "session.queued", json!({"queue_path": ["Q"]})),
            sc.ev(1, "session.assigned", json!({"agent": {"id": "a"}})),
            sc.ev(1, "session.connected", json!({})),
            sc.ev(1, "message.created", json!({"sender": "customer", "text": "x"})),
            sc.ev(1, "session.abandoned", json!({})),
            sc.ev(1, "session.transferred", json!({"agent": {"id": "b"}, "queue_path": ["R"]})),
            sc.ev(1, "csat.submitted", json!({"score": 3})),
            sc.ev(1, "session.ended", json!({})),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Whatever the order and repetitions, a session gets at most one record and one
        /// account, and the same input always gives the same result.
        #[test]
        fn shuffled_and_repeated_events_never_double(
            kind in 0u8..2,
            order in Just((0..9usize).collect::<Vec<_>>()).prop_shuffle(),
            repeats in proptest::collection::vec(0usize..9, 0..6),
            append in any::<bool>(),
            delay in any::<bool>(),
            abandoned_calls in any::<bool>(),
        ) {
            let evs = lifecycle(kind);
            let mut seq: Vec<Value> = order.iter().map(|i| evs[*i].clone()).collect();
            for r in repeats {
                seq.push(evs[r].clone());
            }
            let st = settings(json!({"records": {"append_to_open_in_leaf_queue": append,
                "delay_call_until_connected": delay, "abandoned_calls": abandoned_calls,
                "abandoned_chats": {"mode": "all"}}}));
            let mut w = World { records: vec![open_record()], ..Default::default() };
            let s = w.play(&st, &seq);
            let records = w.commands.iter().filter(|c| matches!(c, CrmOp::CreateRecord { .. } | CrmOp::AppendSession { .. })).count();
            prop_assert!(records <= 1, "{} record writes", records);
            let accounts = w.commands.iter().filter(|c| matches!(c, CrmOp::CreateAccount { .. })).count();
            prop_assert_eq!(accounts, 0, "the known customer is found");
            prop_assert!(s.is_created());
            let mut w2 = World { records: vec![open_record()], ..Default::default() };
            prop_assert_eq!(w2.play(&st, &seq), s);
        }
    }
}
