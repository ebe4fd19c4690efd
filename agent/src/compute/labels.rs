//! Node labels the agent adds to `--node-labels`: `nvidia.com/gpu.present=true` on hosts with
//! an NVIDIA GPU (as nodeadm does), and EC2 instance tags under the configured prefix
//! (`spec.instanceTagLabels`). A label the kubelet may not set on its own Node (the
//! NodeRestriction admission plugin's rule; kubelet refuses to start with one) is left out with
//! a warning naming the rule.

use std::collections::BTreeMap;

use crate::model::{AcceleratorKind, HostFacts};

/// The label nodeadm sets on NVIDIA hosts.
pub const NVIDIA_GPU_PRESENT: &str = "nvidia.com/gpu.present";

/// Label keys in the `kubernetes.io`/`k8s.io` namespaces a kubelet may set on itself.
const KUBELET_LABELS: [&str; 11] = [
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
];
/// Label namespaces (and their subdomains) a kubelet may set on itself.
const KUBELET_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];
/// Namespaces reserved to Kubernetes (and their subdomains).
const KUBERNETES_NAMESPACES: [&str; 2] = ["kubernetes.io", "k8s.io"];
/// Longest label name part and value.
const MAX_LABEL_NAME: usize = 63;
/// Longest label key prefix (a DNS subdomain).
const MAX_LABEL_PREFIX: usize = 253;

fn in_namespace(namespace: &str, base: &str) -> bool {
    namespace == base || namespace.ends_with(&format!(".{base}"))
}

/// Why the kubelet may not set `key` on its own Node, or `None` when it may: keys in the
/// `kubernetes.io` and `k8s.io` namespaces are refused unless they are one of the kubelet's
/// own labels or in `kubelet.kubernetes.io`/`node.kubernetes.io` (NodeRestriction; kubelet
/// checks the same rule for `--node-labels` and does not start).
pub fn kubelet_may_not_set(key: &str) -> Option<String> {
    let namespace = key.split_once('/').map_or("", |(ns, _)| ns);
    let reserved = KUBERNETES_NAMESPACES
        .iter()
        .any(|base| in_namespace(namespace, base));
    let allowed = KUBELET_LABELS.contains(&key)
        || KUBELET_NAMESPACES
            .iter()
            .any(|base| in_namespace(namespace, base));
    (reserved && !allowed).then(|| {
        format!(
            "the NodeRestriction admission plugin lets a kubelet set labels in the kubernetes.io and k8s.io namespaces only under kubelet.kubernetes.io/ and node.kubernetes.io/ or for its well-known labels (kubelet refuses to start with {key})"
        )
    })
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LABEL_NAME
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Why `key` is not a valid label key (`[prefix/]name`), or `None`.
pub fn invalid_label_key(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let dns = !p.is_empty()
            && p.len() <= MAX_LABEL_PREFIX
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            });
        if !dns {
            return Some(format!(
                "the prefix \"{p}\" is not a lowercase DNS subdomain of at most {MAX_LABEL_PREFIX} characters"
            ));
        }
    }
    (!name_ok(name)).then(|| format!("the name \"{name}\" is not 1-{MAX_LABEL_NAME} letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))
}

/// Why `value` is not a valid label value, or `None`.
pub fn invalid_label_value(value: &str) -> Option<String> {
    (!value.is_empty() && !name_ok(value)).then(|| {
        format!("the value \"{value}\" is not empty or 1-{MAX_LABEL_NAME} letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
    })
}

/// Labels from the instance's tags under `prefix`: the rest of the tag key, with `:` read as
/// `/`, is the label key. Tags that make no valid label, or a label the kubelet may not set,
/// are left out with a warning. With how each label came about.
pub fn from_tags(
    tags: &BTreeMap<String, String>,
    prefix: &str,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut labels = BTreeMap::new();
    let mut why = BTreeMap::new();
    for (tag, value) in tags {
        let Some(rest) = tag.strip_prefix(prefix) else {
            continue;
        };
        let key = rest.replace(':', "/");
        let refused = invalid_label_key(&key)
            .or_else(|| invalid_label_value(value))
            .or_else(|| kubelet_may_not_set(&key));
        if let Some(reason) = refused {
            tracing::warn!(tag = %tag, label = %key, "instance tag not made a node label: {reason}");
            continue;
        }
        why.insert(key.clone(), format!("EC2 instance tag {tag}"));
        labels.insert(key, value.clone());
    }
    (labels, why)
}

/// The accelerator labels: `nvidia.com/gpu.present=true` when an NVIDIA GPU is on the PCI bus.
/// (nodeadm and the AMI set no label for AWS Neuron devices; neither does the agent.)
pub fn accelerator_labels(host: &HostFacts) -> BTreeMap<String, String> {
    let nvidia = host
        .accelerators
        .iter()
        .any(|a| a.kind == AcceleratorKind::Nvidia);
    if nvidia {
        BTreeMap::from([(NVIDIA_GPU_PRESENT.to_owned(), "true".to_owned())])
    } else {
        BTreeMap::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_restriction_rule() {
        for ok in [
            "team",
            "example.com/team",
            "node.kubernetes.io/lifecycle",
            "x.node.kubernetes.io/y",
            "kubelet.kubernetes.io/z",
            "topology.kubernetes.io/zone",
            "nvidia.com/gpu.present",
        ] {
            assert_eq!(kubelet_may_not_set(ok), None, "{ok}");
        }
        for refused in [
            "kubernetes.io/role",
            "node-role.kubernetes.io/worker",
            "node-restriction.kubernetes.io/pool",
            "k8s.io/x",
            "foo.k8s.io/x",
        ] {
            let why = kubelet_may_not_set(refused).expect(refused);
            assert!(why.contains("NodeRestriction"), "{why}");
        }
    }

    #[test]
    fn tags_under_the_prefix_become_labels_and_bad_ones_are_left_out() {
        let tags: BTreeMap<String, String> = [
            ("node.eks.aws:label:team", "payments"),
            ("node.eks.aws:label:example.com:tier", "gold"),
            ("node.eks.aws:label:node-role.kubernetes.io:worker", ""),
            ("node.eks.aws:label:bad:name:x", "v"),
            ("node.eks.aws:label:cost", "has space"),
            ("Name", "my-node"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let (labels, why) = from_tags(&tags, "node.eks.aws:label:");
        assert_eq!(
            labels.into_iter().collect::<Vec<_>>(),
            [
                ("example.com/tier".to_owned(), "gold".to_owned()),
                ("team".to_owned(), "payments".to_owned())
            ]
        );
        assert_eq!(why["team"], "EC2 instance tag node.eks.aws:label:team");
        assert!(invalid_label_key("Example.com/x").is_some());
        assert!(invalid_label_key(&"a".repeat(64)).is_some());
        assert_eq!(invalid_label_value(""), None);
    }
}
