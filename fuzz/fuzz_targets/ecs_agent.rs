//! What an ECS container instance hands the agent: the ECS agent's introspection answers
//! (`/v1/metadata`, `/v1/tasks`) and an `ecs.config` of `KEY=value` lines. Errors are fine;
//! panics, hangs and unbounded memory are not.
#![no_main]

use eks_node_agent::config::ecs;
use eks_node_agent::facts::ecs_agent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(meta) = ecs_agent::parse_metadata(data) {
        let _ = meta.version_number();
    }
    if let Ok(tasks) = ecs_agent::parse_tasks(data) {
        let _ = ecs_agent::tasks_by_state(&tasks);
    }
    let text = String::from_utf8_lossy(data);
    let _ = ecs::looks_like_ecs_config(&text);
    let _ = ecs::parse_ecs_config(&text);
});
