//! The IMDS documents the watchers read, parsed (pure, bounded): the spot instance action,
//! the rebalance recommendation, the scheduled maintenance events and the Auto Scaling target
//! lifecycle state; and what they mean for the node now ([`active_events`]).

use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use super::EventKind;
use crate::model::TargetLifecycleState;

/// `spot/instance-action`.
pub const SPOT_PATH: &str = "spot/instance-action";
/// `events/recommendations/rebalance`.
pub const REBALANCE_PATH: &str = "events/recommendations/rebalance";
/// `events/maintenance/scheduled`.
pub const SCHEDULED_PATH: &str = "events/maintenance/scheduled";
/// Largest document accepted from one of these paths.
pub const MAX_BODY: usize = 64 * 1024;
/// Most scheduled events looked at (an instance has a handful at most).
pub const MAX_SCHEDULED_EVENTS: usize = 100;

/// A document that is not what IMDS documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("IMDS {path}: {reason}")]
pub struct BadDocument {
    /// The meta-data path.
    pub path: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn bad(path: &'static str, reason: impl Into<String>) -> BadDocument {
    BadDocument {
        path,
        reason: reason.into(),
    }
}

fn json<'a, T: Deserialize<'a>>(path: &'static str, body: &'a [u8]) -> Result<T, BadDocument> {
    if body.len() > MAX_BODY {
        return Err(bad(
            path,
            format!("{} bytes, more than {MAX_BODY}", body.len()),
        ));
    }
    serde_json::from_slice(body).map_err(|e| bad(path, e.to_string()))
}

fn rfc3339(path: &'static str, s: &str) -> Result<OffsetDateTime, BadDocument> {
    OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|e| bad(path, format!("time {s:?}: {e}")))
}

/// The spot instance action: what EC2 will do and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotAction {
    /// `terminate`, `stop` or `hibernate`.
    pub action: String,
    /// When.
    pub time: OffsetDateTime,
}

/// Parses `spot/instance-action` (`{"action": "terminate", "time": "2026-...Z"}`).
pub fn parse_spot(body: &[u8]) -> Result<SpotAction, BadDocument> {
    #[derive(Deserialize)]
    struct Doc {
        action: String,
        time: String,
    }
    let d: Doc = json(SPOT_PATH, body)?;
    if !matches!(d.action.as_str(), "terminate" | "stop" | "hibernate") {
        return Err(bad(SPOT_PATH, format!("unknown action {:?}", d.action)));
    }
    Ok(SpotAction {
        time: rfc3339(SPOT_PATH, &d.time)?,
        action: d.action,
    })
}

/// Parses `events/recommendations/rebalance` (`{"noticeTime": "2026-...Z"}`).
pub fn parse_rebalance(body: &[u8]) -> Result<OffsetDateTime, BadDocument> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Doc {
        notice_time: String,
    }
    let d: Doc = json(REBALANCE_PATH, body)?;
    rfc3339(REBALANCE_PATH, &d.notice_time)
}

/// The state of a scheduled event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduledState {
    /// Still to happen (or happening).
    Active,
    /// Done.
    Completed,
    /// Called off.
    Canceled,
}

/// One scheduled maintenance event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledEvent {
    /// `EventId`, e.g. `instance-event-0d59937288b749b32`.
    pub id: String,
    /// `Code`: `instance-reboot`, `system-reboot`, `system-maintenance`,
    /// `instance-retirement`, `instance-stop`.
    pub code: String,
    /// `Description`.
    pub description: String,
    /// `NotBefore`: the earliest start.
    pub not_before: OffsetDateTime,
    /// `State`.
    pub state: ScheduledState,
}

/// The date format of scheduled events: `21 Jan 2019 09:00:43 GMT`.
fn scheduled_time(s: &str) -> Result<OffsetDateTime, BadDocument> {
    let format = time::macros::format_description!(
        "[day padding:none] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s.trim(), &format)
        .map(time::PrimitiveDateTime::assume_utc)
        .map_err(|e| bad(SCHEDULED_PATH, format!("time {s:?}: {e}")))
}

/// Parses `events/maintenance/scheduled`: a JSON list of events.
pub fn parse_scheduled(body: &[u8]) -> Result<Vec<ScheduledEvent>, BadDocument> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Doc {
        event_id: String,
        code: String,
        #[serde(default)]
        description: String,
        not_before: String,
        state: String,
    }
    let docs: Vec<Doc> = json(SCHEDULED_PATH, body)?;
    if docs.len() > MAX_SCHEDULED_EVENTS {
        return Err(bad(
            SCHEDULED_PATH,
            format!("{} events, more than {MAX_SCHEDULED_EVENTS}", docs.len()),
        ));
    }
    docs.into_iter()
        .map(|d| {
            let state = match d.state.as_str() {
                "active" => ScheduledState::Active,
                "completed" => ScheduledState::Completed,
                "canceled" => ScheduledState::Canceled,
                other => return Err(bad(SCHEDULED_PATH, format!("unknown State {other:?}"))),
            };
            Ok(ScheduledEvent {
                not_before: scheduled_time(&d.not_before)?,
                id: d.event_id,
                code: d.code,
                description: d.description,
                state,
            })
        })
        .collect()
}

/// What the last successful read of each path found (`None`: 404, nothing announced).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The spot instance action.
    pub spot: Option<Option<SpotAction>>,
    /// The rebalance recommendation's notice time.
    pub rebalance: Option<Option<OffsetDateTime>>,
    /// The scheduled events.
    pub scheduled: Option<Vec<ScheduledEvent>>,
    /// The Auto Scaling target lifecycle state.
    pub target_state: Option<Option<TargetLifecycleState>>,
}

/// One event the node must act on now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// The kind.
    pub kind: EventKind,
    /// Its identity, stable across reads and restarts.
    pub id: String,
    /// When the instance goes away (`None`: the event has no time).
    pub deadline: Option<OffsetDateTime>,
    /// One line for logs and the Kubernetes Event.
    pub summary: String,
}

impl Active {
    /// `kind:id`, the key of the persisted state.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.id)
    }
}

/// What the node should act on at `now`, and which of its known events ended (by key). Only
/// paths read successfully count: an unread path neither starts nor ends anything.
pub fn active_events(
    seen: &Observed,
    now: OffsetDateTime,
    window: Duration,
) -> (Vec<Active>, Vec<String>) {
    let mut active = Vec::new();
    let mut ended = Vec::new();
    if let Some(Some(a)) = &seen.spot {
        active.push(Active {
            kind: EventKind::SpotInterruption,
            id: crate::model::text::rfc3339(a.time),
            deadline: Some(a.time),
            summary: format!(
                "EC2 will {} this spot instance at {}",
                a.action,
                crate::model::text::rfc3339(a.time)
            ),
        });
    }
    if let Some(Some(t)) = &seen.rebalance {
        active.push(Active {
            kind: EventKind::RebalanceRecommendation,
            id: crate::model::text::rfc3339(*t),
            deadline: None,
            summary: format!(
                "EC2 recommends rebalancing this spot instance (notice {})",
                crate::model::text::rfc3339(*t)
            ),
        });
    }
    for e in seen.scheduled.iter().flatten() {
        let key = format!("{}:{}", EventKind::ScheduledMaintenance.as_str(), e.id);
        match e.state {
            ScheduledState::Active if e.not_before - now <= window => active.push(Active {
                kind: EventKind::ScheduledMaintenance,
                id: e.id.clone(),
                deadline: Some(e.not_before),
                summary: format!(
                    "EC2 scheduled {} ({}) from {}",
                    e.code,
                    e.description,
                    crate::model::text::rfc3339(e.not_before)
                ),
            }),
            ScheduledState::Active => {}
            ScheduledState::Completed | ScheduledState::Canceled => ended.push(key),
        }
    }
    if let Some(Some(TargetLifecycleState::Terminated)) = &seen.target_state {
        active.push(Active {
            kind: EventKind::AsgTermination,
            id: "Terminated".into(),
            deadline: None,
            summary:
                "Auto Scaling is terminating this instance (target lifecycle state Terminated)"
                    .into(),
        });
    }
    (active, ended)
}

/// Whether the path of `kind` was read successfully and announces nothing of it now: a known
/// event of that kind that is not in `active` has ended (the notice went away).
pub fn path_read(seen: &Observed, kind: EventKind) -> bool {
    match kind {
        EventKind::SpotInterruption => seen.spot.is_some(),
        EventKind::RebalanceRecommendation => seen.rebalance.is_some(),
        EventKind::ScheduledMaintenance => seen.scheduled.is_some(),
        EventKind::AsgTermination => seen.target_state.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).expect("time")
    }

    #[test]
    fn documented_shapes_parse() {
        let a = parse_spot(br#"{"action": "terminate", "time": "2026-12-06T08:22:00Z"}"#)
            .expect("spot");
        assert_eq!(a.action, "terminate");
        assert_eq!(a.time, t("2026-12-06T08:22:00Z"));
        assert!(parse_spot(br#"{"action": "explode", "time": "2026-12-06T08:22:00Z"}"#).is_err());
        assert_eq!(
            parse_rebalance(br#"{"noticeTime": "2026-12-06T08:20:00Z"}"#).expect("rebalance"),
            t("2026-12-06T08:20:00Z")
        );
        let s = parse_scheduled(
            br#"[{"NotBefore": "21 Jan 2027 09:00:43 GMT", "Code": "system-reboot", "Description": "scheduled reboot",
                 "EventId": "instance-event-0d59937288b749b32", "NotAfter": "21 Jan 2027 09:17:23 GMT", "State": "active"},
                {"NotBefore": "2 Feb 2027 10:00:00 GMT", "Code": "instance-stop", "EventId": "instance-event-1",
                 "State": "canceled"}]"#,
        )
        .expect("scheduled");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].not_before, t("2027-01-21T09:00:43Z"));
        assert_eq!(s[1].state, ScheduledState::Canceled);
        assert_eq!(parse_scheduled(b"[]").expect("empty"), vec![]);
        assert!(parse_scheduled(&vec![b' '; MAX_BODY + 1]).is_err());
    }

    #[test]
    fn the_window_decides_when_a_scheduled_event_starts_and_cancel_ends_it() {
        let now = t("2027-01-21T07:00:43Z");
        let event = |state| ScheduledEvent {
            id: "e1".into(),
            code: "system-reboot".into(),
            description: String::new(),
            not_before: t("2027-01-21T09:00:43Z"),
            state,
        };
        let seen = Observed {
            scheduled: Some(vec![event(ScheduledState::Active)]),
            ..Observed::default()
        };
        let (a, _) = active_events(&seen, now, Duration::from_secs(3600));
        assert!(a.is_empty(), "two hours ahead is outside a one-hour window");
        let (a, _) = active_events(&seen, now, Duration::from_secs(2 * 3600));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].deadline, Some(t("2027-01-21T09:00:43Z")));
        let seen = Observed {
            scheduled: Some(vec![event(ScheduledState::Canceled)]),
            ..Observed::default()
        };
        let (a, ended) = active_events(&seen, now, Duration::from_secs(2 * 3600));
        assert!(a.is_empty());
        assert_eq!(ended, vec!["scheduled-maintenance:e1".to_owned()]);
    }

    #[test]
    fn spot_and_asg_are_active_with_their_deadlines() {
        let seen = Observed {
            spot: Some(Some(SpotAction {
                action: "stop".into(),
                time: t("2026-12-06T08:22:00Z"),
            })),
            target_state: Some(Some(TargetLifecycleState::Terminated)),
            ..Observed::default()
        };
        let (a, _) = active_events(&seen, t("2026-12-06T08:20:00Z"), Duration::ZERO);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].key(), "spot-interruption:2026-12-06T08:22:00Z");
        assert_eq!(a[1].kind, EventKind::AsgTermination);
        assert!(path_read(&seen, EventKind::SpotInterruption));
        assert!(!path_read(&seen, EventKind::RebalanceRecommendation));
    }
}
