//! kube-reserved: what the kubelet holds back for Kubernetes system daemons, by the EKS AMI's
//! rules: CPU by cores, memory by pod density, a fixed ephemeral-storage reserve.

use crate::model::KubeReserved;

/// CPU reserved per range of cores, in basis points (1/100 of a percent) of each core's
/// millicores: 6% of the first core, 1% of the second, 0.5% of the third and fourth,
/// 0.25% of every core after that.
const CPU_RESERVE_BASIS_POINTS: [(u64, u64, u64); 4] =
    [(0, 1, 600), (1, 2, 100), (2, 4, 50), (4, u64::MAX, 25)];
/// Millicores per core.
const MILLICORES_PER_CORE: u64 = 1000;
/// Basis points in a whole.
const BASIS_POINTS: u64 = 10_000;
/// MiB reserved per pod.
const MEMORY_MIB_PER_POD: u64 = 11;
/// MiB reserved regardless of pods.
const MEMORY_MIB_BASE: u64 = 255;
/// Ephemeral storage reserved, GiB.
const EPHEMERAL_STORAGE_GIB: u32 = 1;

/// CPU millicores to reserve on a host with `cores` cores. Each range's share is rounded down
/// on its own, as the AMI's bootstrap does (96 cores -> 60 + 10 + 10 + 230 = 310m).
pub fn cpu_millicores_to_reserve(cores: u32) -> u32 {
    let total = u64::from(cores) * MILLICORES_PER_CORE;
    let reserved: u64 = CPU_RESERVE_BASIS_POINTS
        .iter()
        .map(|&(start, end, basis_points)| {
            let start = start * MILLICORES_PER_CORE;
            let end = end.saturating_mul(MILLICORES_PER_CORE).min(total);
            end.saturating_sub(start) * basis_points / BASIS_POINTS
        })
        .sum();
    u32::try_from(reserved).unwrap_or(u32::MAX)
}

/// Memory MiB to reserve for `max_pods` pods: `11 * max_pods + 255`.
pub fn memory_mebibytes_to_reserve(max_pods: u32) -> u32 {
    let mib = MEMORY_MIB_PER_POD * u64::from(max_pods) + MEMORY_MIB_BASE;
    u32::try_from(mib).unwrap_or(u32::MAX)
}

/// kube-reserved for a host with `cores` cores whose kubelet runs at most `max_pods` pods.
/// Pass the *effective* max pods (after a user-set value or expression), since that is the
/// density the kubelet will allow.
pub fn kube_reserved(cores: u32, max_pods: u32) -> KubeReserved {
    KubeReserved {
        cpu_millicores: cpu_millicores_to_reserve(cores),
        memory_mebibytes: memory_mebibytes_to_reserve(max_pods),
        ephemeral_storage_gibibytes: EPHEMERAL_STORAGE_GIB,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_by_cores() {
        for (cores, millicores) in [
            (0, 0),
            (1, 60),
            (2, 70),
            (3, 75),
            (4, 80),
            (5, 82), // 80 + 2.5 rounded down
            (6, 85),
            (8, 90),
            (16, 110),
            (48, 190),
            (96, 310),
            (192, 550),
        ] {
            assert_eq!(
                cpu_millicores_to_reserve(cores),
                millicores,
                "{cores} cores"
            );
        }
    }

    #[test]
    fn memory_by_max_pods() {
        assert_eq!(memory_mebibytes_to_reserve(29), 574);
        assert_eq!(memory_mebibytes_to_reserve(110), 1465);
        assert_eq!(memory_mebibytes_to_reserve(0), 255);
    }

    #[test]
    fn renders_the_kubelet_map() {
        let r = kube_reserved(2, 29);
        let map = r.to_kubelet_map();
        assert_eq!(map["cpu"], "70m");
        assert_eq!(map["memory"], "574Mi");
        assert_eq!(map["ephemeral-storage"], "1Gi");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"cpu":"70m","memory":"574Mi","ephemeral-storage":"1Gi"}"#
        );
    }
}
