//! `eks-node-agent warm-pool-wait`: the body of `eks-node-agent-warm-pool.service`. Holds the
//! kubelet while the instance is headed for an Auto Scaling warm pool, then starts it once the
//! target lifecycle state is `InService` (see `lifecycle::warm_pool`).

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::apply::{Applier, Report, Root};
use crate::exit;
use crate::facts::imds::Imds;
use crate::render::{Plan, ServiceSpec};

/// Wait for the Auto Scaling target lifecycle state InService, then start the kubelet.
#[derive(Debug, Args)]
#[command(
    after_help = "Run by eks-node-agent-warm-pool.service, which `init` starts instead of the\n\
kubelet when IMDS says the instance is headed for a warm pool (Warmed:*).\n\nExamples:\n  \
    eks-node-agent warm-pool-wait\n  \
    eks-node-agent warm-pool-wait --poll-secs 1 --systemd-bus unix:path=/run/test/bus"
)]
pub struct WarmPoolArgs {
    /// Seconds between two reads of autoscaling/target-lifecycle-state.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    poll_secs: f64,
    /// The unit to start once in service.
    #[arg(long, value_name = "UNIT", default_value = "kubelet.service")]
    unit: String,
    /// systemd's D-Bus: `system` or a bus address (`unix:path=...`).
    #[arg(long, value_name = "ADDRESS", default_value = "system")]
    systemd_bus: String,
}

/// Waits, then starts the unit.
pub fn run(args: WarmPoolArgs) -> anyhow::Result<exit::Code> {
    if !(0.05..=3600.0).contains(&args.poll_secs) {
        return Err(exit::BadInput(format!(
            "--poll-secs {}: use 0.05 to 3600 seconds",
            args.poll_secs
        ))
        .into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        use crate::facts::imds::Error as ImdsError;
        let imds = match Imds::new() {
            Ok(i) => i.quiet(),
            // A malformed AWS_EC2_METADATA_SERVICE_ENDPOINT(_MODE) is the user's input.
            Err(
                e @ (ImdsError::InvalidEndpoint { .. } | ImdsError::InvalidEndpointMode { .. }),
            ) => {
                return Err(exit::BadInput(crate::model::text::error_chain(&e)).into());
            }
            Err(e) => return Err(e.into()),
        };
        crate::lifecycle::warm_pool::wait_in_service(
            &imds,
            Duration::from_secs_f64(args.poll_secs),
        )
        .await;
        let mut applier = Applier::new(Root::host());
        if args.systemd_bus != "system" {
            applier = applier.with_bus_address(args.systemd_bus.clone());
        }
        let plan = Plan {
            services: vec![ServiceSpec {
                unit: args.unit.clone(),
                wait_for_socket: None,
            }],
            ..Plan::default()
        };
        let report = applier.run_services(&plan, &Report::default()).await?;
        tracing::info!(unit = %args.unit, "warm pool: in service; started the unit");
        eprint!("{report}");
        Ok(exit::Code::Success)
    })
}
