//! Pure helpers of the rules worker: what a step's outcome becomes in stored rows, and the
//! keys a step's lookups wait on.

use casebridge_rules::event::{Event, EventKind};
use casebridge_rules::keys::{CustomerKey, Lane};
use casebridge_rules::model::{Lookup, ObjRef, PlatformActivity};
use casebridge_rules::phone::Phone;
use casebridge_rules::session::Session;
use casebridge_rules::settings::Settings;
use casebridge_store::agents::NewActivity;

/// What a lookup asked, without the customer's details.
pub(super) fn lookup_name(l: &Lookup) -> String {
    match l {
        Lookup::AccountsByUserId(_) => "accounts by user id".into(),
        Lookup::AccountsByPhone(_) => "accounts by phone".into(),
        Lookup::AccountsByEmail(_) => "accounts by email".into(),
        Lookup::RecordsOfAccount(a) => format!("records of account {}", a.as_str()),
        Lookup::RecordOfSession(id) => format!("the record of session {id}"),
        Lookup::DialRequestOrigin(id) => format!("the origin of dial request {id}"),
    }
}

pub(super) fn new_activity(a: &PlatformActivity) -> NewActivity {
    let (person_ref, person_is_key) = match &a.person {
        Some(r) => {
            let (k, is_key) = ref_pair(r);
            (Some(k), is_key)
        }
        None => (None, false),
    };
    NewActivity {
        ext_key: casebridge_rules::keys::activity_key(&a.session_id, &a.kind),
        session_id: a.session_id.clone(),
        kind: a.kind.clone(),
        action: None,
        person_ref,
        person_is_key,
        record_id: None,
        related_by: None,
        disposition: None,
        label: None,
        notes: None,
        agent_id: a.agent_id.clone(),
        queue: a.queue.clone(),
        channel: a.channel.map(|c| c.as_str().to_string()),
        missed_reason: a.missed_reason.map(|m| m.as_str().to_string()),
        session_at: a.session_at,
    }
}

pub(super) fn outcome_name<T: serde::Serialize>(o: &T) -> String {
    serde_json::to_value(o).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

pub(super) fn ref_pair(r: &ObjRef) -> (String, bool) {
    match r {
        ObjRef::Key(k) => (k.clone(), true),
        ObjRef::Crm(id) => (id.clone(), false),
    }
}

/// The keys a lookup for this event must wait on: the session's customer keys and lane (or
/// those of the session the event creates).
pub(super) fn base_keys(session: Option<&Session>, event: &Event, settings: &Settings) -> Vec<String> {
    let (keys, lane) = if let Some(s) = session.filter(|s| s.is_created()) {
        (CustomerKey::of_customer(&s.customer, s.phone.as_ref()), s.lane.clone())
    } else if let EventKind::Created(c) = &event.kind {
        let phone =
            c.customer.phone.as_deref().filter(|p| !Phone::is_anonymous(p)).map(|p| Phone::parse(p, &settings.region));
        let lane = Lane::of_session(&event.session_id, &c.customer, phone.as_ref());
        (CustomerKey::of_customer(&c.customer, phone.as_ref()), Some(lane))
    } else {
        (vec![], Some(Lane::session(&event.session_id)))
    };
    keys.iter().map(ToString::to_string).chain(lane.iter().map(ToString::to_string)).collect()
}
