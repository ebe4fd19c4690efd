//! Text payload -> typed NodeConfig documents, with errors that name the source, the document
//! and the field, and suggest the nearest known field for a typo.

use super::Error;
use super::types::{API_VERSION, KIND, NodeConfig};

/// One parsed document and where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// Human-readable origin: `file:///x.yaml (document 2)`.
    pub label: String,
    /// The typed document.
    pub config: NodeConfig,
}

/// Builds the label of document `index` (1-based) inside `origin` of `source`.
pub fn label(source: &str, origin: &str, index: usize, count: usize) -> String {
    match (origin.is_empty(), count > 1) {
        (true, false) => source.to_owned(),
        (true, true) => format!("{source} (document {index})"),
        (false, false) => format!("{source} ({origin})"),
        (false, true) => format!("{source} ({origin}, document {index})"),
    }
}

/// Parses every YAML/JSON document in `text`. Empty documents are skipped. Flow nesting and
/// the number of documents are bounded before and during parsing ([`super::limits`]).
pub fn parse_documents(source: &str, origin: &str, text: &str) -> Result<Vec<Document>, Error> {
    use super::limits::{
        MAX_YAML_DOCUMENTS, MAX_YAML_FLOW_DEPTH, MAX_YAML_FLOW_NODES, flow_exceeded,
    };
    if let Some(e) = flow_exceeded(text) {
        return Err(Error::Syntax {
            at: label(source, origin, 1, 1),
            line: e.line,
            column: e.column,
            message: if e.depth {
                format!(
                    "brackets ([ and {{) nested more than {MAX_YAML_FLOW_DEPTH} deep (the nesting limit); a NodeConfig needs a handful"
                )
            } else {
                format!(
                    "more than {MAX_YAML_FLOW_NODES} flow collections and items ([, {{ and ,) (the limit); write long lists as block lists (- item)"
                )
            },
        });
    }
    let mut values = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        if i >= MAX_YAML_DOCUMENTS {
            return Err(Error::Syntax {
                at: label(source, origin, i + 1, 2),
                line: 0,
                column: 0,
                message: format!(
                    "more than {MAX_YAML_DOCUMENTS} YAML documents (the document limit); merge them"
                ),
            });
        }
        let value = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(de).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            Error::Syntax {
                at: label(source, origin, i + 1, 2),
                line,
                column,
                message: crate::model::text::shorten_spans(&strip_location(&e.to_string())),
            }
        })?;
        if !value.is_null() {
            values.push(value);
        }
    }
    let count = values.len();
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let at = label(source, origin, i + 1, count);
            check_header(&at, i + 1, &value)?;
            let config = typed(&at, value)?;
            Ok(Document { label: at, config })
        })
        .collect()
}

fn typed(at: &str, value: serde_yaml_ng::Value) -> Result<NodeConfig, Error> {
    if !value.is_mapping() {
        return Err(Error::Field {
            at: at.to_owned(),
            path: "(document)".into(),
            message: format!(
                "expected a mapping with apiVersion, kind and spec, found {}",
                describe(&value)
            ),
        });
    }
    // Kept to describe a wrongly typed secret without showing it.
    let original = value.clone();
    serde_path_to_error::deserialize::<_, NodeConfig>(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        let found = lookup(&original, &path);
        // Lists and maps are named by serde, never shown; scalars are shown, so not here.
        let scalar = found.is_none_or(|v| !v.is_sequence() && !v.is_mapping());
        let message = if super::secrets::value_is_secret(&path) && scalar && !names_a_key(&inner) {
            let found = found.map_or("a value", describe);
            let expected = inner
                .split_once(", expected ")
                .map_or("another type", |(_, e)| e);
            format!(
                "invalid value: {found}, expected {}; the value is not shown because this field holds a secret",
                crate::model::text::shorten(expected)
            )
        } else {
            crate::model::text::shorten_spans(&with_suggestion(&inner))
        };
        Error::Field {
            at: at.to_owned(),
            path,
            message,
        }
    })
}

/// serde messages that name a key, never a value.
fn names_a_key(message: &str) -> bool {
    message.starts_with("unknown field `") || message.starts_with("missing field `")
}

/// The value at a serde_path_to_error path (`a.b[2].c`).
fn lookup<'a>(value: &'a serde_yaml_ng::Value, path: &str) -> Option<&'a serde_yaml_ng::Value> {
    let mut current = value;
    for segment in path.split('.') {
        let (key, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        for index in indexes.split('[').skip(1) {
            current = current.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(current)
}

/// A document whose apiVersion or kind is not ours is named as what it is, before its fields
/// are read (a ConfigMap's `data` is not an "unknown field").
fn check_header(at: &str, index: usize, value: &serde_yaml_ng::Value) -> Result<(), Error> {
    let field = |name: &str| value.get(name).and_then(serde_yaml_ng::Value::as_str);
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    if api_version.is_none_or(|v| v == API_VERSION) && kind.is_none_or(|k| k == KIND) {
        return Ok(());
    }
    let path = if api_version.is_some_and(|v| v != API_VERSION) {
        "apiVersion"
    } else {
        "kind"
    };
    let shown = |v: Option<&str>| {
        v.map_or_else(
            || "(none)".to_owned(),
            |v| crate::model::text::shorten(v).into_owned(),
        )
    };
    Err(Error::Field {
        at: at.to_owned(),
        path: path.into(),
        message: format!(
            "document {index} is a {} {}, not a {API_VERSION} {KIND}; this agent reads only NodeConfig documents: remove it or move it elsewhere",
            shown(api_version),
            shown(kind)
        ),
    })
}

fn describe(value: &serde_yaml_ng::Value) -> &'static str {
    match value {
        serde_yaml_ng::Value::Null => "nothing",
        serde_yaml_ng::Value::Bool(_) => "a boolean",
        serde_yaml_ng::Value::Number(_) => "a number",
        serde_yaml_ng::Value::String(_) => "a string",
        serde_yaml_ng::Value::Sequence(_) => "a list",
        serde_yaml_ng::Value::Mapping(_) => "a mapping",
        serde_yaml_ng::Value::Tagged(_) => "a tagged value",
    }
}

/// Drops serde_yaml's trailing " at line L column C" (we report those separately).
fn strip_location(message: &str) -> String {
    let Some(start) = message.find(" at line ") else {
        return message.to_owned();
    };
    let tail = &message[start + " at line ".len()..];
    // Skip "N column M".
    let mut words = tail.splitn(4, ' ');
    let (_line, _col_word, col) = (words.next(), words.next(), words.next().unwrap_or(""));
    let after = words.next().map(|w| format!(" {w}")).unwrap_or_default();
    let col_rest = col.trim_start_matches(|ch: char| ch.is_ascii_digit());
    format!("{}{col_rest}{after}", &message[..start])
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (and the same for variants),
/// appends the nearest known name.
pub fn with_suggestion(message: &str) -> String {
    let Some((unknown, expected)) = unknown_and_expected(message) else {
        return message.to_owned();
    };
    let nearest = expected
        .iter()
        .map(|cand| {
            (
                strsim::jaro_winkler(&unknown.to_ascii_lowercase(), &cand.to_ascii_lowercase()),
                cand,
            )
        })
        .filter(|(score, _)| *score >= 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match nearest {
        Some((_, cand)) => format!("{message}; did you mean `{cand}`?"),
        None => message.to_owned(),
    }
}

fn unknown_and_expected(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect::<Vec<_>>();
    Some((unknown.to_owned(), expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_field() {
        let m = with_suggestion(
            "unknown field `apiServerEndpiont`, expected one of `name`, `apiServerEndpoint`, `cidr`",
        );
        assert!(m.ends_with("did you mean `apiServerEndpoint`?"), "{m}");
        let m =
            with_suggestion("unknown variant `raid0`, expected one of `RAID0`, `RAID10`, `Mount`");
        assert!(m.ends_with("did you mean `RAID0`?"), "{m}");
        let m = with_suggestion("unknown field `zzzz`, expected `name`");
        assert!(!m.contains("did you mean"), "{m}");
    }

    #[test]
    fn multi_document_text_is_split_and_empty_documents_skipped() {
        let text = "---\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: a\n---\n---\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n";
        let docs = parse_documents("file:///x", "", text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].label, "file:///x (document 1)");
        assert_eq!(docs[0].config.spec.cluster.name.as_deref(), Some("a"));
    }

    #[test]
    fn unknown_field_error_names_the_path() {
        let text =
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    nmae: a\n";
        let err = parse_documents("file:///x", "", text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("spec.cluster"), "{err}");
        assert!(err.contains("did you mean `name`"), "{err}");
    }
}
