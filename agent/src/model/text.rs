//! Text forms shared across layers: an error with its causes on one line, and RFC 3339 times.

use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An error and its causes on one line, joined by `": "`, for logs and reports. A cause whose
/// text the line already holds is left out (HTTP clients often repeat their inner error).
/// The agent's errors never carry secrets, so neither does this.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// A time as RFC 3339 UTC with whole seconds (`2023-04-28T00:14:00Z`), as Kubernetes and the
/// AWS credential formats write it.
pub fn rfc3339(t: impl Into<OffsetDateTime>) -> String {
    let t = t.into().to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Parses an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn chains_join_causes_once() {
        let err = E(
            "cannot read x",
            Some(Box::new(E(
                "error sending request",
                Some(Box::new(E(
                    "error sending request",
                    Some(Box::new(E("refused", None))),
                ))),
            ))),
        );
        assert_eq!(
            error_chain(&err),
            "cannot read x: error sending request: refused"
        );
    }

    #[test]
    fn times_round_trip_in_whole_seconds() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_682_640_840_250);
        assert_eq!(rfc3339(t), "2023-04-28T00:14:00Z");
        let back = parse_rfc3339("2023-04-28T00:14:00Z").unwrap();
        assert_eq!(rfc3339(back), "2023-04-28T00:14:00Z");
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
