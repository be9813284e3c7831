//! Replay for `simulate`: the rules core driven event by event with its state in memory and
//! every CRM write sent to the built-in CRM at once, so a lookup always sees the writes of
//! the events before it (what the pipeline's wait for pending writes gives, without the
//! outbox, the durable steps and the waiting).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex};

use anyhow::Context;

use casebridge_crm::builtin::BuiltinConnector;
use casebridge_crm::builtin::storage::BuiltinCrmStore;
use casebridge_crm::{Connector, CrmLookup};
use casebridge_rules::engine::{self, Step};
use casebridge_rules::event::Event;
use casebridge_rules::model::{Answer, Answers, CrmProfile, EntryKind, Lookup, ObjRef};
use casebridge_rules::session::Session;
use casebridge_rules::settings::Settings;

/// Sessions over that stay in memory before going to the scratch file.
const RECENT: usize = 2048;

/// The scratch file of sessions that are over, and its length.
struct Spill {
    file: std::io::BufWriter<std::fs::File>,
    len: u64,
}

/// One replay's state: sessions, casebridge's keys → CRM ids, and the decisions taken.
pub struct Replay {
    settings: Settings,
    profile: CrmProfile,
    crm: BuiltinConnector,
    /// Sessions not over, and those over lately.
    live: HashMap<String, Session>,
    /// Sessions that ended lately, oldest first: recordings, surveys and wrap-ups come in
    /// shortly after the end, so a session leaves memory only after [`RECENT`] others ended.
    recent: VecDeque<String>,
    /// Sessions over for longer, as JSON in an unnamed scratch file (where, how long): memory
    /// follows the sessions in flight, not the sessions replayed.
    over: HashMap<String, (u64, usize)>,
    spill: Mutex<Spill>,
    refs: HashMap<String, String>,
    /// The latest decision of each rule, per session: (rule, summary).
    decisions: HashMap<String, Vec<(String, String)>>,
    /// CRM writes the built-in CRM refused (the pipeline would retry, then park them).
    pub failed_writes: usize,
}

impl Replay {
    /// A replay under `settings` against the built-in CRM kept in `crm`.
    pub fn new(settings: Settings, crm: Arc<dyn BuiltinCrmStore>) -> anyhow::Result<Self> {
        Ok(Replay {
            settings,
            profile: CrmProfile::builtin(),
            crm: BuiltinConnector::new(crm),
            live: HashMap::new(),
            recent: VecDeque::new(),
            over: HashMap::new(),
            spill: Mutex::new(Spill { file: std::io::BufWriter::new(tempfile::tempfile()?), len: 0 }),
            refs: HashMap::new(),
            decisions: HashMap::new(),
            failed_writes: 0,
        })
    }

    /// Applies one event and sends its CRM writes.
    pub async fn apply(&mut self, event: &Event) -> anyhow::Result<()> {
        if let Some(at) = self.over.remove(&event.session_id) {
            let s = self.unspill(at)?;
            self.live.insert(event.session_id.clone(), s);
            self.recent.push_back(event.session_id.clone());
        }
        let mut answers = Answers::new();
        let out = loop {
            match engine::apply(self.live.get(&event.session_id), event, &self.settings, &self.profile, &answers) {
                Step::Need(lookups) => {
                    for l in lookups {
                        let a = self.answer(&l).await?;
                        answers.insert(l, a);
                    }
                }
                Step::Done(out) => break out,
            }
        };
        for c in out.commands {
            let mut op = c.op;
            if !self.resolve_all(op.refs_mut()) {
                // A create this write needs was refused.
                self.failed_writes += 1;
                continue;
            }
            match self.crm.execute(&c.key, &op).await {
                Ok(done) => {
                    if let Some((key, id)) = done.created {
                        self.refs.insert(key, id);
                    }
                }
                Err(_) => self.failed_writes += 1,
            }
        }
        let kept = self.decisions.entry(out.session.id.clone()).or_default();
        for e in out.timeline.into_iter().filter(|e| e.kind == EntryKind::Decision) {
            let Some(rule) = e.rule else { continue };
            kept.retain(|(r, _)| *r != rule);
            kept.push((rule, e.summary));
        }
        let s = out.session;
        let ended = s.is_over() && !self.live.get(&s.id).is_some_and(Session::is_over);
        if ended {
            self.recent.push_back(s.id.clone());
        }
        self.live.insert(s.id.clone(), s);
        while self.recent.len() > RECENT {
            let Some(id) = self.recent.pop_front() else { break };
            // Reopened by a later event meanwhile: it stays until it is over again.
            if let Some(s) = self.live.remove(&id) {
                if s.is_over() {
                    let at = self.spill(&s)?;
                    self.over.insert(id, at);
                } else {
                    self.live.insert(id, s);
                }
            }
        }
        Ok(())
    }

    /// A session's state.
    pub fn session(&self, id: &str) -> anyhow::Result<Option<Cow<'_, Session>>> {
        if let Some(s) = self.live.get(id) {
            return Ok(Some(Cow::Borrowed(s)));
        }
        Ok(match self.over.get(id) {
            Some(at) => Some(Cow::Owned(self.unspill(*at)?)),
            None => None,
        })
    }

    fn spill(&self, s: &Session) -> anyhow::Result<(u64, usize)> {
        let json = serde_json::to_vec(s)?;
        let mut f = self.spill.lock().unwrap_or_else(|e| e.into_inner());
        f.file.write_all(&json).context("cannot write simulate's scratch file")?;
        let at = (f.len, json.len());
        f.len += json.len() as u64;
        Ok(at)
    }

    fn unspill(&self, (offset, len): (u64, usize)) -> anyhow::Result<Session> {
        let mut f = self.spill.lock().unwrap_or_else(|e| e.into_inner());
        f.file.flush().context("cannot write simulate's scratch file")?;
        let file = f.file.get_mut();
        let mut buf = vec![0; len];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut buf))
            .context("cannot read simulate's scratch file")?;
        file.seek(SeekFrom::End(0))?;
        Ok(serde_json::from_slice(&buf)?)
    }

    /// The summary of a session's latest decision by `rule`.
    pub fn decision(&self, id: &str, rule: &str) -> Option<&str> {
        self.decisions.get(id)?.iter().find(|(r, _)| r == rule).map(|(_, s)| s.as_str())
    }

    /// The CRM id a reference stands for, if it was created.
    pub fn crm_id(&self, r: &ObjRef) -> Option<String> {
        match r {
            ObjRef::Crm(id) => Some(id.clone()),
            ObjRef::Key(k) => self.refs.get(k).cloned(),
        }
    }

    /// Replaces casebridge's keys by CRM ids; false when one has none.
    fn resolve_all(&self, refs: Vec<&mut ObjRef>) -> bool {
        for r in refs {
            if let ObjRef::Key(k) = r {
                match self.refs.get(k.as_str()) {
                    Some(id) => *r = ObjRef::Crm(id.clone()),
                    None => return false,
                }
            }
        }
        true
    }

    fn resolved(&self, r: &ObjRef) -> ObjRef {
        self.crm_id(r).map_or_else(|| r.clone(), ObjRef::Crm)
    }

    async fn answer(&self, l: &Lookup) -> anyhow::Result<Answer> {
        let crm = |q| async move { self.crm.lookup(&q).await.map_err(|e| anyhow::anyhow!("built-in CRM lookup: {e}")) };
        Ok(match l {
            Lookup::RecordOfSession(id) => {
                Answer::Record(self.session(id)?.and_then(|s| s.record.clone()).map(|r| self.resolved(&r)))
            }
            // Dial requests are not replayed: none has an origin.
            Lookup::DialRequestOrigin(_) => Answer::Origin(None),
            Lookup::RecordsOfAccount(a) => match self.resolved(a) {
                ObjRef::Crm(id) => crm(CrmLookup::RecordsOfAccount(id)).await?,
                // The account's creation was refused: it has no records.
                ObjRef::Key(_) => Answer::Records(vec![]),
            },
            Lookup::AccountsByUserId(u) => crm(CrmLookup::AccountsByUserId(u.clone())).await?,
            Lookup::AccountsByPhone(n) => crm(CrmLookup::AccountsByPhone(n.clone())).await?,
            Lookup::AccountsByEmail(e) => crm(CrmLookup::AccountsByEmail(e.clone())).await?,
        })
    }
}
