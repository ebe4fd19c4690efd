//! An emulator of the Amazon EC2 Auto Scaling API's lifecycle-hook calls, named as an emulator:
//! moto 5.2.5 implements DescribeLifecycleHooks but not CompleteLifecycleAction or
//! RecordLifecycleActionHeartbeat. Real HTTP on 127.0.0.1, following the published protocol
//! (AWS Query, API version 2011-01-01, botocore's `autoscaling/2011-01-01/service-2.json`):
//!
//! - `POST /` with `application/x-www-form-urlencoded` `Action=...&Version=2011-01-01&...`;
//!   lists as `Name.member.N`. Answers are XML in the
//!   `http://autoscaling.amazonaws.com/doc/2011-01-01/` namespace with `ResponseMetadata`;
//!   errors are `<ErrorResponse><Error><Type>Sender</Type><Code>..</Code><Message>..`
//!   (HTTP 400), e.g. `ValidationError`, `InvalidAction`.
//! - SigV4 for service `autoscaling`, verified by botocore (`crate::sigv4_verify`).
//! - DescribeAutoScalingInstances, DescribeLifecycleHooks, RecordLifecycleActionHeartbeat and
//!   CompleteLifecycleAction. A lifecycle action exists per (group, hook, instance) once
//!   [`AutoScalingEmulator::terminate`] starts a scale-in: the instance is
//!   `Terminating:Wait` until every termination hook is completed, then
//!   `Terminating:Proceed`. The action is named by `InstanceId` or `LifecycleActionToken`;
//!   none active gives AWS's `ValidationError` "No active Lifecycle Action found with
//!   instance ID ...". `LifecycleActionResult` must be CONTINUE or ABANDON.
//!
//! Every call is recorded with its parameters, its result and whether botocore agreed with the
//! signature; a test's own botocore client checks the response shapes.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

pub use crate::sigv4_verify::Keys;

const XMLNS: &str = "http://autoscaling.amazonaws.com/doc/2011-01-01/";
const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";

/// One call as the emulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `Action`.
    pub action: String,
    /// Every other form parameter.
    pub params: BTreeMap<String, String>,
    /// HTTP status answered.
    pub status: u16,
    /// The error code, empty on success.
    pub code: String,
    /// Whether botocore agreed with the signature.
    pub signature_verified: bool,
    /// When it arrived.
    pub at: std::time::SystemTime,
}

/// A lifecycle hook.
#[derive(Debug, Clone)]
pub struct Hook {
    /// Name.
    pub name: String,
    /// `autoscaling:EC2_INSTANCE_TERMINATING` or `..._LAUNCHING`.
    pub transition: String,
    /// Seconds.
    pub heartbeat_timeout: u64,
}

#[derive(Debug, Clone)]
struct Action {
    token: String,
    completed: Option<String>,
    heartbeats: u32,
}

#[derive(Debug, Default)]
struct State {
    /// group -> (instance -> lifecycle state).
    instances: BTreeMap<String, BTreeMap<String, String>>,
    hooks: BTreeMap<String, Vec<Hook>>,
    /// (group, hook, instance) -> action.
    actions: BTreeMap<(String, String, String), Action>,
    recorded: Vec<Recorded>,
}

type Shared = crate::sigv4_verify::Shared<State>;

/// The running emulator; stops on drop.
#[derive(Debug)]
pub struct AutoScalingEmulator {
    inner: crate::sigv4_verify::Emulator<State>,
}

impl AutoScalingEmulator {
    /// Starts on a free loopback port for `region`, accepting `keys`.
    pub fn start(region: &str, keys: Keys) -> AutoScalingEmulator {
        AutoScalingEmulator {
            inner: crate::sigv4_verify::Emulator::start(
                "autoscaling-emulator",
                region,
                keys,
                handle,
            ),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.inner.addr())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.shared().lock()
    }

    /// Creates a group with an InService instance and lifecycle hooks.
    pub fn add_group(&self, group: &str, instance_id: &str, hooks: Vec<Hook>) {
        let mut s = self.state();
        s.instances
            .entry(group.to_owned())
            .or_default()
            .insert(instance_id.to_owned(), "InService".into());
        s.hooks.insert(group.to_owned(), hooks);
    }

    /// Starts a scale-in of the instance: one pending action per termination hook.
    pub fn terminate(&self, group: &str, instance_id: &str) {
        let mut s = self.state();
        let hooks: Vec<Hook> = s.hooks.get(group).cloned().unwrap_or_default();
        let n = self.inner.shared().next();
        for h in hooks.iter().filter(|h| h.transition == TERMINATING) {
            s.actions.insert(
                (group.to_owned(), h.name.clone(), instance_id.to_owned()),
                Action {
                    token: format!("a1b2c3d4-0000-4000-8000-{n:012x}"),
                    completed: None,
                    heartbeats: 0,
                },
            );
        }
        if let Some(i) = s.instances.get_mut(group) {
            i.insert(instance_id.to_owned(), "Terminating:Wait".into());
        }
    }

    /// The instance's lifecycle state.
    pub fn lifecycle_state(&self, group: &str, instance_id: &str) -> Option<String> {
        self.state().instances.get(group)?.get(instance_id).cloned()
    }

    /// The result a hook's action was completed with, if it was.
    pub fn completed(&self, group: &str, hook: &str, instance_id: &str) -> Option<String> {
        self.state()
            .actions
            .get(&(group.to_owned(), hook.to_owned(), instance_id.to_owned()))?
            .completed
            .clone()
    }

    /// The token of a pending action.
    pub fn token(&self, group: &str, hook: &str, instance_id: &str) -> Option<String> {
        Some(
            self.state()
                .actions
                .get(&(group.to_owned(), hook.to_owned(), instance_id.to_owned()))?
                .token
                .clone(),
        )
    }

    /// Every call so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().recorded.clone()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Answer {
    status: StatusCode,
    code: String,
    body: String,
    verified: bool,
}

fn error(shared: &Shared, code: &str, message: &str, verified: bool) -> Answer {
    let id = request_id(shared);
    Answer {
        status: StatusCode::BAD_REQUEST,
        code: code.to_owned(),
        body: format!(
            "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{id}</RequestId>\n</ErrorResponse>\n",
            escape(code),
            escape(message)
        ),
        verified,
    }
}

fn request_id(shared: &Shared) -> String {
    let n = shared.next();
    format!("7b3c5a1e-0000-4000-8000-{n:012x}")
}

fn ok(shared: &Shared, action: &str, result: &str) -> Answer {
    let id = request_id(shared);
    let result = if result.is_empty() {
        format!("  <{action}Result/>\n")
    } else {
        format!("  <{action}Result>\n{result}  </{action}Result>\n")
    };
    Answer {
        status: StatusCode::OK,
        code: String::new(),
        body: format!(
            "<{action}Response xmlns=\"{XMLNS}\">\n{result}  <ResponseMetadata>\n    <RequestId>{id}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n"
        ),
        verified: true,
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let params: BTreeMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let at = std::time::SystemTime::now();
    let s2 = shared.clone();
    let p2 = params.clone();
    let answer = tokio::task::spawn_blocking(move || process(&s2, &parts, &body, &p2))
        .await
        .unwrap_or_else(|e| error(&shared, "InternalFailure", &e.to_string(), false));
    let mut rest = params.clone();
    let action = rest.remove("Action").unwrap_or_default();
    rest.remove("Version");
    shared.lock().recorded.push(Recorded {
        action,
        params: rest,
        status: answer.status.as_u16(),
        code: answer.code.clone(),
        signature_verified: answer.verified,
        at,
    });
    let mut r = Response::new(Full::new(Bytes::from(answer.body)));
    *r.status_mut() = answer.status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    r
}

fn list(params: &BTreeMap<String, String>, name: &str) -> Vec<String> {
    (1..)
        .map_while(|i| params.get(&format!("{name}.member.{i}")).cloned())
        .collect()
}

fn process(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: &[u8],
    params: &BTreeMap<String, String>,
) -> Answer {
    if let Err(r) =
        crate::sigv4_verify::verify(parts, body, &shared.keys, &shared.region, "autoscaling")
    {
        let mut a = error(shared, r.code, &r.message, false);
        a.status = StatusCode::FORBIDDEN;
        return a;
    }
    if params.get("Version").map(String::as_str) != Some("2011-01-01") {
        return error(
            shared,
            "InvalidParameterValue",
            "Version must be 2011-01-01",
            true,
        );
    }
    let action = params.get("Action").cloned().unwrap_or_default();
    let mut s = shared.lock();
    match action.as_str() {
        "DescribeAutoScalingInstances" => {
            let ids = list(params, "InstanceIds");
            let mut members = String::new();
            for (group, instances) in &s.instances {
                for (id, state) in instances {
                    if !ids.is_empty() && !ids.contains(id) {
                        continue;
                    }
                    members.push_str(&format!(
                        "      <member>\n        <InstanceId>{}</InstanceId>\n        <AutoScalingGroupName>{}</AutoScalingGroupName>\n        <AvailabilityZone>{}a</AvailabilityZone>\n        <LifecycleState>{}</LifecycleState>\n        <HealthStatus>HEALTHY</HealthStatus>\n        <ProtectedFromScaleIn>false</ProtectedFromScaleIn>\n        <InstanceType>m5.large</InstanceType>\n      </member>\n",
                        escape(id), escape(group), escape(&shared.region), escape(state)
                    ));
                }
            }
            ok(
                shared,
                &action,
                &format!("    <AutoScalingInstances>\n{members}    </AutoScalingInstances>\n"),
            )
        }
        "DescribeLifecycleHooks" => {
            let Some(group) = params.get("AutoScalingGroupName") else {
                return error(
                    shared,
                    "ValidationError",
                    "1 validation error detected: Value null at 'autoScalingGroupName' failed to satisfy constraint: Member must not be null",
                    true,
                );
            };
            let Some(hooks) = s.hooks.get(group) else {
                return error(
                    shared,
                    "ValidationError",
                    &format!("Group {group} not found"),
                    true,
                );
            };
            let names = list(params, "LifecycleHookNames");
            let mut members = String::new();
            for h in hooks
                .iter()
                .filter(|h| names.is_empty() || names.contains(&h.name))
            {
                members.push_str(&format!(
                    "      <member>\n        <LifecycleHookName>{}</LifecycleHookName>\n        <AutoScalingGroupName>{}</AutoScalingGroupName>\n        <LifecycleTransition>{}</LifecycleTransition>\n        <HeartbeatTimeout>{}</HeartbeatTimeout>\n        <GlobalTimeout>{}</GlobalTimeout>\n        <DefaultResult>ABANDON</DefaultResult>\n      </member>\n",
                    escape(&h.name),
                    escape(group),
                    escape(&h.transition),
                    h.heartbeat_timeout,
                    (h.heartbeat_timeout * 100).min(172_800)
                ));
            }
            ok(
                shared,
                &action,
                &format!("    <LifecycleHooks>\n{members}    </LifecycleHooks>\n"),
            )
        }
        "CompleteLifecycleAction" | "RecordLifecycleActionHeartbeat" => {
            let (Some(group), Some(hook)) = (
                params.get("AutoScalingGroupName"),
                params.get("LifecycleHookName"),
            ) else {
                return error(
                    shared,
                    "ValidationError",
                    "AutoScalingGroupName and LifecycleHookName are required",
                    true,
                );
            };
            let instance = params.get("InstanceId");
            let token = params.get("LifecycleActionToken");
            let complete = action == "CompleteLifecycleAction";
            let result = params.get("LifecycleActionResult").cloned();
            if complete && !matches!(result.as_deref(), Some("CONTINUE" | "ABANDON")) {
                return error(
                    shared,
                    "ValidationError",
                    "LifecycleActionResult must be CONTINUE or ABANDON",
                    true,
                );
            }
            let key = s
                .actions
                .iter()
                .find(|((g, h, i), a)| {
                    g == group
                        && h == hook
                        && a.completed.is_none()
                        && (instance == Some(i) || token == Some(&a.token))
                })
                .map(|(k, _)| k.clone());
            let Some(key) = key else {
                let what = match (instance, token) {
                    (Some(i), _) => format!("instance ID {i}"),
                    (None, Some(t)) => format!("token {t}"),
                    (None, None) => "no instance ID or token".into(),
                };
                return error(
                    shared,
                    "ValidationError",
                    &format!("No active Lifecycle Action found with {what}"),
                    true,
                );
            };
            if complete {
                if let Some(a) = s.actions.get_mut(&key) {
                    a.completed = result;
                }
                let pending = s
                    .actions
                    .iter()
                    .any(|((g, _, i), a)| *g == key.0 && *i == key.2 && a.completed.is_none());
                if !pending && let Some(i) = s.instances.get_mut(&key.0) {
                    i.insert(key.2.clone(), "Terminating:Proceed".into());
                }
            } else if let Some(a) = s.actions.get_mut(&key) {
                a.heartbeats += 1;
            }
            ok(shared, &action, "")
        }
        other => error(
            shared,
            "InvalidAction",
            &format!("The action {other} is not valid for this web service."),
            true,
        ),
    }
}
