//! Newtypes for EC2 identifiers, parsed once at the edge so inner code never re-checks them.

use std::fmt;
use std::str::FromStr;

use super::Error;

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
    pub fn parse(value: &str) -> Result<Self, Error> {
        let err = |reason| Error::InvalidInstanceType {
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

    /// The name, e.g. `m5.large`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InstanceType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for InstanceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An EC2 instance ID: `i-` and 8 (older) or 17 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceId(String);

impl InstanceId {
    /// Parses and checks an instance ID.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let ok = value.strip_prefix("i-").is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok {
            Ok(InstanceId(value.to_owned()))
        } else {
            Err(Error::InvalidInstanceId {
                value: value.to_owned(),
            })
        }
    }

    /// The ID, e.g. `i-0123456789abcdef0`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InstanceId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An availability zone name such as `us-west-2a`, `us-west-2-lax-1a` or
/// `us-east-1-wl1-bos-wlz-1`: lowercase letters, digits and `-`, starting with a letter and
/// ending with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AvailabilityZone(String);

impl AvailabilityZone {
    /// Parses and checks a zone name.
    pub fn parse(value: &str) -> Result<Self, Error> {
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
            Err(Error::InvalidAvailabilityZone {
                value: value.to_owned(),
            })
        }
    }

    /// The zone name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AvailabilityZone {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for AvailabilityZone {
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
