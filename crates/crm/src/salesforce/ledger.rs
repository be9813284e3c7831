//! What casebridge knows each case already holds. `CaseComment` and `ContentVersion` take no
//! External ID, so a replayed note or file must be recognised by its marker: a case created
//! by this process starts known-empty; any other is read once (its comments and files) before
//! the first note or file goes on it. Bounded: the oldest cases are forgotten first.

use std::collections::{HashMap, HashSet, VecDeque};

/// Cases remembered at most.
const CAPACITY: usize = 10_000;

/// The markers known to be on each case.
#[derive(Debug, Default)]
pub struct Ledger {
    cases: HashMap<String, HashSet<String>>,
    order: VecDeque<String>,
}

impl Ledger {
    fn admit(&mut self, case: &str) -> &mut HashSet<String> {
        if !self.cases.contains_key(case) {
            self.order.push_back(case.to_string());
            if self.order.len() > CAPACITY
                && let Some(old) = self.order.pop_front()
            {
                self.cases.remove(&old);
            }
        }
        self.cases.entry(case.to_string()).or_default()
    }

    /// A case this process just created: it holds nothing yet.
    pub fn fresh(&mut self, case: &str) {
        self.admit(case);
    }

    /// Everything a case holds, as just read.
    pub fn loaded(&mut self, case: &str, markers: impl IntoIterator<Item = String>) {
        self.admit(case).extend(markers);
    }

    /// Whether the case holds the marker; `None` when the case was never read.
    pub fn holds(&self, case: &str, marker: &str) -> Option<bool> {
        self.cases.get(case).map(|m| m.contains(marker))
    }

    /// A marker just written.
    pub fn add(&mut self, case: &str, marker: &str) {
        self.admit(case).insert(marker.to_string());
    }
}

/// The marker a note carries at its end.
pub fn note_marker(key: &str) -> String {
    format!("[casebridge {key}]")
}

/// Finds the markers in a comment body or a file's `ReasonForChange`.
pub fn markers_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("[casebridge ") {
        let after = &rest[i..];
        match after.find(']') {
            Some(j) => {
                out.push(after[..=j].to_string());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_and_cases_remembered() {
        let body = format!("CSAT score: 9\n\n{}", note_marker("s1#7"));
        assert_eq!(markers_in(&body), [note_marker("s1#7")]);
        let mut l = Ledger::default();
        assert_eq!(l.holds("500A", "m"), None);
        l.fresh("500A");
        assert_eq!(l.holds("500A", "m"), Some(false));
        l.add("500A", "m");
        assert_eq!(l.holds("500A", "m"), Some(true));
    }
}
