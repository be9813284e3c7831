//! casebridge's own options in a `postgres://` URL, next to libpq's: `pool_size` and
//! `statement_timeout_ms`, taken out before the URL reaches the driver.

use crate::{Result, StoreError};

/// Connections in the pool when the URL does not say.
pub const DEFAULT_POOL_SIZE: u32 = 10;
/// Statement timeout (ms) when the URL does not say; 0 turns it off.
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 30_000;

/// A PostgreSQL URL split into the driver's URL and casebridge's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// The URL without casebridge's options.
    pub url: String,
    /// Most connections the pool opens (`?pool_size=`, at least 1).
    pub pool_size: u32,
    /// Longest a statement may run, in ms (`?statement_timeout_ms=`; 0 = no limit).
    pub statement_timeout_ms: u64,
}

impl PgOptions {
    /// Splits a `postgres://` URL; a malformed option is refused with what to write instead.
    pub fn parse(url: &str) -> Result<PgOptions> {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut o = PgOptions {
            url: String::new(),
            pool_size: DEFAULT_POOL_SIZE,
            statement_timeout_ms: DEFAULT_STATEMENT_TIMEOUT_MS,
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "pool_size" => {
                    o.pool_size = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        StoreError::Unsupported(format!(
                            "pool_size={v:?} in the database URL: give a whole number of connections, at least 1"
                        ))
                    })?;
                }
                "statement_timeout_ms" => {
                    o.statement_timeout_ms = v.parse().map_err(|_| {
                        StoreError::Unsupported(format!(
                            "statement_timeout_ms={v:?} in the database URL: give milliseconds as a whole number (0 for no limit)"
                        ))
                    })?;
                }
                _ => kept.push(pair),
            }
        }
        o.url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casebridge_options_are_taken_out_and_the_rest_kept() {
        let o =
            PgOptions::parse("postgres://u@h/db?sslmode=disable&pool_size=4&statement_timeout_ms=0").expect("parses");
        assert_eq!(o.url, "postgres://u@h/db?sslmode=disable");
        assert_eq!((o.pool_size, o.statement_timeout_ms), (4, 0));
        let d = PgOptions::parse("postgres://h/db").expect("parses");
        assert_eq!(d.url, "postgres://h/db");
        assert_eq!((d.pool_size, d.statement_timeout_ms), (DEFAULT_POOL_SIZE, DEFAULT_STATEMENT_TIMEOUT_MS));
    }

    #[test]
    fn bad_options_name_the_option() {
        for url in
            ["postgres://h/db?pool_size=0", "postgres://h/db?pool_size=x", "postgres://h/db?statement_timeout_ms=-1"]
        {
            let e = PgOptions::parse(url).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("in the database URL"), "{url}: {e}");
        }
    }
}
