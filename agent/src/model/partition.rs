//! Regions and partitions: which DNS suffix a region's endpoints use, and the regional STS host.

use super::Invalid;

/// An AWS partition: its name and the DNS suffix of its service endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// The partition id (`aws`, `aws-cn`, ...).
    pub id: &'static str,
    /// The DNS suffix of the partition's endpoints (`amazonaws.com`, ...).
    pub dns_suffix: &'static str,
    /// Region name prefixes that belong to this partition (checked longest first).
    pub region_prefixes: &'static [&'static str],
}

/// The partitions, most specific region prefixes first; `aws` is the fallback.
pub const PARTITIONS: &[Partition] = &[
    Partition {
        id: "aws-us-gov",
        dns_suffix: "amazonaws.com",
        region_prefixes: &["us-gov-"],
    },
    Partition {
        id: "aws-iso-b",
        dns_suffix: "sc2s.sgov.gov",
        region_prefixes: &["us-isob-"],
    },
    Partition {
        id: "aws-iso-e",
        dns_suffix: "cloud.adc-e.uk",
        region_prefixes: &["eu-isoe-"],
    },
    Partition {
        id: "aws-iso-f",
        dns_suffix: "csp.hci.ic.gov",
        region_prefixes: &["us-isof-"],
    },
    Partition {
        id: "aws-iso",
        dns_suffix: "c2s.ic.gov",
        region_prefixes: &["us-iso-"],
    },
    Partition {
        id: "aws-cn",
        dns_suffix: "amazonaws.com.cn",
        region_prefixes: &["cn-"],
    },
    Partition {
        id: "aws-eusc",
        dns_suffix: "amazonaws.eu",
        region_prefixes: &["eusc-"],
    },
    Partition {
        id: "aws",
        dns_suffix: "amazonaws.com",
        region_prefixes: &[""],
    },
];

/// The partition a region name belongs to (`aws` when no other prefix matches).
pub fn partition_of(region: &str) -> &'static Partition {
    PARTITIONS
        .iter()
        .find(|p| {
            p.region_prefixes
                .iter()
                .any(|prefix| region.starts_with(prefix))
        })
        .unwrap_or(&PARTITIONS[PARTITIONS.len() - 1])
}

/// A validated region name such as `us-west-2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Region(String);

impl Region {
    /// Parses a region name: lowercase letters and digits in dash-separated parts, ending in a
    /// number (`us-west-2`, `cn-north-1`, `us-gov-west-1`). `source_name` names where the value
    /// came from, for the error.
    pub fn parse(value: &str, source_name: &str) -> Result<Region, Invalid> {
        let parts: Vec<&str> = value.split('-').collect();
        let ok = parts.len() >= 3
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
            && parts[0].bytes().all(|b| b.is_ascii_lowercase())
            && parts
                .last()
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
        if ok {
            Ok(Region(value.to_owned()))
        } else {
            Err(Invalid::Region {
                source_name: source_name.to_owned(),
                value: value.to_owned(),
            })
        }
    }

    /// The region name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The partition this region belongs to.
    pub fn partition(&self) -> &'static Partition {
        partition_of(&self.0)
    }

    /// The regional STS host, e.g. `sts.us-west-2.amazonaws.com`.
    pub fn sts_host(&self) -> String {
        format!("sts.{}.{}", self.0, self.partition().dns_suffix)
    }

    /// The IAM Roles Anywhere host, e.g. `rolesanywhere.us-west-2.amazonaws.com`.
    pub fn rolesanywhere_host(&self) -> String {
        format!("rolesanywhere.{}.{}", self.0, self.partition().dns_suffix)
    }
}

impl serde::Serialize for Region {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Region {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Region::parse(&text, "region").map_err(serde::de::Error::custom)
    }
}

impl AsRef<str> for Region {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_hosts_follow_the_partition() {
        let host = |r: &str| Region::parse(r, "test").unwrap().sts_host();
        assert_eq!(host("us-west-2"), "sts.us-west-2.amazonaws.com");
        assert_eq!(host("cn-north-1"), "sts.cn-north-1.amazonaws.com.cn");
        assert_eq!(host("us-gov-west-1"), "sts.us-gov-west-1.amazonaws.com");
        assert_eq!(host("us-iso-east-1"), "sts.us-iso-east-1.c2s.ic.gov");
        assert_eq!(host("us-isob-east-1"), "sts.us-isob-east-1.sc2s.sgov.gov");
        assert_eq!(host("eu-isoe-west-1"), "sts.eu-isoe-west-1.cloud.adc-e.uk");
        assert_eq!(
            host("us-isof-south-1"),
            "sts.us-isof-south-1.csp.hci.ic.gov"
        );
        assert_eq!(host("eusc-de-east-1"), "sts.eusc-de-east-1.amazonaws.eu");
        assert_eq!(
            Region::parse("cn-northwest-1", "t").unwrap().partition().id,
            "aws-cn"
        );
    }

    #[test]
    fn bad_regions_are_rejected_with_the_source() {
        for bad in [
            "",
            "us-west",
            "US-WEST-2",
            "us_west_2",
            "us-west-2/../x",
            "us-west-2.evil.com",
            "1us-west-2",
        ] {
            let err = Region::parse(bad, "--region").unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("--region: invalid region"), "{text}");
        }
    }
}
