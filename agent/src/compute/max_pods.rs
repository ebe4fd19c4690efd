//! Max pods: how many pods the VPC CNI can give an IP address on an instance type, the way
//! `max-pods-calculator.sh` of the EKS AMI computes it, plus nodeadm's `maxPodsExpression` and
//! the precedence of a user-set `maxPods`.
//!
//! The rules, as the script applies them:
//! * ENIs for pods: the default network card's `MaximumNetworkInterfaces`, lowered to the CNI's
//!   max-ENI limit when one is set, minus one with custom networking (the primary ENI then
//!   carries no pods).
//! * Secondary-IP mode: `ENIs * (IPs per ENI - 1) + 2` (the first IP of each ENI is the ENI's
//!   own; the +2 are the host-network pods of the CNI and kube-proxy).
//! * Prefix delegation, only when asked for, on the Nitro hypervisor, with VPC CNI >= 1.9.0:
//!   `ENIs * ((IPs per ENI - 1) * 16) + 2`. Otherwise the script silently uses secondary IPs,
//!   and so do we.
//! * The ceiling: 110 pods on types with at most 30 vCPUs, 250 above, applied to the result of
//!   either mode, unless `--show-max-allowed` asks for the uncapped value.

use std::fmt;
use std::str::FromStr;

use super::Error;
use crate::model::{Hypervisor, InstanceLimits};

/// The ceiling for types with at most [`MAX_PODS_CEILING_VCPU_THRESHOLD`] vCPUs.
pub const MAX_PODS_CEILING_LOW_CPU: u32 = 110;
/// The ceiling for types with more vCPUs.
pub const MAX_PODS_CEILING_HIGH_CPU: u32 = 250;
/// Above this many vCPUs the high ceiling applies.
pub const MAX_PODS_CEILING_VCPU_THRESHOLD: u32 = 30;
/// IPv4 addresses in one delegated /28 prefix.
const IPS_PER_PREFIX: u32 = 16;
/// Pods on the host network that need no pod IP (the VPC CNI and kube-proxy).
const HOST_NETWORK_PODS: u32 = 2;
/// The first VPC CNI minor version (of major 1) with prefix delegation.
const PREFIX_DELEGATION_MIN_CNI_MINOR: u32 = 9;

/// A VPC CNI version. Only major and minor matter to max pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CniVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl CniVersion {
    /// Parses `MAJOR.MINOR[.PATCH[-SUFFIX]]` with an optional leading `v`, e.g. `1.7.5`,
    /// `v1.18.3-eksbuild.1`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let err = || Error::InvalidCniVersion {
            value: value.to_owned(),
        };
        let text = value.strip_prefix('v').unwrap_or(value);
        let mut parts = text.splitn(3, '.');
        let number = |p: Option<&str>| {
            p.filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u32>().ok())
        };
        let major = number(parts.next()).ok_or_else(err)?;
        let minor = number(parts.next()).ok_or_else(err)?;
        if let Some(rest) = parts.next() {
            let patch = rest.split(['-', '+']).next().unwrap_or_default();
            if number(Some(patch)).is_none() {
                return Err(err());
            }
        }
        Ok(CniVersion { major, minor })
    }

    /// Whether this CNI can delegate prefixes: 1.9.0 and later (the script's "major > 1, or
    /// major 1 and minor > 8").
    pub fn supports_prefix_delegation(self) -> bool {
        self.major > 1 || (self.major == 1 && self.minor >= PREFIX_DELEGATION_MIN_CNI_MINOR)
    }
}

impl FromStr for CniVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// How the VPC CNI is set up, as far as max pods cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPodsOptions {
    /// `ENABLE_PREFIX_DELEGATION=true`.
    pub prefix_delegation: bool,
    /// `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true`.
    pub custom_networking: bool,
    /// The CNI's `MAX_ENI` limit, if any.
    pub cni_max_enis: Option<u32>,
    /// The CNI version; `None` means a current CNI (prefix delegation available).
    pub cni_version: Option<CniVersion>,
    /// Apply the 110/250 ceiling (`false` is the script's `--show-max-allowed`).
    pub apply_ceiling: bool,
}

impl Default for MaxPodsOptions {
    fn default() -> Self {
        MaxPodsOptions {
            prefix_delegation: false,
            custom_networking: false,
            cni_max_enis: None,
            cni_version: None,
            apply_ceiling: true,
        }
    }
}

/// How pods get their IPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PodIpMode {
    /// One secondary IP per pod.
    SecondaryIp,
    /// /28 prefixes delegated to the ENIs.
    PrefixDelegation,
}

/// The computed max pods and how it came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaxPods {
    /// The value to use: `uncapped`, lowered to `ceiling` when there is one.
    pub value: u32,
    /// What the ENIs allow.
    pub uncapped: u32,
    /// The ceiling that was applied, if any.
    pub ceiling: Option<u32>,
    /// ENIs that carry pods.
    pub enis_for_pods: u32,
    /// The mode used (prefix delegation falls back to secondary IPs where unsupported).
    pub mode: PodIpMode,
}

/// The standard secondary-IP max pods, `ENIs * (IPs - 1) + 2` over the default card: the
/// value AWS publishes in `eni-max-pods.txt` and nodeadm's `max_pods` CEL variable.
pub fn standard_max_pods(limits: &InstanceLimits) -> u32 {
    secondary_ip_pods(limits.default_card_max_enis, limits.ipv4_per_eni)
}

fn secondary_ip_pods(enis: u32, ips_per_eni: u32) -> u32 {
    enis.saturating_mul(ips_per_eni.saturating_sub(1))
        .saturating_add(HOST_NETWORK_PODS)
}

fn prefix_delegation_pods(enis: u32, ips_per_eni: u32) -> u32 {
    enis.saturating_mul(ips_per_eni.saturating_sub(1).saturating_mul(IPS_PER_PREFIX))
        .saturating_add(HOST_NETWORK_PODS)
}

/// The script's ceiling for an instance with `vcpus` vCPUs.
pub fn ceiling_for(vcpus: u32) -> u32 {
    if vcpus > MAX_PODS_CEILING_VCPU_THRESHOLD {
        MAX_PODS_CEILING_HIGH_CPU
    } else {
        MAX_PODS_CEILING_LOW_CPU
    }
}

/// Max pods for an instance type and CNI setup, as `max-pods-calculator.sh` computes it.
pub fn max_pods(limits: &InstanceLimits, options: &MaxPodsOptions) -> MaxPods {
    let mut enis = limits.default_card_max_enis;
    if let Some(limit) = options.cni_max_enis {
        enis = enis.min(limit);
    }
    if options.custom_networking {
        enis = enis.saturating_sub(1);
    }
    let cni_supports_prefixes = options
        .cni_version
        .is_none_or(CniVersion::supports_prefix_delegation);
    let mode = if options.prefix_delegation
        && limits.hypervisor == Hypervisor::Nitro
        && cni_supports_prefixes
    {
        PodIpMode::PrefixDelegation
    } else {
        PodIpMode::SecondaryIp
    };
    let uncapped = match mode {
        PodIpMode::SecondaryIp => secondary_ip_pods(enis, limits.ipv4_per_eni),
        PodIpMode::PrefixDelegation => prefix_delegation_pods(enis, limits.ipv4_per_eni),
    };
    let ceiling = options.apply_ceiling.then(|| ceiling_for(limits.vcpus));
    MaxPods {
        value: ceiling.map_or(uncapped, |c| uncapped.min(c)),
        uncapped,
        ceiling,
        enis_for_pods: enis,
        mode,
    }
}

pub use crate::config::expression::MaxPodsExpression;

/// Evaluation; compiling and type-checking are `config::expression`'s, so that `config check`
/// refuses an expression before `init` makes any network call.
impl MaxPodsExpression {
    /// Compiles and type-checks the expression ([`MaxPodsExpression::compile`]).
    pub fn parse(source: &str) -> Result<Self, Error> {
        Ok(Self::compile(source)?)
    }

    /// Evaluates the expression for an instance type. It must yield an int (or uint) from 1 to
    /// 2^31-1, kubelet's range for maxPods.
    pub fn evaluate(&self, limits: &InstanceLimits) -> Result<u32, Error> {
        let fail = |reason: String| Error::ExpressionValue {
            expression: self.as_str().to_owned(),
            reason,
        };
        let [default_enis, ips_per_eni, max_pods] = crate::config::expression::VARIABLES;
        let mut context = cel::Context::default();
        context.add_variable_from_value(default_enis, i64::from(limits.default_card_max_enis));
        context.add_variable_from_value(ips_per_eni, i64::from(limits.ipv4_per_eni));
        context.add_variable_from_value(max_pods, i64::from(standard_max_pods(limits)));
        let value = self
            .program()
            .execute(&context)
            .map_err(|e| fail(format!("failed to evaluate: {e}")))?;
        let number: i128 = match value {
            cel::Value::Int(n) => n.into(),
            cel::Value::UInt(n) => n.into(),
            other => {
                return Err(fail(format!(
                    "yields a {} ({other:?}), but maxPods needs an int",
                    other.type_of()
                )));
            }
        };
        match u32::try_from(number) {
            Ok(n) if n >= 1 && i32::try_from(n).is_ok() => Ok(n),
            _ => Err(fail(format!(
                "yields {number}, but maxPods must be from 1 to {}",
                i32::MAX
            ))),
        }
    }
}

/// Where the effective max pods came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaxPodsSource {
    /// `kubelet.config.maxPods` set by the user.
    User,
    /// `kubelet.maxPodsExpression`.
    Expression,
    /// Computed from the instance type.
    Computed,
}

/// The max pods the kubelet gets, and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EffectiveMaxPods {
    /// The value.
    pub value: u32,
    /// Where it came from.
    pub source: MaxPodsSource,
}

/// The max pods the kubelet gets: a user-set `maxPods` always wins, then the expression, then
/// the computed value.
pub fn effective_max_pods(
    user_max_pods: Option<u32>,
    expression: Option<&MaxPodsExpression>,
    limits: &InstanceLimits,
    options: &MaxPodsOptions,
) -> Result<EffectiveMaxPods, Error> {
    if let Some(value) = user_max_pods {
        return Ok(EffectiveMaxPods {
            value,
            source: MaxPodsSource::User,
        });
    }
    if let Some(expression) = expression {
        let value = expression.evaluate(limits)?;
        return Ok(EffectiveMaxPods {
            value,
            source: MaxPodsSource::Expression,
        });
    }
    Ok(EffectiveMaxPods {
        value: max_pods(limits, options).value,
        source: MaxPodsSource::Computed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(enis: u32, ips: u32, hypervisor: Hypervisor, vcpus: u32) -> InstanceLimits {
        InstanceLimits {
            default_card_max_enis: enis,
            ipv4_per_eni: ips,
            hypervisor,
            vcpus,
            network_cards: 1,
            bare_metal: hypervisor == Hypervisor::None,
        }
    }
    const M5_LARGE: InstanceLimits = InstanceLimits {
        default_card_max_enis: 3,
        ipv4_per_eni: 10,
        hypervisor: Hypervisor::Nitro,
        vcpus: 2,
        network_cards: 1,
        bare_metal: false,
    };
    fn v(s: &str) -> Option<CniVersion> {
        Some(CniVersion::parse(s).unwrap())
    }

    #[test]
    fn secondary_ip_mode_with_the_ceiling() {
        let opts = MaxPodsOptions::default();
        assert_eq!(max_pods(&M5_LARGE, &opts).value, 29);
        // m5.8xlarge: 8 ENIs x 30 IPs, 32 vCPUs -> 234, under the 250 ceiling.
        assert_eq!(
            max_pods(&limits(8, 30, Hypervisor::Nitro, 32), &opts).value,
            234
        );
        // m5.4xlarge: same ENIs but 16 vCPUs -> 234 capped at 110.
        let m = max_pods(&limits(8, 30, Hypervisor::Nitro, 16), &opts);
        assert_eq!((m.value, m.uncapped, m.ceiling), (110, 234, Some(110)));
        // Exactly 30 vCPUs is still "low".
        assert_eq!(
            max_pods(&limits(15, 50, Hypervisor::Nitro, 30), &opts).value,
            110
        );
        assert_eq!(
            max_pods(&limits(15, 50, Hypervisor::Nitro, 31), &opts).value,
            250
        );
    }

    #[test]
    fn show_max_allowed_skips_the_ceiling() {
        let opts = MaxPodsOptions {
            apply_ceiling: false,
            ..Default::default()
        };
        let m = max_pods(&limits(15, 50, Hypervisor::Nitro, 96), &opts);
        assert_eq!((m.value, m.ceiling), (737, None));
    }

    #[test]
    fn prefix_delegation_needs_nitro_and_cni_1_9() {
        let pd = MaxPodsOptions {
            prefix_delegation: true,
            apply_ceiling: false,
            ..Default::default()
        };
        let m = max_pods(&M5_LARGE, &pd);
        assert_eq!(
            (m.value, m.mode),
            (3 * 9 * 16 + 2, PodIpMode::PrefixDelegation)
        );
        assert_eq!(
            max_pods(
                &M5_LARGE,
                &MaxPodsOptions {
                    apply_ceiling: true,
                    ..pd
                }
            )
            .value,
            110
        );
        // Old CNI: the script falls back to secondary IPs.
        for old in ["1.8.0", "1.7.5", "0.9.0"] {
            let m = max_pods(
                &M5_LARGE,
                &MaxPodsOptions {
                    cni_version: v(old),
                    ..pd
                },
            );
            assert_eq!((m.value, m.mode), (29, PodIpMode::SecondaryIp), "{old}");
        }
        for new in ["1.9.0", "v1.18.3-eksbuild.1", "2.0.0", "1.10"] {
            let m = max_pods(
                &M5_LARGE,
                &MaxPodsOptions {
                    cni_version: v(new),
                    ..pd
                },
            );
            assert_eq!(m.mode, PodIpMode::PrefixDelegation, "{new}");
        }
        // Xen and bare metal (no hypervisor): secondary IPs, as the script does.
        for hv in [Hypervisor::Xen, Hypervisor::None] {
            let m = max_pods(&limits(3, 10, hv, 2), &pd);
            assert_eq!((m.value, m.mode), (29, PodIpMode::SecondaryIp), "{hv:?}");
        }
    }

    #[test]
    fn custom_networking_and_max_eni() {
        let opts = MaxPodsOptions {
            custom_networking: true,
            ..Default::default()
        };
        let m = max_pods(&M5_LARGE, &opts);
        assert_eq!((m.value, m.enis_for_pods), (2 * 9 + 2, 2));
        let opts = MaxPodsOptions {
            cni_max_enis: Some(1),
            ..Default::default()
        };
        assert_eq!(max_pods(&M5_LARGE, &opts).value, 11);
        // A limit above the card's ENIs changes nothing.
        let opts = MaxPodsOptions {
            cni_max_enis: Some(100),
            ..Default::default()
        };
        assert_eq!(max_pods(&M5_LARGE, &opts).value, 29);
        // Limit first, then custom networking: min(2, 3) - 1 = 1 ENI.
        let opts = MaxPodsOptions {
            cni_max_enis: Some(2),
            custom_networking: true,
            ..Default::default()
        };
        assert_eq!(max_pods(&M5_LARGE, &opts).value, 11);
        // One ENI and custom networking: only the host-network pods.
        let opts = MaxPodsOptions {
            custom_networking: true,
            ..Default::default()
        };
        assert_eq!(max_pods(&limits(1, 2, Hypervisor::Xen, 1), &opts).value, 2);
    }

    #[test]
    fn cni_versions() {
        assert_eq!(
            CniVersion::parse("1.7.5").unwrap(),
            CniVersion { major: 1, minor: 7 }
        );
        assert_eq!(
            CniVersion::parse("v1.18.3-eksbuild.1").unwrap(),
            CniVersion {
                major: 1,
                minor: 18
            }
        );
        assert_eq!(
            CniVersion::parse("1.9").unwrap(),
            CniVersion { major: 1, minor: 9 }
        );
        for bad in [
            "", "1", "v", "1.x.0", "one.two", "1..2", "1.9.x", "-1.9.0", " 1.9.0",
        ] {
            let err = CniVersion::parse(bad).unwrap_err().to_string();
            assert!(err.contains("MAJOR.MINOR"), "{bad:?}: {err}");
        }
        assert!(
            !CniVersion::parse("1.8.99")
                .unwrap()
                .supports_prefix_delegation()
        );
        assert!(
            CniVersion::parse("1.9.0")
                .unwrap()
                .supports_prefix_delegation()
        );
    }

    #[test]
    fn expressions_see_the_nodeadm_variables() {
        let t3_medium = limits(3, 6, Hypervisor::Nitro, 2);
        let eval = |e: &str| MaxPodsExpression::parse(e).unwrap().evaluate(&t3_medium);
        assert_eq!(eval("417").unwrap(), 417);
        assert_eq!(eval("(default_enis * (ips_per_eni - 1)) + 2").unwrap(), 17);
        assert_eq!(eval("max_pods").unwrap(), 17);
        assert_eq!(
            eval("((default_enis - 1) * (ips_per_eni - 1)) + 2").unwrap(),
            12
        );
        assert_eq!(eval("max_pods > 100 ? 100 : max_pods * 2").unwrap(), 34);
        assert_eq!(eval("20u").unwrap(), 20);
    }

    #[test]
    fn expression_errors_name_the_expression_and_the_problem() {
        let t = limits(3, 6, Hypervisor::Nitro, 2);
        let err = MaxPodsExpression::parse("max_pods +")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"max_pods +\"") && err.contains("not a valid CEL"),
            "{err}"
        );
        let err = MaxPodsExpression::parse("  ").unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        // Types and names are checked when compiling (config::expression); values when
        // evaluating for an instance type.
        for (expr, want) in [
            ("'110'", "yields a string"),
            ("nope + 1", "unknown variable"),
        ] {
            let err = MaxPodsExpression::parse(expr).unwrap_err().to_string();
            assert!(err.contains(want), "{expr}: {err}");
        }
        let cases = [
            ("0", "must be from 1"),
            ("max_pods - 100", "yields -83"),
            ("3000000000", "must be from 1 to 2147483647"),
            ("max_pods / 0", "failed to evaluate"),
        ];
        for (expr, want) in cases {
            let err = MaxPodsExpression::parse(expr)
                .unwrap()
                .evaluate(&t)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{expr}: {err}");
            assert!(err.contains(&format!("{expr:?}")), "{expr}: {err}");
        }
    }

    #[test]
    fn user_max_pods_wins_then_the_expression_then_the_computed_value() {
        let expr = MaxPodsExpression::parse("max_pods + 1").unwrap();
        let opts = MaxPodsOptions::default();
        let e = effective_max_pods(Some(7), Some(&expr), &M5_LARGE, &opts).unwrap();
        assert_eq!((e.value, e.source), (7, MaxPodsSource::User));
        let e = effective_max_pods(None, Some(&expr), &M5_LARGE, &opts).unwrap();
        assert_eq!((e.value, e.source), (30, MaxPodsSource::Expression));
        let e = effective_max_pods(None, None, &M5_LARGE, &opts).unwrap();
        assert_eq!((e.value, e.source), (29, MaxPodsSource::Computed));
        // A user-set value is used even when the expression would fail.
        let bad = MaxPodsExpression::parse("max_pods / 0").unwrap();
        assert!(effective_max_pods(Some(5), Some(&bad), &M5_LARGE, &opts).is_ok());
        assert!(effective_max_pods(None, Some(&bad), &M5_LARGE, &opts).is_err());
    }

    #[test]
    fn compiled_expressions_can_cross_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MaxPodsExpression>();
    }
}
