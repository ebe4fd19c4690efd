//! The Node condition types the agent owns (the EKS node monitoring agent's names).

/// The Node conditions this agent owns. `True` means healthy (the polarity of `Ready`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionType {
    /// Kernel problems: deadlocks, oopses, table exhaustion.
    KernelReady,
    /// Pod networking: the runtime's CRI NetworkReady, and on EC2 the VPC CNI configured
    /// and ipamd answering with free IPs.
    NetworkingReady,
    /// Kubelet and containerd directories writable with space and inodes left.
    StorageReady,
    /// The container runtime reporting CRI RuntimeReady.
    ContainerRuntimeReady,
    /// GPUs and AWS Neuron devices present and free of uncorrectable errors; written only on
    /// nodes that have accelerators.
    AcceleratedHardwareReady,
}

impl ConditionType {
    /// Every condition type this agent writes.
    pub const ALL: [ConditionType; 5] = [
        Self::KernelReady,
        Self::NetworkingReady,
        Self::StorageReady,
        Self::ContainerRuntimeReady,
        Self::AcceleratedHardwareReady,
    ];

    /// The condition `type` on the Node.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KernelReady => "KernelReady",
            Self::NetworkingReady => "NetworkingReady",
            Self::StorageReady => "StorageReady",
            Self::ContainerRuntimeReady => "ContainerRuntimeReady",
            Self::AcceleratedHardwareReady => "AcceleratedHardwareReady",
        }
    }

    /// The reason written while the condition is healthy.
    pub fn healthy_reason(self) -> &'static str {
        match self {
            Self::KernelReady => "KernelHasNoProblem",
            Self::NetworkingReady => "NetworkingIsReady",
            Self::StorageReady => "StorageIsReady",
            Self::ContainerRuntimeReady => "ContainerRuntimeIsReady",
            Self::AcceleratedHardwareReady => "AcceleratedHardwareIsReady",
        }
    }

    /// How long EKS node auto repair waits, by its documentation, before it replaces a node
    /// whose condition stays False (10 minutes for accelerated hardware, 30 for the others).
    pub fn auto_repair_after_secs(self) -> u64 {
        match self {
            Self::AcceleratedHardwareReady => 10 * 60,
            _ => 30 * 60,
        }
    }

    /// Parses a condition `type`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}
