//! Title templates: `{VARIABLE}` placeholders, `{{` and `}}` for literal braces.

use std::collections::BTreeMap;

/// Variables a title may use.
pub const VARIABLES: &[&str] = &["CALL_TYPE", "CALL_ID", "MENU_PATH", "PHONE_NUMBER", "LANGUAGE", "TIMESTAMP"];

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Var(String),
}

/// A parsed title template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Part>);

/// Why a template was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    /// `{NAME}`s with names that are not variables: each with its character position.
    #[error(
        "{}; known variables: CALL_TYPE, CALL_ID, MENU_PATH, PHONE_NUMBER, LANGUAGE, TIMESTAMP",
        unknown(.0)
    )]
    UnknownVariables(Vec<(String, usize)>),
    /// A `{` without its `}`.
    #[error("unclosed '{{' at character {0}; write '{{{{' for a literal brace")]
    Unclosed(usize),
    /// A `}` outside a variable.
    #[error("stray '}}' at character {0}; write '}}}}' for a literal brace")]
    Stray(usize),
}

fn unknown(names: &[(String, usize)]) -> String {
    let each: Vec<String> = names.iter().map(|(n, at)| format!("{{{n}}} at character {at}")).collect();
    format!("unknown variable{} {}", if names.len() == 1 { "" } else { "s" }, each.join(", "))
}

impl Template {
    /// Parses a template, refusing unknown variables (naming every one) and unbalanced braces.
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        let chars: Vec<char> = s.chars().collect();
        let mut unknown = Vec::new();
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '{' {
                if chars.get(i + 1) == Some(&'{') {
                    text.push('{');
                    i += 2;
                    continue;
                }
                let close = chars[i + 1..].iter().position(|&c| c == '}').ok_or(TemplateError::Unclosed(i + 1))?;
                let name: String = chars[i + 1..i + 1 + close].iter().collect();
                if !VARIABLES.contains(&name.as_str()) {
                    unknown.push((name, i + 1));
                    i += close + 2;
                    continue;
                }
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Var(name));
                i += close + 2;
            } else if c == '}' {
                if chars.get(i + 1) == Some(&'}') {
                    text.push('}');
                    i += 2;
                    continue;
                }
                return Err(TemplateError::Stray(i + 1));
            } else {
                text.push(c);
                i += 1;
            }
        }
        if !unknown.is_empty() {
            return Err(TemplateError::UnknownVariables(unknown));
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template(parts))
    }

    /// Renders with the given values; a variable without a value renders empty.
    pub fn render(&self, values: &BTreeMap<&str, String>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => {
                    if let Some(val) = values.get(v.as_str()) {
                        out.push_str(val)
                    }
                }
            }
        }
        out.trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_variables() {
        let t = Template::parse("{{x}} {CALL_TYPE}-{CALL_ID}}}").unwrap_or_else(|e| panic!("{e}"));
        let mut v = BTreeMap::new();
        v.insert("CALL_TYPE", "IVR Call".to_string());
        assert_eq!(t.render(&v), "{x} IVR Call-}");
    }

    #[test]
    fn unknown_variable_refused() {
        assert_eq!(Template::parse("a {NOPE}"), Err(TemplateError::UnknownVariables(vec![("NOPE".into(), 3)])));
        let two = Template::parse("{NOPE} {CALL_ID} {ALSO}").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(two.starts_with("unknown variables {NOPE} at character 1, {ALSO} at character 18;"), "{two}");
        assert!(matches!(Template::parse("a {CALL_ID"), Err(TemplateError::Unclosed(_))));
        assert!(matches!(Template::parse("a } b"), Err(TemplateError::Stray(_))));
    }
}
