//! Merging documents in order: later documents win field by field; `kubelet.flags` are
//! appended; `kubelet.config`, `containerd.baseRuntimeSpec` and the `containerd.config` TOML
//! tables are deep-merged. Every leaf remembers which document set it (`config show --explain`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Error;
use super::parse::Document;
use super::types::NodeConfig;

/// Field path (`spec.cluster.name`, `spec.kubelet.flags[2]`) -> label of the document that set it.
pub type Provenance = BTreeMap<String, String>;

const FLAGS_PATH: &str = "spec.kubelet.flags";
const CONTAINERD_CONFIG_PATH: &str = "spec.containerd.config";

/// Merges documents in order into one NodeConfig plus its provenance.
pub fn merge(docs: &[Document]) -> Result<(NodeConfig, Provenance), Error> {
    let empty = NodeConfig {
        api_version: super::types::API_VERSION.into(),
        kind: super::types::KIND.into(),
        ..NodeConfig::default()
    };
    let mut acc = serde_json::to_value(&empty).map_err(|e| Error::Internal(e.to_string()))?;
    let mut provenance = Provenance::new();
    // containerd TOML is parsed once per document and merged as tables, then written once:
    // re-parsing the merged text for every document would grow with the square of the input.
    let mut containerd: Option<(toml::Table, String)> = None;
    for doc in docs {
        let mut value =
            serde_json::to_value(&doc.config).map_err(|e| Error::Internal(e.to_string()))?;
        if let Value::Object(map) = &mut value {
            // Every document repeats these; they say nothing about the merged result.
            map.remove("apiVersion");
            map.remove("kind");
        }
        if let Some(text) = take_containerd_config(&mut value) {
            let table = parse_toml(&text, &doc.label)?;
            containerd = Some(match containerd.take() {
                Some((mut base, labels)) => {
                    deep_merge_toml(&mut base, table);
                    (base, format!("{labels} + {}", doc.label))
                }
                None => (table, doc.label.clone()),
            });
        }
        merge_value(&mut acc, value, "", &doc.label, &mut provenance)?;
    }
    if let Some((table, labels)) = containerd {
        // One document's text is kept as written; several are merged.
        let text = if labels.contains(" + ") {
            toml::to_string(&table).map_err(|e| Error::Internal(e.to_string()))?
        } else {
            docs.iter()
                .rev()
                .find_map(|d| d.config.spec.containerd.config.clone())
                .unwrap_or_default()
        };
        if let Some(Value::Object(spec)) = acc.get_mut("spec") {
            let section = spec
                .entry("containerd")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(section) = section {
                section.insert("config".into(), Value::String(text));
            }
        }
        provenance.insert(CONTAINERD_CONFIG_PATH.to_owned(), labels);
    }
    let merged: NodeConfig =
        serde_json::from_value(acc).map_err(|e| Error::Internal(e.to_string()))?;
    Ok((merged, provenance))
}

/// Removes `spec.containerd.config` from a document's value, returning its text.
fn take_containerd_config(value: &mut Value) -> Option<String> {
    let section = value
        .get_mut("spec")?
        .get_mut("containerd")?
        .as_object_mut()?;
    let text = match section.remove("config")? {
        Value::String(text) => text,
        _ => return None,
    };
    if section.is_empty()
        && let Some(Value::Object(spec)) = value.get_mut("spec")
    {
        spec.remove("containerd");
    }
    Some(text)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn merge_value(
    acc: &mut Value,
    next: Value,
    path: &str,
    label: &str,
    provenance: &mut Provenance,
) -> Result<(), Error> {
    match (acc, next) {
        (Value::Object(acc_map), Value::Object(next_map)) => {
            for (key, value) in next_map {
                let child = join(path, &key);
                match acc_map.get_mut(&key) {
                    Some(existing) => merge_value(existing, value, &child, label, provenance)?,
                    None => {
                        record(&value, &child, label, provenance);
                        acc_map.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(acc_list), Value::Array(next_list)) if path == FLAGS_PATH => {
            let start = acc_list.len();
            for (i, v) in next_list.into_iter().enumerate() {
                provenance.insert(format!("{path}[{}]", start + i), label.to_owned());
                acc_list.push(v);
            }
        }
        (slot, value) => {
            forget(provenance, path);
            record(&value, path, label, provenance);
            *slot = value;
        }
    }
    Ok(())
}

/// Removes `path` and every field under it from the provenance. The keys under a path are
/// contiguous in the map's order, so this costs the number removed, not the map's size (a
/// document replacing many fields would otherwise cost their product).
fn forget(provenance: &mut Provenance, path: &str) {
    provenance.remove(path);
    for prefix in [format!("{path}."), format!("{path}[")] {
        let under: Vec<String> = provenance
            .range(prefix.clone()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for k in under {
            provenance.remove(&k);
        }
    }
}

/// Records every leaf under `value` as set by `label`.
fn record(value: &Value, path: &str, label: &str, provenance: &mut Provenance) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                record(v, &join(path, k), label, provenance);
            }
        }
        Value::Array(list) if path == FLAGS_PATH => {
            for (i, _) in list.iter().enumerate() {
                provenance.insert(format!("{path}[{i}]"), label.to_owned());
            }
        }
        _ => {
            provenance.insert(path.to_owned(), label.to_owned());
        }
    }
}

/// Parses containerd TOML within its limits (size and nesting, checked first).
pub fn parse_toml(text: &str, label: &str) -> Result<toml::Table, Error> {
    use super::limits::{MAX_CONTAINERD_TOML_BYTES, MAX_TOML_DEPTH, toml_depth_exceeded};
    let fail = |message: String| Error::Field {
        at: label.to_owned(),
        path: CONTAINERD_CONFIG_PATH.into(),
        message,
    };
    if text.len() > MAX_CONTAINERD_TOML_BYTES {
        return Err(fail(format!(
            "is {} bytes, more than the limit of {MAX_CONTAINERD_TOML_BYTES}; a containerd config is a few KiB",
            text.len()
        )));
    }
    if let Some(line) = toml_depth_exceeded(text) {
        return Err(fail(format!(
            "is not valid TOML: brackets ([ and {{) nested more than {MAX_TOML_DEPTH} deep at line {line} (the nesting limit)"
        )));
    }
    text.parse::<toml::Table>().map_err(|e| {
        fail(format!(
            "is not valid TOML: {}",
            crate::model::text::shorten_spans(e.message())
        ))
    })
}

/// Merges `overlay` into `base`: tables recursively, other values replaced.
pub fn deep_merge_toml(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => deep_merge_toml(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Deep-merges JSON objects (objects recursively, everything else replaced).
pub fn deep_merge_json(base: &mut Map<String, Value>, overlay: &Map<String, Value>) {
    for (key, value) in overlay {
        match (base.get_mut(key), value) {
            (Some(Value::Object(b)), Value::Object(o)) => deep_merge_json(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::parse_documents;

    fn docs(texts: &[&str]) -> Vec<Document> {
        texts
            .iter()
            .enumerate()
            .flat_map(|(i, t)| parse_documents(&format!("file:///{i}.yaml"), "", t).unwrap())
            .collect()
    }

    const HEAD: &str = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n";

    #[test]
    fn later_wins_flags_append_maps_deep_merge() {
        let a = format!(
            "{HEAD}spec:\n  cluster:\n    name: a\n    cidr: 10.100.0.0/16\n  kubelet:\n    flags: [--v=2]\n    config:\n      evictionHard: {{memory.available: 100Mi}}\n      maxPods: 10\n"
        );
        let b = format!(
            "{HEAD}spec:\n  cluster:\n    name: b\n  kubelet:\n    flags: [--node-labels=x=y]\n    config:\n      evictionHard: {{nodefs.available: 5%}}\n"
        );
        let (m, prov) = merge(&docs(&[&a, &b])).unwrap();
        assert_eq!(m.spec.cluster.name.as_deref(), Some("b"));
        assert_eq!(m.spec.cluster.cidr.as_deref(), Some("10.100.0.0/16"));
        assert_eq!(m.spec.kubelet.flags, ["--v=2", "--node-labels=x=y"]);
        let eh = &m.spec.kubelet.config["evictionHard"];
        assert_eq!(eh["memory.available"], "100Mi");
        assert_eq!(eh["nodefs.available"], "5%");
        assert_eq!(m.spec.kubelet.config["maxPods"], 10);
        assert_eq!(prov["spec.cluster.name"], "file:///1.yaml");
        assert_eq!(prov["spec.cluster.cidr"], "file:///0.yaml");
        assert_eq!(prov["spec.kubelet.flags[1]"], "file:///1.yaml");
        assert_eq!(
            prov["spec.kubelet.config.evictionHard.memory.available"],
            "file:///0.yaml"
        );
    }

    #[test]
    fn containerd_toml_tables_deep_merge() {
        let a = format!(
            "{HEAD}spec:\n  containerd:\n    config: |\n      [plugins.\"io.containerd.grpc.v1.cri\"]\n      sandbox_image = \"a\"\n      enable_cdi = true\n"
        );
        let b = format!(
            "{HEAD}spec:\n  containerd:\n    config: |\n      [plugins.\"io.containerd.grpc.v1.cri\"]\n      sandbox_image = \"b\"\n"
        );
        let (m, _) = merge(&docs(&[&a, &b])).unwrap();
        let t: toml::Table = m.spec.containerd.config.unwrap().parse().unwrap();
        let cri = &t["plugins"]["io.containerd.grpc.v1.cri"];
        assert_eq!(cri["sandbox_image"].as_str(), Some("b"));
        assert_eq!(cri["enable_cdi"].as_bool(), Some(true));
    }
}
