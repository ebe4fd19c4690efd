//! Node taints the daemon owns, pure: which taints a False condition asks for, and the new
//! taint list that adds ours and removes ours that are no longer wanted, never touching a
//! taint it did not add. What it added is recorded on the Node itself, in the annotation
//! [`OWNED_ANNOTATION`], written in the same request as the taints (a merge patch with the
//! Node's resourceVersion as precondition, so a concurrent change by someone else is a 409
//! and a retry, never a lost taint).

use serde::{Deserialize, Serialize};

/// The annotation listing the taints this agent added (`key:effect` entries, comma-separated).
pub const OWNED_ANNOTATION: &str = "eks-node-agent.amazonaws.com/owned-taints";
/// Longest taint value (a label value).
const MAX_VALUE: usize = 63;

/// A taint's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    /// New pods are not scheduled.
    NoSchedule,
    /// New pods avoid the node.
    PreferNoSchedule,
    /// Pods without a toleration are evicted.
    NoExecute,
}

impl Effect {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSchedule => "NoSchedule",
            Self::PreferNoSchedule => "PreferNoSchedule",
            Self::NoExecute => "NoExecute",
        }
    }

    /// Parses the API name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::NoSchedule, Self::PreferNoSchedule, Self::NoExecute]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

/// A condition's taint, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaintSpec {
    /// The key.
    pub key: String,
    /// The effect.
    pub effect: Effect,
}

/// One taint of `spec.taints` (the fields the agent reads and writes; `timeAdded` is kept
/// as it came).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Effect.
    pub effect: String,
    /// When a NoExecute taint was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_added: Option<String>,
}

/// Checks a taint key: a qualified name, `[prefix/]name`, the prefix a DNS subdomain of at
/// most 253 characters, the name at most 63 alphanumerics, `-`, `_` or `.`, starting and
/// ending alphanumeric.
pub fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(alnum)
        && name.ends_with(alnum)
        && name.chars().all(|c| alnum(c) || "-_.".contains(c));
    if !name_ok {
        return Err("the name part must be 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit".into());
    }
    if let Some(p) = prefix {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if p.len() > 253 || !p.split('.').all(label_ok) {
            return Err("the prefix must be a lowercase DNS subdomain".into());
        }
    }
    Ok(())
}

/// The taint a False condition asks for: the configured key, the reason as value (cut to a
/// label value's length).
pub fn wanted(spec: &TaintSpec, reason: &str) -> Taint {
    let value: String = reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(MAX_VALUE)
        .collect();
    Taint {
        key: spec.key.clone(),
        value: (!value.is_empty()).then_some(value),
        effect: spec.effect.as_str().to_string(),
        time_added: None,
    }
}

fn id(t: &Taint) -> String {
    format!("{}:{}", t.key, t.effect)
}

/// The owned-taints annotation's entries.
pub fn parse_owned(annotation: Option<&str>) -> Vec<String> {
    annotation
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The change to make, if any: the Node's new taint list and the new owned-taints annotation
/// (`None`: remove it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The whole new `spec.taints`.
    pub taints: Vec<Taint>,
    /// The new annotation value.
    pub owned: Option<String>,
}

/// Reconciles the Node's `current` taints, of which `owned` are ours, with the `desired`
/// ones: ours no longer desired go, desired ones missing come (or get their new value);
/// every other taint stays as it is, in place. `None` when nothing changes.
pub fn reconcile(current: &[Taint], owned: &[String], desired: &[Taint]) -> Option<Change> {
    // A taint with one of our key:effect pairs that we did not add is someone else's: it is
    // neither changed, nor adopted, nor removed.
    let theirs = |i: &String| !owned.contains(i) && current.iter().any(|t| &id(t) == i);
    let mut taints: Vec<Taint> = Vec::with_capacity(current.len() + desired.len());
    for t in current {
        let tid = id(t);
        if !owned.contains(&tid) {
            taints.push(t.clone());
        } else if let Some(d) = desired.iter().find(|d| id(d) == tid) {
            // Ours and still wanted: kept in place, with the reason of now.
            taints.push(Taint {
                value: d.value.clone(),
                ..t.clone()
            });
        }
        // Ours and no longer wanted: gone.
    }
    for d in desired {
        let did = id(d);
        if !theirs(&did) && !taints.iter().any(|t| id(t) == did) {
            taints.push(d.clone());
        }
    }
    let owned_new: Vec<String> = desired.iter().map(id).filter(|i| !theirs(i)).collect();
    let owned_value = (!owned_new.is_empty()).then(|| owned_new.join(","));
    let owned_old = (!owned.is_empty()).then(|| owned.join(","));
    (taints != current || owned_value != owned_old).then_some(Change {
        taints,
        owned: owned_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(str::to_string),
            effect: effect.into(),
            time_added: None,
        }
    }

    #[test]
    fn adds_ours_keeps_theirs_removes_only_ours() {
        let user = t("dedicated", Some("gpu"), "NoSchedule");
        let spec = TaintSpec {
            key: "eks-node-agent/KernelReady".into(),
            effect: Effect::NoSchedule,
        };
        let ours = wanted(&spec, "SoftLockup");
        assert_eq!(ours.value.as_deref(), Some("SoftLockup"));
        let c = reconcile(
            std::slice::from_ref(&user),
            &[],
            std::slice::from_ref(&ours),
        )
        .unwrap();
        assert_eq!(c.taints, [user.clone(), ours.clone()]);
        assert_eq!(
            c.owned.as_deref(),
            Some("eks-node-agent/KernelReady:NoSchedule")
        );
        let owned = parse_owned(c.owned.as_deref());
        assert_eq!(
            reconcile(&c.taints, &owned, std::slice::from_ref(&ours)),
            None,
            "steady"
        );
        // The reason changes: same taint, new value.
        let other = wanted(&spec, "ForkFailedOutOfPIDs");
        let c2 = reconcile(&c.taints, &owned, std::slice::from_ref(&other)).unwrap();
        assert_eq!(c2.taints[1].value.as_deref(), Some("ForkFailedOutOfPIDs"));
        // Recovery: ours goes, the user's stays.
        let c3 = reconcile(&c2.taints, &owned, &[]).unwrap();
        assert_eq!(c3.taints, std::slice::from_ref(&user));
        assert_eq!(c3.owned, None);
        // A taint with our key that we did not add is not ours to remove.
        let theirs = t("eks-node-agent/KernelReady", Some("manual"), "NoSchedule");
        assert_eq!(reconcile(std::slice::from_ref(&theirs), &[], &[]), None);
    }

    #[test]
    fn keys_and_effects() {
        assert!(validate_key("eks-node-agent/KernelReady").is_ok());
        assert!(validate_key("node.example.com/gpu-bad").is_ok());
        assert!(validate_key("plain").is_ok());
        assert!(validate_key("bad key!").is_err());
        assert!(validate_key("UPPER.example/x").is_err());
        assert!(validate_key("a/").is_err());
        assert_eq!(Effect::parse("NoExecute"), Some(Effect::NoExecute));
        assert_eq!(Effect::parse("noschedule"), None);
    }
}
