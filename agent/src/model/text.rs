//! Text forms shared across layers: an error with its causes on one line, RFC 3339 times,
//! and the one way a message echoes a value it was given (bounded, credentials masked).

use std::borrow::Cow;
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

/// The most characters of a value a message echoes; the rest is counted, not shown.
pub const ECHO_MAX_CHARS: usize = 64;

/// A value as a message shows it: credentials in a URL masked ([`mask_userinfo`]), then cut
/// to [`ECHO_MAX_CHARS`] characters with a count of the rest. Not quoted.
pub fn shorten(value: &str) -> Cow<'_, str> {
    let masked = mask_userinfo(value);
    let count = masked.chars().count();
    if count <= ECHO_MAX_CHARS {
        return masked;
    }
    let cut: String = masked.chars().take(ECHO_MAX_CHARS).collect();
    Cow::Owned(format!(
        "{cut}... ({} more characters)",
        count - ECHO_MAX_CHARS
    ))
}

/// A value as a message quotes it: [`shorten`]ed, in double quotes, with quotes, backslashes
/// and control characters escaped (so a value cannot forge a line of output).
pub fn echo(value: &str) -> String {
    let masked = mask_userinfo(value);
    let count = masked.chars().count();
    let cut: String = masked.chars().take(ECHO_MAX_CHARS).collect();
    if count <= ECHO_MAX_CHARS {
        format!("{cut:?}")
    } else {
        format!("{cut:?}... ({} more characters)", count - ECHO_MAX_CHARS)
    }
}

/// `scheme://user:password@host/...` with the user information replaced by `***`, so a
/// password in a URL never reaches a message. Text that is not such a URL is returned as is.
pub fn mask_userinfo(value: &str) -> Cow<'_, str> {
    let Some(scheme_end) = value.find("://") else {
        return Cow::Borrowed(value);
    };
    let authority_start = scheme_end + 3;
    let rest = &value[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        Some(at) => Cow::Owned(format!(
            "{}***{}",
            &value[..authority_start],
            &value[authority_start + at..]
        )),
        None => Cow::Borrowed(value),
    }
}

/// Whether `value` is a URL carrying user information (`user[:password]@`) in its authority.
pub fn has_userinfo(value: &str) -> bool {
    matches!(mask_userinfo(value), Cow::Owned(_))
}

/// A message written by a library (a parser's complaint) with every quoted or back-quoted
/// span in it [`shorten`]ed: libraries echo what they could not parse, whatever its length.
pub fn shorten_spans(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(1024));
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[open] as char;
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        match after.find(quote) {
            Some(close) => {
                out.push_str(&shorten(&after[..close]));
                out.push(quote);
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&shorten(after));
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_bounded_escaped_and_masked() {
        assert_eq!(echo("my cluster!"), "\"my cluster!\"");
        let long = "a".repeat(1 << 20);
        let e = echo(&long);
        assert!(e.len() < 120, "{e}");
        assert!(
            e.ends_with(&format!("({} more characters)", (1 << 20) - 64)),
            "{e}"
        );
        assert_eq!(echo("a\nb"), "\"a\\nb\"");
        assert_eq!(
            echo("https://admin:pw@host:6443/x"),
            "\"https://***@host:6443/x\""
        );
        assert_eq!(mask_userinfo("https://host/a@b"), "https://host/a@b");
        assert_eq!(mask_userinfo("http://u@h"), "http://***@h");
        assert!(has_userinfo("https://a:b@c") && !has_userinfo("user@example.com"));
        assert_eq!(shorten("short"), "short");
    }

    #[test]
    fn library_messages_have_their_spans_shortened() {
        let name = "x".repeat(5000);
        let m = shorten_spans(&format!(
            "invalid type: string \"{name}\", expected u32 and unknown field `{name}`"
        ));
        assert!(m.len() < 300, "{m}");
        assert!(m.starts_with("invalid type: string \"xxx"), "{m}");
        assert!(m.contains("expected u32 and unknown field `x"), "{m}");
        assert_eq!(shorten_spans("no quotes"), "no quotes");
        assert_eq!(shorten_spans("open \"end"), "open \"end");
    }

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
