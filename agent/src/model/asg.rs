//! The Auto Scaling lifecycle state an instance is moving to, as IMDS serves it at
//! `autoscaling/target-lifecycle-state`: `init` reads it to hold a warm-pool instance out of
//! the cluster, the daemon's lifecycle watcher to drain before a scale-in.

use serde::{Deserialize, Serialize};

/// The values IMDS documents for `autoscaling/target-lifecycle-state`; serialized as IMDS
/// writes them (`Warmed:Stopped`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TargetLifecycleState {
    /// `InService`: the instance serves (after launch, or after leaving a warm pool).
    InService,
    /// `Terminated`: Auto Scaling is terminating the instance (scale-in, health, rebalance).
    Terminated,
    /// `Detached`: the instance leaves the group.
    Detached,
    /// `Standby`: the instance is put in standby.
    Standby,
    /// `Warmed:Stopped`, `Warmed:Running`, `Warmed:Hibernated`, `Warmed:Terminated`: the
    /// instance is (going) into the group's warm pool; the text after `Warmed:`.
    Warmed(String),
}

impl TargetLifecycleState {
    /// Parses the text IMDS serves (trimmed); an unknown value is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "InService" => Some(Self::InService),
            "Terminated" => Some(Self::Terminated),
            "Detached" => Some(Self::Detached),
            "Standby" => Some(Self::Standby),
            other => other
                .strip_prefix("Warmed:")
                .filter(|w| matches!(*w, "Stopped" | "Running" | "Hibernated" | "Terminated"))
                .map(|w| Self::Warmed(w.to_owned())),
        }
    }

    /// The value as IMDS writes it.
    pub fn as_text(&self) -> String {
        match self {
            Self::InService => "InService".into(),
            Self::Terminated => "Terminated".into(),
            Self::Detached => "Detached".into(),
            Self::Standby => "Standby".into(),
            Self::Warmed(w) => format!("Warmed:{w}"),
        }
    }

    /// Whether the instance is headed for the warm pool (it must not join the cluster yet).
    pub fn is_warmed(&self) -> bool {
        matches!(self, Self::Warmed(_))
    }
}

impl TryFrom<String> for TargetLifecycleState {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| {
            format!("{s:?} is not a target lifecycle state (InService, Terminated, Detached, Standby, Warmed:Stopped|Running|Hibernated|Terminated)")
        })
    }
}

impl From<TargetLifecycleState> for String {
    fn from(s: TargetLifecycleState) -> String {
        s.as_text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_value_and_nothing_else() {
        for v in [
            "InService",
            "Terminated",
            "Detached",
            "Standby",
            "Warmed:Stopped",
            "Warmed:Running",
            "Warmed:Hibernated",
            "Warmed:Terminated",
        ] {
            let s = TargetLifecycleState::parse(v).expect(v);
            assert_eq!(s.as_text(), v);
        }
        assert!(TargetLifecycleState::parse("Warmed:Stopped\n").is_some_and(|s| s.is_warmed()));
        assert_eq!(TargetLifecycleState::parse("Warmed:Pending"), None);
        assert_eq!(TargetLifecycleState::parse("inservice"), None);
        let yaml: TargetLifecycleState =
            serde_yaml_ng::from_str("Warmed:Hibernated").expect("yaml");
        assert_eq!(yaml.as_text(), "Warmed:Hibernated");
        assert!(serde_yaml_ng::from_str::<TargetLifecycleState>("Warm").is_err());
    }
}
