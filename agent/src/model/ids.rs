//! Newtypes for identifiers, parsed once at the edge so inner code never re-checks them: EC2's
//! instance types, instance IDs and zones, EKS cluster names, Kubernetes node names and
//! provider IDs.

use std::fmt;
use std::str::FromStr;

use super::Invalid;

/// The text accessors, `Display`, `FromStr` and serde (as a string, checked by `parse` when
/// read) of a newtype over `String` with a `parse(&str) -> Result<Self, Invalid>`.
macro_rules! text_newtype {
    ($name:ident) => {
        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = Invalid;
            fn from_str(s: &str) -> Result<Self, Invalid> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_newtype!(InstanceType);
text_newtype!(InstanceId);
text_newtype!(AvailabilityZone);
text_newtype!(ClusterName);
text_newtype!(NodeName);

/// Longest instance type name accepted (the longest AWS name today has 19 characters).
const INSTANCE_TYPE_MAX_LEN: usize = 64;
/// Longest availability zone name accepted (local and wavelength zones are the long ones).
const AVAILABILITY_ZONE_MAX_LEN: usize = 64;

/// An EC2 instance type such as `m5.large`, `u-6tb1.metal` or `i7ie.metal-48xl`: a family and a
/// size of lowercase ASCII letters, digits and `-`, separated by one `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceType(String);

impl InstanceType {
    /// Parses and checks an instance type name.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let err = |reason| Invalid::InstanceType {
            value: value.to_owned(),
            reason,
        };
        if value.is_empty() {
            return Err(err("it is empty"));
        }
        if value.len() > INSTANCE_TYPE_MAX_LEN {
            return Err(err("it is too long"));
        }
        if value.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err("instance types are lowercase"));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(err(
                "only lowercase letters, digits, '-' and '.' are allowed",
            ));
        }
        let mut parts = value.split('.');
        let (Some(family), Some(size), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err("it needs exactly one '.' between family and size"));
        };
        let well_formed = |p: &str| !p.is_empty() && !p.starts_with('-') && !p.ends_with('-');
        if !well_formed(family) || !well_formed(size) {
            return Err(err(
                "family and size must be non-empty and not start or end with '-'",
            ));
        }
        Ok(InstanceType(value.to_owned()))
    }
}

/// An EC2 instance ID: `i-` and 8 (older) or 17 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceId(String);

impl InstanceId {
    /// Parses and checks an instance ID.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let ok = value.strip_prefix("i-").is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok {
            Ok(InstanceId(value.to_owned()))
        } else {
            Err(Invalid::InstanceId {
                value: value.to_owned(),
            })
        }
    }
}

/// An availability zone name such as `us-west-2a`, `us-west-2-lax-1a` or
/// `us-east-1-wl1-bos-wlz-1`: lowercase letters, digits and `-`, starting with a letter and
/// ending with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AvailabilityZone(String);

impl AvailabilityZone {
    /// Parses and checks a zone name.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let bytes = value.as_bytes();
        let ok = !value.is_empty()
            && value.len() <= AVAILABILITY_ZONE_MAX_LEN
            && bytes[0].is_ascii_lowercase()
            && bytes[bytes.len() - 1] != b'-'
            && value.contains('-')
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if ok {
            Ok(AvailabilityZone(value.to_owned()))
        } else {
            Err(Invalid::AvailabilityZone {
                value: value.to_owned(),
            })
        }
    }
}

/// Longest EKS cluster name.
pub const CLUSTER_NAME_MAX_LEN: usize = 100;
/// Longest Kubernetes node name (a DNS subdomain, RFC 1123).
pub const NODE_NAME_MAX_LEN: usize = 253;

/// An EKS cluster name: 1 to 100 characters, letters, digits, `-` and `_`, starting with a
/// letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterName(String);

impl ClusterName {
    /// Parses and checks a cluster name.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let ok = !value.is_empty()
            && value.len() <= CLUSTER_NAME_MAX_LEN
            && value.as_bytes()[0].is_ascii_alphanumeric()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(ClusterName(value.to_owned()))
        } else {
            Err(Invalid::ClusterName {
                value: value.to_owned(),
            })
        }
    }
}

/// A Kubernetes node name: a DNS subdomain (RFC 1123): at most 253 characters, lowercase
/// letters, digits, `-` and `.`, each label starting and ending with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

impl NodeName {
    /// Parses and checks a node name.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if value.len() <= NODE_NAME_MAX_LEN && value.split('.').all(label_ok) {
            Ok(NodeName(value.to_owned()))
        } else {
            Err(Invalid::NodeName {
                value: value.to_owned(),
            })
        }
    }
}

/// The kubelet's `providerID`, built from the node's identity (never parsed from the user).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ProviderId(String);

impl ProviderId {
    /// An EC2 instance: `aws:///<availability zone>/<instance id>`.
    pub fn ec2(zone: &AvailabilityZone, instance_id: &InstanceId) -> Self {
        ProviderId(format!("aws:///{zone}/{instance_id}"))
    }

    /// An EKS hybrid node: `eks-hybrid:///<region>/<cluster>/<node name>`.
    pub fn hybrid(region: &super::Region, cluster: &ClusterName, node: &NodeName) -> Self {
        ProviderId(format!("eks-hybrid:///{region}/{cluster}/{node}"))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_types_accept_real_names() {
        for name in [
            "m5.large",
            "u-6tb1.metal",
            "i7ie.metal-48xl",
            "c7i-flex.large",
            "u7in-16tb.224xlarge",
        ] {
            assert_eq!(InstanceType::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn instance_types_reject_malformed_names_with_the_reason() {
        for (name, reason) in [
            ("", "empty"),
            ("M5.large", "lowercase"),
            ("m5", "exactly one '.'"),
            ("m5.large.x", "exactly one '.'"),
            ("m5.", "non-empty"),
            ("-m5.large", "non-empty"),
            ("m5 .large", "only lowercase"),
            ("m5.large;rm", "only lowercase"),
        ] {
            let err = InstanceType::parse(name).unwrap_err().to_string();
            assert!(err.contains(reason), "{name:?}: {err}");
            assert!(
                err.contains("m5.large"),
                "the message shows a valid example: {err}"
            );
        }
        assert!(InstanceType::parse(&"a".repeat(70)).is_err());
    }

    #[test]
    fn instance_ids() {
        assert!(InstanceId::parse("i-0123456789abcdef0").is_ok());
        assert!(InstanceId::parse("i-12345678").is_ok());
        for bad in [
            "",
            "i-",
            "i-0123456789ABCDEF0",
            "x-0123456789abcdef0",
            "i-0123456789abcdef",
            "i-0123456789abcdefg",
        ] {
            assert!(InstanceId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cluster_and_node_names() {
        assert!(ClusterName::parse("my-cluster_1").is_ok());
        for bad in ["", "-bad", "a b", &"a".repeat(101)] {
            assert!(ClusterName::parse(bad).is_err(), "{bad}");
        }
        for good in [
            "ip-10-0-0-1.us-west-2.compute.internal",
            "mi-0123456789abcdef0",
            "node-7",
        ] {
            assert_eq!(NodeName::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "Node", "a..b", "-a", "a-", "a_b", &"a".repeat(254)] {
            assert!(NodeName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn newtypes_read_from_text_are_checked() {
        let ok: InstanceType = serde_yaml_ng::from_str("m5.large").unwrap();
        assert_eq!(ok.as_str(), "m5.large");
        let err = serde_yaml_ng::from_str::<InstanceType>("M5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lowercase"), "{err}");
    }

    #[test]
    fn availability_zones() {
        for good in [
            "us-west-2a",
            "us-west-2-lax-1a",
            "us-east-1-wl1-bos-wlz-1",
            "cn-north-1a",
        ] {
            assert!(AvailabilityZone::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "us-west-2a-", "2a", "US-WEST-2A", "us west", "uswest2a"] {
            assert!(AvailabilityZone::parse(bad).is_err(), "{bad}");
        }
    }
}
