//! Pure rendering: (NodeConfig, resolved facts) -> [`Plan`]. No IO here.

pub mod plan;

pub use plan::{FileSpec, Plan, ServiceSpec, Sysctl};
