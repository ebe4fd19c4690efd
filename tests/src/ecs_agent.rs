//! An emulator of the Amazon ECS container agent's introspection API, named as an emulator
//! (the agent needs Docker and the ECS service to run). Plain HTTP on 127.0.0.1, following the
//! agent's published handlers (`agent/handlers/v1`):
//!
//! - `GET /v1/metadata`: `{"Cluster": NAME, "ContainerInstanceArn": ARN|null, "Version":
//!   "Amazon ECS Agent - vX.Y.Z (commit)"}`; the ARN is null until the emulated agent has
//!   registered ([`AgentEmulator::register_after`] polls, or [`AgentEmulator::register`]).
//! - `GET /v1/tasks`: `{"Tasks": [{"Arn", "DesiredStatus", "KnownStatus", "Family",
//!   "Version", "Containers": []}]}`; `?taskarn=ARN` gives that one task, or HTTP 400 when no
//!   task has that ARN.
//! - Other paths: 404. Other methods: 405.
//! - Faults: the next N requests answered 500.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::loopback_http::{Dropped, LoopbackServer};

/// The emulated agent's version line.
pub const VERSION: &str = "Amazon ECS Agent - v1.82.0 (e2e0e2e0)";

/// A task the emulated agent runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Task ARN.
    pub arn: String,
    /// `RUNNING`, `STOPPED`.
    pub desired: String,
    /// `PENDING`, `RUNNING`, `STOPPED`.
    pub known: String,
    /// Family.
    pub family: String,
}

#[derive(Debug, Default)]
struct State {
    cluster: String,
    arn: Option<String>,
    pending_arn: Option<String>,
    register_after: Option<u32>,
    polls: u32,
    tasks: Vec<Task>,
    fail_next: u32,
    requests: u64,
}

/// The running emulator; stops on drop.
#[derive(Debug)]
pub struct AgentEmulator {
    server: LoopbackServer,
    state: Arc<Mutex<State>>,
}

fn answer(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

fn task_json(t: &Task) -> Value {
    json!({
        "Arn": t.arn,
        "DesiredStatus": t.desired,
        "KnownStatus": t.known,
        "Family": t.family,
        "Version": "1",
        "Containers": [],
    })
}

fn handle(state: &Mutex<State>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.requests += 1;
    if s.fail_next > 0 {
        s.fail_next -= 1;
        return answer(StatusCode::INTERNAL_SERVER_ERROR, b"{}".to_vec());
    }
    if req.method() != Method::GET {
        return answer(StatusCode::METHOD_NOT_ALLOWED, Vec::new());
    }
    match req.uri().path() {
        "/v1/metadata" => {
            s.polls += 1;
            if let (Some(after), Some(arn)) = (s.register_after, s.pending_arn.clone())
                && s.polls > after
            {
                s.arn = Some(arn);
            }
            let body = json!({
                "Cluster": s.cluster,
                "ContainerInstanceArn": s.arn,
                "Version": VERSION,
            });
            answer(StatusCode::OK, body.to_string().into_bytes())
        }
        "/v1/tasks" => {
            if let Some(q) = req.uri().query()
                && let Some(arn) = q.strip_prefix("taskarn=")
            {
                return match s.tasks.iter().find(|t| t.arn == arn) {
                    Some(t) => answer(StatusCode::OK, task_json(t).to_string().into_bytes()),
                    None => answer(StatusCode::BAD_REQUEST, Vec::new()),
                };
            }
            let tasks: Vec<Value> = s.tasks.iter().map(task_json).collect();
            answer(
                StatusCode::OK,
                json!({ "Tasks": tasks }).to_string().into_bytes(),
            )
        }
        _ => answer(StatusCode::NOT_FOUND, Vec::new()),
    }
}

impl AgentEmulator {
    /// Starts an unregistered agent configured for `cluster`.
    pub fn start(cluster: &str) -> AgentEmulator {
        let state = Arc::new(Mutex::new(State {
            cluster: cluster.to_owned(),
            ..State::default()
        }));
        let shared = state.clone();
        let server = LoopbackServer::start("ecs-agent-emulator", move |req: Request<Incoming>| {
            let shared = shared.clone();
            async move { Ok::<_, Dropped>(handle(&shared, &req)) }
        });
        AgentEmulator { server, state }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Registers now with `arn`.
    pub fn register(&self, arn: &str) {
        self.with(|s| s.arn = Some(arn.to_owned()));
    }

    /// Registers with `arn` once `/v1/metadata` was polled `polls` times.
    pub fn register_after(&self, polls: u32, arn: &str) {
        self.with(|s| {
            s.register_after = Some(polls);
            s.pending_arn = Some(arn.to_owned());
        });
    }

    /// Replaces the tasks.
    pub fn set_tasks(&self, tasks: Vec<Task>) {
        self.with(|s| s.tasks = tasks);
    }

    /// Answers the next `n` requests with HTTP 500.
    pub fn fail_next(&self, n: u32) {
        self.with(|s| s.fail_next = n);
    }

    /// How many times `/v1/metadata` was asked.
    pub fn metadata_polls(&self) -> u32 {
        self.with(|s| s.polls)
    }

    /// Requests answered.
    pub fn requests(&self) -> u64 {
        self.with(|s| s.requests)
    }
}
