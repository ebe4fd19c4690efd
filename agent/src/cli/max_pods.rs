//! `eks-node-agent max-pods`: a drop-in for the EKS AMI's `max-pods-calculator.sh`. Prints only
//! the number: the recommended max pods (capped at 110 or 250 by vCPUs), or with
//! `--show-max-allowed` what the ENIs allow.

use anyhow::Context as _;
use clap::Args;

use crate::compute::{CniVersion, MaxPodsOptions, max_pods};
use crate::exit;
use crate::facts::instance_types::{self, Ec2Settings, Lookup};
use crate::model::InstanceType;

/// Compute the max pods of an instance type for the VPC CNI, like max-pods-calculator.sh.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    eks-node-agent max-pods --instance-type m5.large                        # 29\n  \
    eks-node-agent max-pods --instance-type m5.large --prefix-delegation    # 110\n  \
    eks-node-agent max-pods --instance-type m5.large --cni-version 1.8.0 --prefix-delegation  # 29\n  \
    eks-node-agent max-pods --instance-type p4d.24xlarge --show-max-allowed # 737\n  \
    eks-node-agent max-pods --instance-type m5.large --from-api --region us-west-2\n\n\
Prefix delegation needs VPC CNI >= 1.9.0 and a Nitro type, else secondary IPs are counted.\n\
Only the default network card's ENIs carry pods (p4d.24xlarge: 15 of its 4 x 15).\n\
The limits come from a table built into the binary; types it does not know (or all types with\n\
--from-api) are looked up with EC2 DescribeInstanceTypes using the default AWS credential chain.\n\
The flag names of max-pods-calculator.sh (--cni-custom-networking-enabled,\n\
--cni-prefix-delegation-enabled) are accepted as aliases.")]
pub struct MaxPodsArgs {
    /// The EC2 instance type, e.g. m5.large.
    #[arg(long, value_name = "TYPE", value_parser = InstanceType::parse)]
    pub instance_type: InstanceType,
    /// The VPC CNI version (e.g. 1.18.3). Prefix delegation needs 1.9.0 or later; without this
    /// flag a current CNI is assumed.
    #[arg(long, value_name = "VERSION", value_parser = CniVersion::parse)]
    pub cni_version: Option<CniVersion>,
    /// The CNI delegates /28 prefixes (ENABLE_PREFIX_DELEGATION). Used only on Nitro types.
    #[arg(long, visible_alias = "cni-prefix-delegation-enabled")]
    pub prefix_delegation: bool,
    /// The CNI uses custom networking (the primary ENI carries no pods).
    #[arg(long, visible_alias = "cni-custom-networking-enabled")]
    pub custom_networking: bool,
    /// The CNI's MAX_ENI limit: use at most N ENIs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub cni_max_eni: Option<u32>,
    /// Print what the ENIs allow, without the 110/250 ceiling.
    #[arg(long)]
    pub show_max_allowed: bool,
    /// Always ask EC2 DescribeInstanceTypes, ignoring the built-in table.
    #[arg(long)]
    pub from_api: bool,
    /// AWS region for DescribeInstanceTypes (default: the SDK's region chain).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// EC2 endpoint URL instead of the regional one.
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    pub endpoint_url: Option<String>,
    /// Named AWS profile for DescribeInstanceTypes (credentials and region).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Print the details as JSON instead of just the number.
    #[arg(long)]
    pub json: bool,
}

fn parse_endpoint(value: &str) -> Result<String, String> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(value.to_owned())
        }
        Ok(_) => Err("expected an http:// or https:// URL with a host".to_owned()),
        Err(e) => Err(format!("not a URL: {e}")),
    }
}

pub(crate) fn run(args: MaxPodsArgs) -> anyhow::Result<exit::Code> {
    let settings = Ec2Settings {
        region: args.region.clone(),
        endpoint_url: args.endpoint_url.clone(),
        profile: args.profile.clone(),
    };
    let lookup = if args.from_api {
        Lookup::ApiOnly
    } else {
        Lookup::TableThenApi
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (limits, source) = runtime
        .block_on(instance_types::resolve(
            &args.instance_type,
            lookup,
            &settings,
        ))
        .with_context(|| {
            format!(
                "cannot find the limits of instance type {}",
                args.instance_type
            )
        })?;
    let options = MaxPodsOptions {
        prefix_delegation: args.prefix_delegation,
        custom_networking: args.custom_networking,
        cni_max_enis: args.cni_max_eni,
        cni_version: args.cni_version,
        apply_ceiling: !args.show_max_allowed,
    };
    let result = max_pods(&limits, &options);
    if args.json {
        let value = serde_json::json!({
            "instanceType": args.instance_type.as_str(),
            "maxPods": result,
            "limits": limits,
            "limitsSource": source,
        });
        println!("{value}");
    } else {
        println!("{}", result.value);
    }
    Ok(exit::Code::Success)
}
