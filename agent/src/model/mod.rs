//! The floor: domain types and constants that more than one layer uses, and pure parsers of
//! the host's text formats. Nothing here imports from the rest of the crate, so every layer
//! can build on it without a cycle (the architecture test checks that).
//!
//! - [`asg`]: the Auto Scaling lifecycle state IMDS announces;
//! - [`ids`]: instance types and IDs, zones, cluster and node names, provider IDs;
//! - [`partition`]: regions and partitions;
//! - [`limits`]: network and CPU limits of instance types, with the embedded table;
//! - [`node`]: the node's kind and its resolved values (the input of render);
//! - [`discovered`]: what discovery found, typed;
//! - [`ecs`]: ECS container instances: ecs.config keys, paths, resolved values;
//! - [`disks`]: instance-store disks: their facts, the layout, the tools' output parsers;
//! - [`kubeadm`]: bootstrap tokens and CA pins;
//! - [`accelerator`]: accelerators on the PCI bus;
//! - [`conditions`]: the Node condition types the agent owns;
//! - [`paths`]: host paths, compatible with the EKS AMI;
//! - [`procfs`]: parsers of /proc formats;
//! - [`text`]: error chains, times and echoed values as text;
//! - [`bounded`]: reading a named file with a size bound.

pub mod accelerator;
pub mod asg;
pub mod bounded;
pub mod conditions;
pub mod discovered;
pub mod disks;
pub mod ecs;
mod error;
pub mod ids;
pub mod kubeadm;
pub mod limits;
pub mod node;
pub mod partition;
pub mod paths;
pub mod procfs;
pub mod redact;
pub mod text;
pub mod version;

pub use accelerator::{AcceleratorKind, PciDevice};
pub use asg::TargetLifecycleState;
pub use conditions::ConditionType;
pub use discovered::{Cluster, Discovered, HostFacts, Instance};
pub use error::Invalid;
pub use ids::{AvailabilityZone, ClusterName, InstanceId, InstanceType, NodeName, ProviderId};
pub use kubeadm::{BootstrapToken, CaPin};
pub use limits::{Hypervisor, InstanceLimits, embedded_limits, embedded_source, embedded_types};
pub use node::{FastImagePull, KubeReserved, NodeKind, NodeValues};
pub use partition::{Partition, Region, partition_of};
pub use procfs::{SwapArea, SwapKind};
pub use version::Version;
