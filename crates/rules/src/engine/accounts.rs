//! Account rules (behaviour.md §2): find, choose among several, create or skip.

use super::*;
use crate::keys::account_key;

impl Ctx<'_> {
    pub(super) fn merge_customer(&mut self, c: Option<&crate::event::Customer>) {
        let Some(c) = c else { return };
        let before = self.s.customer.clone();
        let cur = &mut self.s.customer;
        if c.name.is_some() {
            cur.name = c.name.clone();
        }
        if c.email.is_some() {
            cur.email = c.email.clone();
        }
        if c.user_id.is_some() {
            cur.user_id = c.user_id.clone();
        }
        if cur.phone.is_none() && c.phone.is_some() {
            cur.phone = c.phone.clone();
        }
        if self.s.customer != before {
            self.s.customer_changed = true;
        }
    }

    /// §2.4: the account this session created gets the details known at assignment.
    pub(super) fn update_created_account(&mut self) {
        if self.s.account_outcome != AccountOutcome::Created || self.s.assigned_at.is_some() || !self.s.customer_changed
        {
            return;
        }
        if let Some(a) = self.s.account.clone() {
            let c = self.s.customer.clone();
            self.decide(
                "Account updated with the customer's details known at assignment",
                "accounts.update_at_assignment",
            );
            self.command(CrmOp::UpdateAccount { account: a, name: c.name, email: c.email, user_id: c.user_id });
        }
    }

    pub(super) fn is_own_number(&self, p: &Phone) -> bool {
        self.settings.own_numbers.iter().any(|n| Phone::parse(n, &self.settings.region).number == p.number)
    }

    pub(super) fn never_create_rule(&self, raw: &str, p: &Phone) -> Option<String> {
        let raw_digits: String = raw.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect();
        for entry in &self.settings.accounts.never_create_for {
            let e = entry.trim();
            if let Some(prefix) = e.strip_suffix('*') {
                let prefix = prefix.trim();
                if !prefix.is_empty() && (p.number.starts_with(prefix) || raw_digits.starts_with(prefix)) {
                    return Some(e.to_string());
                }
            } else {
                let norm = Phone::parse(e, &self.settings.region);
                if norm.number == p.number || e == raw.trim() || e == raw_digits {
                    return Some(e.to_string());
                }
            }
        }
        None
    }

    pub(super) fn account_phase(&mut self) -> R<()> {
        let st = self.settings;
        if st.accounts.skip_lookup {
            self.s.account_outcome = AccountOutcome::None;
            self.decide("No account: lookup is skipped", "accounts.skip_lookup");
            return Ok(());
        }
        let c = self.s.customer.clone();
        let phone = self.s.phone.clone();
        let own = phone.as_ref().is_some_and(|p| self.is_own_number(p));
        let mut keys = Vec::new();
        if let Some(u) = c.user_id.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            keys.push(("app user id", Lookup::AccountsByUserId(u.to_string())));
        }
        if let Some(p) = &phone {
            if own {
                self.decide("Phone is one of the contact center's own numbers: not matched", "own_numbers");
            } else {
                keys.push(("phone", Lookup::AccountsByPhone(p.number.clone())));
            }
        }
        if let Some(e) = c.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            keys.push(("email", Lookup::AccountsByEmail(e.to_lowercase())));
        }
        for (label, key) in keys {
            let hits = match self.need(key)? {
                Answer::Accounts(h) => h.clone(),
                _ => vec![],
            };
            if hits.is_empty() {
                continue;
            }
            let chosen = choose_account(&hits, st.accounts.multiple_match);
            self.s.account = Some(ObjRef::Crm(chosen.id.clone()));
            self.s.account_outcome = AccountOutcome::Found;
            let others: Vec<&str> = hits.iter().filter(|h| h.id != chosen.id).map(|h| h.id.as_str()).collect();
            let mut summary = format!("Account {} found by {label}", chosen.id);
            if !others.is_empty() {
                summary.push_str(&format!("; {} other match(es) not used: {}", others.len(), others.join(", ")));
            }
            let rule = if others.is_empty() {
                "accounts.lookup".to_string()
            } else {
                format!(
                    "accounts.multiple_match.{}",
                    match st.accounts.multiple_match {
                        MultipleMatch::MostRecent => "most_recent",
                        MultipleMatch::Priority => "priority",
                    }
                )
            };
            self.decide(summary, &rule);
            return Ok(());
        }
        // Not found.
        let raw_phone = c.phone.clone().unwrap_or_default();
        let anonymous = c.phone.as_deref().is_some_and(Phone::is_anonymous);
        let has_other = c.user_id.as_deref().is_some_and(|u| !u.trim().is_empty())
            || c.email.as_deref().is_some_and(|e| !e.trim().is_empty());
        let blocked: Option<(String, String)> = if st.accounts.skip_creation {
            Some((
                "No account: customer not found and account creation is skipped".into(),
                "accounts.skip_creation".into(),
            ))
        } else if own {
            Some(("No account created: the number is one of the contact center's own".into(), "own_numbers".into()))
        } else if let Some(entry) = phone.as_ref().and_then(|p| self.never_create_rule(&raw_phone, p)) {
            Some((
                format!("No account created: the number matches never_create_for entry {entry:?}"),
                "accounts.never_create_for".into(),
            ))
        } else if phone.is_none() && !has_other {
            let why = if anonymous { "an anonymous or withheld caller" } else { "no phone, email or app user id" };
            Some((format!("No account created: {why}"), "accounts.anonymous".into()))
        } else {
            None
        };
        if let Some((summary, rule)) = blocked {
            self.s.account_outcome = AccountOutcome::None;
            self.decide(summary, &rule);
            return Ok(());
        }
        let key = account_key(&self.s.id);
        self.s.account = Some(ObjRef::Key(key.clone()));
        self.s.account_outcome = AccountOutcome::Created;
        self.decide("Customer not found: account created", "accounts.create");
        let at = self.at;
        self.command(CrmOp::CreateAccount {
            key,
            kind: AccountKind::Contact,
            name: c.name.clone(),
            phone: phone.as_ref().map(|p| p.number.clone()),
            phone_extension: phone.as_ref().and_then(|p| p.extension.clone()),
            email: c.email.clone(),
            user_id: c.user_id.clone(),
            at,
        });
        Ok(())
    }
}

fn choose_account(hits: &[AccountHit], mode: MultipleMatch) -> &AccountHit {
    let mut best = &hits[0];
    for h in &hits[1..] {
        let better = match mode {
            MultipleMatch::MostRecent => (h.updated_at, &h.id) > (best.updated_at, &best.id),
            MultipleMatch::Priority => {
                let (a, b) = (h.kind.priority_rank(), best.kind.priority_rank());
                a < b || (a == b && (h.updated_at, &h.id) > (best.updated_at, &best.id))
            }
        };
        if better {
            best = h;
        }
    }
    best
}
