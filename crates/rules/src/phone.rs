//! Phone numbers in one form: E.164 when libphonenumber can parse them, verbatim otherwise.
//!
//! Parsing, validation and formatting are `rlibphonenumber`'s, a port of Google's libphonenumber
//! kept on its current metadata; `crates/rules/tests/phone_fixture.rs` checks it against the
//! golden file written by `scripts/phone_fixtures.py`.

use std::fmt;

use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumber, PhoneNumberFormat, Region};
use serde::{Deserialize, Serialize};

/// A customer's phone number as casebridge compares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Phone {
    /// E.164 form (`+14155550100`), or the input verbatim when it cannot be parsed.
    pub number: String,
    /// Extension, kept apart and ignored for matching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// Whether `number` is in E.164 form.
    pub parsed: bool,
    /// Whether libphonenumber's metadata considers the number valid.
    #[serde(default)]
    pub valid: bool,
    /// The national significant number (digits only), when parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_digits: Option<String>,
}

/// Why a region code was refused.
#[derive(Debug, thiserror::Error)]
#[error("unknown region code {0:?}: use an ISO 3166-1 alpha-2 code such as \"US\" or \"FR\"")]
pub struct UnknownRegion(pub String);

/// Parses an ISO 3166-1 alpha-2 region code as libphonenumber knows it (one its metadata has).
pub fn parse_region(code: &str) -> Result<Region, UnknownRegion> {
    Region::from_code(code)
        .ok()
        .filter(|r| PHONE_NUMBER_UTIL.get_country_code_for_region(*r).is_some())
        .ok_or_else(|| UnknownRegion(code.to_string()))
}

impl Phone {
    /// Normalizes `input`, taking `region` for numbers written without a country code.
    pub fn parse(input: &str, region: &str) -> Phone {
        let trimmed = input.trim();
        match PhoneNumber::parse(trimmed, parse_region(region).ok()) {
            Ok(n) => Phone {
                number: n.format_as(PhoneNumberFormat::E164).into_owned(),
                extension: n.extension.clone().filter(|e| !e.is_empty()),
                parsed: true,
                valid: n.is_valid(),
                national_digits: Some(n.national_number.to_string()),
            },
            Err(_) => Phone {
                number: trimmed.to_string(),
                extension: None,
                parsed: false,
                valid: false,
                national_digits: None,
            },
        }
    }

    /// The number as people read it: E.164 with the extension, if any (`+12127365000 ext. 45`).
    pub fn display(&self) -> String {
        match &self.extension {
            Some(ext) => format!("{} ext. {ext}", self.number),
            None => self.number.clone(),
        }
    }

    /// The form used to match accounts: E.164 without the extension, or the verbatim input.
    pub fn match_key(&self) -> &str {
        &self.number
    }

    /// Whether this is an anonymous or withheld caller id.
    pub fn is_anonymous(input: &str) -> bool {
        let t = input.trim().to_ascii_lowercase();
        t.is_empty()
            || matches!(t.as_str(), "anonymous" | "withheld" | "private" | "restricted" | "unknown" | "unavailable")
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_the_metadata_regions_in_any_case() {
        assert!(parse_region("us").is_ok() && parse_region("BR").is_ok());
        for bad in ["XX", "ZZ", "001", "USA", "", "u1"] {
            assert!(parse_region(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_extension_is_shown_apart_and_not_matched() {
        let p = Phone::parse("212-736-5000 ext. 45", "US");
        assert_eq!((p.match_key(), p.display().as_str()), ("+12127365000", "+12127365000 ext. 45"));
        assert_eq!(Phone::parse("+1 212 736 5000", "US").display(), "+12127365000");
        let odd = Phone::parse("call me", "US");
        assert_eq!((odd.parsed, odd.display().as_str()), (false, "call me"));
    }
}
