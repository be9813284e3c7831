//! A small, honest subset of SOQL and SOSL: `SELECT f, … FROM X [WHERE c AND c …] [ORDER BY f
//! [ASC|DESC]] [LIMIT n]` with `=`, `!=`, `<`, `>`, `<=`, `>=`, `LIKE` and `IN (…)` on literals,
//! and `FIND {term} [IN ALL|PHONE|EMAIL|NAME FIELDS] RETURNING X(fields [WHERE …]), …`.
//! Anything else is refused (the caller answers `MALFORMED_QUERY`), never guessed at.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// A literal in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// A quoted string (or an unquoted date/datetime literal).
    Str(String),
    /// A number.
    Num(f64),
    /// true / false.
    Bool(bool),
    /// null.
    Null,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `LIKE`
    Like,
    /// `IN`
    In,
}

/// One condition of a WHERE clause (they are joined with AND).
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    /// Field.
    pub field: String,
    /// Comparison.
    pub op: Op,
    /// Values (one, or several for IN).
    pub values: Vec<Lit>,
}

/// A parsed SELECT.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Selected fields.
    pub fields: Vec<String>,
    /// The object.
    pub object: String,
    /// Conditions, all of which must hold.
    pub conds: Vec<Cond>,
    /// Sort field and whether descending.
    pub order: Option<(String, bool)>,
    /// Row limit.
    pub limit: Option<usize>,
}

/// Which fields a SOSL search looks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every text field.
    All,
    /// Phone fields (digits compared, punctuation ignored).
    Phone,
    /// Email fields.
    Email,
    /// Name fields.
    Name,
}

/// A parsed FIND.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// The search term.
    pub term: String,
    /// Where to look.
    pub scope: Scope,
    /// Objects to return, each as a query (its fields and filters).
    pub returning: Vec<Query>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Sym(String),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match cs.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\\') => {
                        let next = cs.get(i + 1).copied().ok_or("unterminated escape")?;
                        v.push(match next {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        v.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(v));
        } else if c.is_ascii_digit() || (c == '-' && cs.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            i += 1;
            while i < cs.len() && (cs[i].is_ascii_alphanumeric() || matches!(cs[i], '.' | ':' | '-' | '+')) {
                i += 1;
            }
            let t: String = cs[start..i].iter().collect();
            match t.parse::<f64>() {
                Ok(n) => out.push(Tok::Num(n)),
                // A date or datetime literal (2026-11-20T10:00:00Z): compared as text.
                Err(_) => out.push(Tok::Str(t)),
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || matches!(cs[i], '_' | '.')) {
                i += 1;
            }
            out.push(Tok::Word(cs[start..i].iter().collect()));
        } else {
            let two: String = cs[i..(i + 2).min(cs.len())].iter().collect();
            if ["!=", "<>", "<=", ">="].contains(&two.as_str()) {
                out.push(Tok::Sym(two));
                i += 2;
            } else if "=<>(),".contains(c) {
                out.push(Tok::Sym(c.to_string()));
                i += 1;
            } else {
                return Err(format!("unexpected character '{c}'"));
            }
        }
    }
    Ok(out)
}

struct P {
    toks: Vec<Tok>,
    i: usize,
}

impl P {
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.toks.get(self.i), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn kw(&mut self, kw: &str) -> Result<(), String> {
        if self.peek_kw(kw) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expecting {kw}, found {}", self.found()))
        }
    }
    fn sym(&mut self, s: &str) -> bool {
        if matches!(self.toks.get(self.i), Some(Tok::Sym(x)) if x == s) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn word(&mut self) -> Result<String, String> {
        match self.toks.get(self.i) {
            Some(Tok::Word(w)) if !is_keyword(w) => {
                self.i += 1;
                Ok(w.clone())
            }
            _ => Err(format!("expecting a name, found {}", self.found())),
        }
    }
    fn found(&self) -> String {
        match self.toks.get(self.i) {
            None => "end of query".into(),
            Some(Tok::Word(w)) => format!("'{w}'"),
            Some(Tok::Str(s)) => format!("'{s}'"),
            Some(Tok::Num(n)) => format!("'{n}'"),
            Some(Tok::Sym(s)) => format!("'{s}'"),
        }
    }
    fn done(&self) -> bool {
        self.i >= self.toks.len()
    }
}

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "ORDER",
    "BY",
    "LIMIT",
    "OFFSET",
    "GROUP",
    "HAVING",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIKE",
    "IN",
    "FIND",
    "RETURNING",
    "FIELDS",
    "WITH",
    "FOR",
    "USING",
    "TYPEOF",
];

fn is_keyword(w: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w))
}

fn literal(p: &mut P) -> Result<Lit, String> {
    let t = p.toks.get(p.i).cloned().ok_or("expecting a value, found end of query")?;
    p.i += 1;
    Ok(match t {
        Tok::Str(s) => Lit::Str(s),
        Tok::Num(n) => Lit::Num(n),
        Tok::Word(w) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
        Tok::Word(w) if w.eq_ignore_ascii_case("false") => Lit::Bool(false),
        Tok::Word(w) if w.eq_ignore_ascii_case("null") => Lit::Null,
        other => return Err(format!("unexpected token {other:?} where a value was expected")),
    })
}

/// The rest of a SELECT after its field list: `[FROM X] [WHERE …] [ORDER BY …] [LIMIT n]`.
fn select_tail(p: &mut P, fields: Vec<String>, implicit: Option<&str>) -> Result<Query, String> {
    let object = if p.peek_kw("FROM") {
        p.i += 1;
        p.word()?
    } else {
        implicit.map(str::to_string).ok_or_else(|| format!("expecting FROM, found {}", p.found()))?
    };
    let mut conds = Vec::new();
    if p.peek_kw("WHERE") {
        p.i += 1;
        loop {
            if p.sym("(") || p.peek_kw("NOT") {
                return Err("nested or negated conditions are not supported by this fake".into());
            }
            let field = p.word()?;
            let op = if p.sym("=") {
                Op::Eq
            } else if p.sym("!=") || p.sym("<>") {
                Op::Ne
            } else if p.sym("<=") {
                Op::Le
            } else if p.sym(">=") {
                Op::Ge
            } else if p.sym("<") {
                Op::Lt
            } else if p.sym(">") {
                Op::Gt
            } else if p.peek_kw("LIKE") {
                p.i += 1;
                Op::Like
            } else if p.peek_kw("IN") {
                p.i += 1;
                Op::In
            } else {
                return Err(format!("unexpected token: {}", p.found()));
            };
            let values = if op == Op::In {
                if !p.sym("(") {
                    return Err(format!("expecting '(', found {}", p.found()));
                }
                let mut vs = vec![literal(p)?];
                while p.sym(",") {
                    vs.push(literal(p)?);
                }
                if !p.sym(")") {
                    return Err(format!("expecting ')', found {}", p.found()));
                }
                vs
            } else {
                vec![literal(p)?]
            };
            conds.push(Cond { field, op, values });
            if p.peek_kw("AND") {
                p.i += 1;
                continue;
            }
            if p.peek_kw("OR") {
                return Err("OR is not supported by this fake".into());
            }
            break;
        }
    }
    let mut order = None;
    if p.peek_kw("ORDER") {
        p.i += 1;
        p.kw("BY")?;
        let f = p.word()?;
        let desc = if p.peek_kw("DESC") {
            p.i += 1;
            true
        } else {
            if p.peek_kw("ASC") {
                p.i += 1;
            }
            false
        };
        if p.peek_kw("NULLS") {
            p.i += 2;
        }
        order = Some((f, desc));
    }
    let mut limit = None;
    if p.peek_kw("LIMIT") {
        p.i += 1;
        match p.toks.get(p.i) {
            Some(Tok::Num(n)) if *n >= 0.0 => {
                limit = Some(*n as usize);
                p.i += 1;
            }
            _ => return Err(format!("expecting a number after LIMIT, found {}", p.found())),
        }
    }
    Ok(Query { fields, object, conds, order, limit })
}

fn field_list(p: &mut P) -> Result<Vec<String>, String> {
    let mut fields = vec![p.word()?];
    while p.sym(",") {
        fields.push(p.word()?);
    }
    Ok(fields)
}

/// Parses a SOQL SELECT.
pub fn parse_soql(q: &str) -> Result<Query, String> {
    let mut p = P { toks: lex(q)?, i: 0 };
    p.kw("SELECT")?;
    let fields = field_list(&mut p)?;
    let query = select_tail(&mut p, fields, None)?;
    if !p.done() {
        return Err(format!("unexpected token: {}", p.found()));
    }
    Ok(query)
}

/// Parses a SOSL FIND.
pub fn parse_sosl(q: &str) -> Result<Search, String> {
    let q = q.trim();
    let rest = q.strip_prefix("FIND").or_else(|| q.strip_prefix("find")).ok_or("expecting FIND")?.trim_start();
    let rest = rest.strip_prefix('{').ok_or("the search term must be in braces: FIND {term}")?;
    let mut term = String::new();
    let mut chars = rest.char_indices();
    let mut end = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, n)) = chars.next() {
                    term.push(n);
                }
            }
            '}' => {
                end = Some(i + 1);
                break;
            }
            c => term.push(c),
        }
    }
    let end = end.ok_or("unterminated search term")?;
    if term.trim().chars().count() < 2 {
        return Err("search term must be longer than one character".into());
    }
    let mut p = P { toks: lex(&rest[end..])?, i: 0 };
    let mut scope = Scope::All;
    if p.peek_kw("IN") {
        p.i += 1;
        let w = p.word().or_else(|_| match p.toks.get(p.i) {
            Some(Tok::Word(w)) => {
                p.i += 1;
                Ok(w.clone())
            }
            _ => Err(format!("expecting a search group, found {}", p.found())),
        })?;
        scope = match w.to_ascii_uppercase().as_str() {
            "ALL" => Scope::All,
            "PHONE" => Scope::Phone,
            "EMAIL" => Scope::Email,
            "NAME" => Scope::Name,
            other => return Err(format!("unknown search group {other}")),
        };
        p.kw("FIELDS")?;
    }
    p.kw("RETURNING")?;
    let mut returning = Vec::new();
    loop {
        let object = p.word()?;
        let q = if p.sym("(") {
            let fields = field_list(&mut p)?;
            let q = select_tail(&mut p, fields, Some(&object))?;
            if !p.sym(")") {
                return Err(format!("expecting ')', found {}", p.found()));
            }
            q
        } else {
            Query { fields: vec!["Id".into()], object, conds: vec![], order: None, limit: None }
        };
        returning.push(q);
        if !p.sym(",") {
            break;
        }
    }
    if !p.done() {
        return Err(format!("unexpected token: {}", p.found()));
    }
    Ok(Search { term: term.trim().to_string(), scope, returning })
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn compare(v: &Value, lit: &Lit) -> Option<Ordering> {
    match (v, lit) {
        (Value::Null, Lit::Null) => Some(Ordering::Equal),
        (Value::Null, _) | (_, Lit::Null) => None,
        (Value::Number(n), Lit::Num(m)) => n.as_f64().and_then(|n| n.partial_cmp(m)),
        (Value::Bool(b), Lit::Bool(c)) => Some(b.cmp(c)),
        (v, Lit::Str(s)) => text_of(v).map(|t| t.to_lowercase().cmp(&s.to_lowercase())),
        (v, Lit::Num(m)) => text_of(v).and_then(|t| t.parse::<f64>().ok()).and_then(|n| n.partial_cmp(m)),
        _ => None,
    }
}

/// SOQL `LIKE`: `%` any run, `_` one character, case-insensitive.
pub fn like(text: &str, pattern: &str) -> bool {
    fn go(t: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(&t[i..], rest)),
            Some(('_', rest)) => !t.is_empty() && go(&t[1..], rest),
            Some((c, rest)) => t.first() == Some(c) && go(&t[1..], rest),
        }
    }
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    go(&t, &p)
}

impl Cond {
    fn holds(&self, r: &Map<String, Value>) -> bool {
        let v = r.get(&self.field).unwrap_or(&Value::Null);
        let Some(first) = self.values.first() else { return false };
        match self.op {
            Op::Eq => compare(v, first) == Some(Ordering::Equal),
            Op::Ne => compare(v, first) != Some(Ordering::Equal),
            Op::Lt => compare(v, first) == Some(Ordering::Less),
            Op::Gt => compare(v, first) == Some(Ordering::Greater),
            Op::Le => matches!(compare(v, first), Some(Ordering::Less | Ordering::Equal)),
            Op::Ge => matches!(compare(v, first), Some(Ordering::Greater | Ordering::Equal)),
            Op::Like => match (text_of(v), first) {
                (Some(t), Lit::Str(p)) => like(&t, p),
                _ => false,
            },
            Op::In => self.values.iter().any(|l| compare(v, l) == Some(Ordering::Equal)),
        }
    }
}

impl Query {
    /// Every field the query names (selected, filtered, sorted).
    pub fn named_fields(&self) -> Vec<String> {
        let mut v = self.fields.clone();
        v.extend(self.conds.iter().map(|c| c.field.clone()));
        v.extend(self.order.iter().map(|(f, _)| f.clone()));
        v
    }

    /// Whether a record passes the WHERE clause.
    pub fn matches(&self, r: &Map<String, Value>) -> bool {
        self.conds.iter().all(|c| c.holds(r))
    }

    /// Filters, sorts and limits records (fields are projected by the caller).
    pub fn run<'a>(&self, records: impl Iterator<Item = &'a Map<String, Value>>) -> Vec<&'a Map<String, Value>> {
        let mut out: Vec<&Map<String, Value>> = records.filter(|r| self.matches(r)).collect();
        if let Some((f, desc)) = &self.order {
            out.sort_by(|a, b| {
                let (x, y) = (a.get(f).and_then(text_of), b.get(f).and_then(text_of));
                // Nulls first ascending, last descending, as Salesforce sorts them by default.
                let o = match (x, y) {
                    (Some(x), Some(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
                        (Ok(m), Ok(n)) => m.partial_cmp(&n).unwrap_or(Ordering::Equal),
                        _ => x.cmp(&y),
                    },
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                };
                if *desc { o.reverse() } else { o }
            });
        }
        if let Some(n) = self.limit {
            out.truncate(n);
        }
        out
    }
}

/// The digits of a text (phone numbers are compared on their digits).
pub fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Whether a stored phone matches a searched one: the same digits, or one ending with the
/// other (a stored `+1 (415) 555-0100` matches a search for `4155550100`).
pub fn phone_matches(stored: &str, term: &str) -> bool {
    let (s, t) = (digits(stored), digits(term));
    if s.is_empty() || t.is_empty() {
        return false;
    }
    s == t || (t.len() >= 7 && s.ends_with(&t)) || (s.len() >= 7 && t.ends_with(&s))
}
