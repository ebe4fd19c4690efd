//! What max pods and kube-reserved need to know about an instance type, and the embedded table
//! of it for every type AWS published when the table was generated
//! (`tools/gen-instance-limits.py` writes `instance_limits.rs`).

use super::InstanceType;

#[rustfmt::skip]
#[path = "instance_limits.rs"]
mod instance_limits;

/// The hypervisor of an instance type as DescribeInstanceTypes reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hypervisor {
    /// The Nitro hypervisor.
    Nitro,
    /// The Xen hypervisor (older generations).
    Xen,
    /// No hypervisor: a bare-metal type.
    None,
}

impl Hypervisor {
    /// Maps DescribeInstanceTypes' `Hypervisor` (absent for bare metal).
    pub fn from_api(value: Option<&str>) -> Option<Self> {
        match value {
            Some("nitro") => Some(Hypervisor::Nitro),
            Some("xen") => Some(Hypervisor::Xen),
            None | Some("") => Some(Hypervisor::None),
            Some(_) => Option::None,
        }
    }
}

/// Network and CPU limits of one instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceLimits {
    /// `MaximumNetworkInterfaces` of the default network card (`DefaultNetworkCardIndex`): the
    /// VPC CNI puts pods only on ENIs of that card.
    pub default_card_max_enis: u32,
    /// `Ipv4AddressesPerInterface`.
    pub ipv4_per_eni: u32,
    /// `Hypervisor`.
    pub hypervisor: Hypervisor,
    /// `VCpuInfo.DefaultVCpus`.
    pub vcpus: u32,
    /// `MaximumNetworkCards`.
    pub network_cards: u32,
    /// `BareMetal`.
    pub bare_metal: bool,
    /// NVIDIA GPUs: the `Count` of `GpuInfo.Gpus` made by NVIDIA.
    pub nvidia_gpus: u32,
    /// AWS Neuron devices (Inferentia, Trainium): the `Count` of `NeuronInfo.NeuronDevices`.
    pub neuron_devices: u32,
}

/// Limits of `instance_type` from the embedded table, or `None` when the table does not know it.
/// A binary search over a static sorted slice: no parsing, no allocation.
pub fn embedded_limits(instance_type: &InstanceType) -> Option<InstanceLimits> {
    let table = instance_limits::TABLE;
    table
        .binary_search_by(|(name, _)| name.as_bytes().cmp(instance_type.as_str().as_bytes()))
        .ok()
        .map(|i| table[i].1)
}

/// Every instance type in the embedded table, in table order.
pub fn embedded_types() -> impl Iterator<Item = (&'static str, InstanceLimits)> {
    instance_limits::TABLE.iter().copied()
}

/// Where the embedded table's data came from (as written by the generator).
pub fn embedded_source() -> &'static str {
    instance_limits::SOURCE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_strictly_sorted_so_binary_search_finds_every_row() {
        let table = instance_limits::TABLE;
        assert!(table.len() > 1000, "the table has {} rows", table.len());
        for pair in table.windows(2) {
            assert!(
                pair[0].0.as_bytes() < pair[1].0.as_bytes(),
                "{} !< {}",
                pair[0].0,
                pair[1].0
            );
        }
        for (name, limits) in table {
            let t = InstanceType::parse(name).unwrap();
            assert_eq!(embedded_limits(&t), Some(*limits), "{name}");
        }
    }

    #[test]
    fn known_rows() {
        let get = |n: &str| embedded_limits(&InstanceType::parse(n).unwrap()).unwrap();
        let m5 = get("m5.large");
        assert_eq!(
            (m5.default_card_max_enis, m5.ipv4_per_eni, m5.vcpus),
            (3, 10, 2)
        );
        assert_eq!(m5.hypervisor, Hypervisor::Nitro);
        // p4d.24xlarge has 4 network cards of 15 ENIs each; only the default card counts.
        let p4d = get("p4d.24xlarge");
        assert_eq!((p4d.default_card_max_enis, p4d.network_cards), (15, 4));
        let metal = get("c5.metal");
        assert_eq!(
            (metal.hypervisor, metal.bare_metal),
            (Hypervisor::None, true)
        );
        assert_eq!(get("t2.micro").hypervisor, Hypervisor::Xen);
        // Accelerators: GPUs by NVIDIA only, Neuron devices.
        assert_eq!((p4d.nvidia_gpus, p4d.neuron_devices), (8, 0));
        assert_eq!(get("g5.xlarge").nvidia_gpus, 1);
        assert_eq!(get("trn1.32xlarge").neuron_devices, 16);
        assert_eq!(get("inf2.48xlarge").neuron_devices, 12);
        assert_eq!((m5.nvidia_gpus, m5.neuron_devices), (0, 0));
    }

    #[test]
    fn unknown_types_are_none() {
        assert_eq!(
            embedded_limits(&InstanceType::parse("zz9.large").unwrap()),
            None
        );
        assert_eq!(embedded_limits(&InstanceType::parse("a.a").unwrap()), None);
    }

    #[test]
    fn hypervisor_from_api() {
        assert_eq!(Hypervisor::from_api(Some("nitro")), Some(Hypervisor::Nitro));
        assert_eq!(Hypervisor::from_api(Some("xen")), Some(Hypervisor::Xen));
        assert_eq!(Hypervisor::from_api(None), Some(Hypervisor::None));
        assert_eq!(Hypervisor::from_api(Some("kvm")), Option::None);
    }

    #[test]
    fn source_names_the_generator_input() {
        assert!(embedded_source().contains("moto"), "{}", embedded_source());
    }
}
