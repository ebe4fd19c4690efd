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

/// Parses every YAML/JSON document in `text`. Empty documents are skipped. A text in the ECS
/// agent's `ecs.config` format (`KEY=value` lines) is one document setting `spec.ecs`.
pub fn parse_documents(source: &str, origin: &str, text: &str) -> Result<Vec<Document>, Error> {
    if super::ecs::looks_like_ecs_config(text) {
        let at = format!("{} (ecs.config)", label(source, origin, 1, 1));
        let ecs = super::ecs::parse_ecs_config(text).map_err(|e| Error::Field {
            at: at.clone(),
            path: format!("line {}: {}", e.line, e.key),
            message: e.message,
        })?;
        let config = NodeConfig {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            metadata: None,
            spec: super::types::NodeConfigSpec {
                ecs: Some(ecs),
                ..Default::default()
            },
        };
        return Ok(vec![Document { label: at, config }]);
    }
    let mut values = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(de).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            Error::Syntax {
                at: label(source, origin, i + 1, 2),
                line,
                column,
                message: strip_location(&e.to_string()),
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
            let config = typed(&at, value)?;
            check_header(&at, &config)?;
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
    serde_path_to_error::deserialize::<_, NodeConfig>(value).map_err(|e| {
        let path = e.path().to_string();
        let message = with_suggestion(&e.inner().to_string());
        Error::Field {
            at: at.to_owned(),
            path,
            message,
        }
    })
}

fn check_header(at: &str, config: &NodeConfig) -> Result<(), Error> {
    if config.api_version != API_VERSION {
        return Err(Error::Field {
            at: at.to_owned(),
            path: "apiVersion".into(),
            message: format!(
                "\"{}\" is not supported; expected \"{API_VERSION}\"",
                config.api_version
            ),
        });
    }
    if config.kind != KIND {
        return Err(Error::Field {
            at: at.to_owned(),
            path: "kind".into(),
            message: format!("\"{}\" is not supported; expected \"{KIND}\"", config.kind),
        });
    }
    Ok(())
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
