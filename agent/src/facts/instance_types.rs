//! Limits of an instance type: from the embedded table when it knows the type, else from EC2
//! `DescribeInstanceTypes`. The conversion from the API's answer is a pure function; the client
//! is a thin shell around it with a bounded timeout and retries.

use std::time::Duration;

use aws_sdk_ec2::types::InstanceTypeInfo;

use crate::model::{Hypervisor, InstanceLimits, InstanceType, embedded_limits};

/// Time to open a connection to the EC2 endpoint.
pub const EC2_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for one attempt of a call.
pub const EC2_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a whole call, retries included.
pub const EC2_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per call (the first one included).
pub const EC2_MAX_ATTEMPTS: u32 = 3;
/// Backoff before the first retry; the SDK's standard strategy grows it exponentially with jitter.
pub const EC2_INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// Errors finding the limits of an instance type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// EC2 does not know the instance type (or not in this region).
    #[error(
        "EC2 does not know instance type {instance_type} in region {region}; check the spelling (e.g. \"m5.large\") and that the type is offered in the region"
    )]
    UnknownInstanceType {
        /// The type asked for.
        instance_type: String,
        /// The region asked.
        region: String,
    },
    /// The call failed (network, credentials, throttling beyond the retries, ...).
    #[error("DescribeInstanceTypes for {what} failed (region {region}, endpoint {endpoint})")]
    Api {
        /// The instance type, or "all instance types".
        what: String,
        /// The region.
        region: String,
        /// The endpoint, or "default".
        endpoint: String,
        /// The SDK's error, with its details.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The answer lacks a field max pods needs.
    #[error("DescribeInstanceTypes answered for {instance_type} without {field}")]
    Incomplete {
        /// The instance type.
        instance_type: String,
        /// The missing or unusable field.
        field: &'static str,
    },
}

impl crate::exit::Classify for Error {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            Error::UnknownInstanceType { .. } => crate::exit::Code::BadInput,
            Error::Api { .. } | Error::Incomplete { .. } => crate::exit::Code::Failure,
        }
    }
}

/// Where the limits came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitsSource {
    /// The table embedded in the binary.
    EmbeddedTable,
    /// EC2 DescribeInstanceTypes.
    Ec2Api,
}

/// Whether the embedded table may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lookup {
    /// The table first, the API for types it does not know.
    #[default]
    TableThenApi,
    /// Always the API (fresh data, or a type whose limits changed after the table was made).
    ApiOnly,
}

/// How to reach EC2. `None` fields use the SDK's defaults (region from the environment, profile
/// or IMDS; the regional endpoint).
#[derive(Debug, Clone, Default)]
pub struct Ec2Settings {
    /// The region.
    pub region: Option<String>,
    /// An endpoint URL instead of the regional one (a VPC endpoint, or a test server).
    pub endpoint_url: Option<String>,
    /// A named profile of the shared AWS config and credentials files.
    pub profile: Option<String>,
}

/// Converts one `InstanceTypeInfo` into limits. Pure.
pub fn limits_from_info(info: &InstanceTypeInfo) -> Result<(InstanceType, InstanceLimits), Error> {
    let name = info
        .instance_type()
        .map(|t| t.as_str().to_owned())
        .unwrap_or_default();
    let incomplete = |field| Error::Incomplete {
        instance_type: name.clone(),
        field,
    };
    let instance_type =
        InstanceType::parse(&name).map_err(|_| incomplete("a valid InstanceType"))?;
    let count = |v: Option<i32>, field| {
        v.and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| incomplete(field))
    };
    let network = info
        .network_info()
        .ok_or_else(|| incomplete("NetworkInfo"))?;
    let default_index = network.default_network_card_index().unwrap_or(0);
    let default_card_max_enis = match network
        .network_cards()
        .iter()
        .find(|c| c.network_card_index() == Some(default_index))
    {
        Some(card) => count(
            card.maximum_network_interfaces(),
            "NetworkCards[default].MaximumNetworkInterfaces",
        )?,
        // Without per-card data the instance-wide limit is the (only) card's.
        None => count(
            network.maximum_network_interfaces(),
            "NetworkInfo.MaximumNetworkInterfaces",
        )?,
    };
    let hypervisor = Hypervisor::from_api(info.hypervisor().map(|h| h.as_str()))
        .ok_or_else(|| incomplete("a known Hypervisor (nitro, xen or none)"))?;
    let limits = InstanceLimits {
        default_card_max_enis,
        ipv4_per_eni: count(
            network.ipv4_addresses_per_interface(),
            "NetworkInfo.Ipv4AddressesPerInterface",
        )?,
        hypervisor,
        vcpus: count(
            info.v_cpu_info().and_then(|v| v.default_v_cpus()),
            "VCpuInfo.DefaultVCpus",
        )?,
        network_cards: count(
            network.maximum_network_cards().or(Some(1)),
            "NetworkInfo.MaximumNetworkCards",
        )?,
        bare_metal: info.bare_metal().unwrap_or(false),
        nvidia_gpus: info
            .gpu_info()
            .map(|g| {
                g.gpus()
                    .iter()
                    .filter(|d| d.manufacturer() == Some("NVIDIA"))
                    .filter_map(|d| u32::try_from(d.count().unwrap_or(0)).ok())
                    .sum()
            })
            .unwrap_or(0),
        neuron_devices: info
            .neuron_info()
            .map(|n| {
                n.neuron_devices()
                    .iter()
                    .filter_map(|d| u32::try_from(d.count().unwrap_or(0)).ok())
                    .sum()
            })
            .unwrap_or(0),
    };
    Ok((instance_type, limits))
}

/// An EC2 client for DescribeInstanceTypes.
#[derive(Debug, Clone)]
pub struct InstanceTypesClient {
    client: aws_sdk_ec2::Client,
    region: String,
    endpoint: String,
}

impl InstanceTypesClient {
    /// Loads the AWS configuration (credentials from the default chain) with this module's
    /// timeouts and retries.
    pub async fn connect(settings: &Ec2Settings) -> Self {
        let retry = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(EC2_MAX_ATTEMPTS)
            .with_initial_backoff(EC2_INITIAL_BACKOFF);
        let timeout = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(EC2_CONNECT_TIMEOUT)
            .operation_attempt_timeout(EC2_ATTEMPT_TIMEOUT)
            .operation_timeout(EC2_OPERATION_TIMEOUT)
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(retry)
            .timeout_config(timeout);
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(client) = super::http_client(&super::ProxySettings::from_process_env()) {
            loader = loader.http_client(client);
        }
        let config = loader.load().await;
        let region = config
            .region()
            .map_or_else(|| "(none)".to_owned(), |r| r.to_string());
        let endpoint = settings
            .endpoint_url
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        InstanceTypesClient {
            client: aws_sdk_ec2::Client::new(&config),
            region,
            endpoint,
        }
    }

    /// Wraps an EC2 client built elsewhere (its own credentials, retries and timeouts);
    /// `endpoint` only labels errors.
    pub fn from_client(client: aws_sdk_ec2::Client, endpoint: &str) -> Self {
        let region = client
            .config()
            .region()
            .map_or_else(|| "(none)".to_owned(), |r| r.to_string());
        InstanceTypesClient {
            client,
            region,
            endpoint: endpoint.to_owned(),
        }
    }

    fn api_error(&self, what: &str, err: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Api {
            what: what.to_owned(),
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            source: Box::new(err),
        }
    }

    /// Limits of one instance type from the API.
    pub async fn describe(&self, instance_type: &InstanceType) -> Result<InstanceLimits, Error> {
        use aws_sdk_ec2::error::ProvideErrorMetadata;
        tracing::debug!(instance_type = %instance_type, region = %self.region, "DescribeInstanceTypes");
        let out = self
            .client
            .describe_instance_types()
            .instance_types(aws_sdk_ec2::types::InstanceType::from(
                instance_type.as_str(),
            ))
            .send()
            .await;
        let unknown = || Error::UnknownInstanceType {
            instance_type: instance_type.to_string(),
            region: self.region.clone(),
        };
        let out = match out {
            Ok(out) => out,
            Err(err) if err.code() == Some("InvalidInstanceType") => return Err(unknown()),
            Err(err) => return Err(self.api_error(instance_type.as_str(), err)),
        };
        for info in out.instance_types() {
            let (name, limits) = limits_from_info(info)?;
            if &name == instance_type {
                return Ok(limits);
            }
        }
        Err(unknown())
    }

    /// Limits of every instance type the region offers, following pagination.
    pub async fn describe_all(&self) -> Result<Vec<(InstanceType, InstanceLimits)>, Error> {
        let mut all = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_instance_types()
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| self.api_error("all instance types", e))?;
            for info in out.instance_types() {
                all.push(limits_from_info(info)?);
            }
            match out.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(all),
            }
        }
    }
}

/// Limits of `instance_type`: from the embedded table when `lookup` allows and it knows the
/// type (no network, no AWS configuration loaded), else from DescribeInstanceTypes.
pub async fn resolve(
    instance_type: &InstanceType,
    lookup: Lookup,
    settings: &Ec2Settings,
) -> Result<(InstanceLimits, LimitsSource), Error> {
    if lookup == Lookup::TableThenApi {
        if let Some(limits) = embedded_limits(instance_type) {
            return Ok((limits, LimitsSource::EmbeddedTable));
        }
        tracing::info!(instance_type = %instance_type, "instance type not in the embedded table; asking EC2");
    }
    let client = InstanceTypesClient::connect(settings).await;
    Ok((client.describe(instance_type).await?, LimitsSource::Ec2Api))
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{InstanceTypeHypervisor, NetworkCardInfo, NetworkInfo, VCpuInfo};

    use super::*;

    fn card(index: i32, enis: i32) -> NetworkCardInfo {
        NetworkCardInfo::builder()
            .network_card_index(index)
            .maximum_network_interfaces(enis)
            .build()
    }

    fn info(network: NetworkInfo, hypervisor: Option<&str>) -> InstanceTypeInfo {
        let mut b = InstanceTypeInfo::builder()
            .instance_type(aws_sdk_ec2::types::InstanceType::from("p4d.24xlarge"))
            .v_cpu_info(VCpuInfo::builder().default_v_cpus(96).build())
            .network_info(network)
            .bare_metal(hypervisor.is_none());
        if let Some(h) = hypervisor {
            b = b.hypervisor(InstanceTypeHypervisor::from(h));
        }
        b.build()
    }

    #[test]
    fn takes_the_default_cards_enis() {
        let network = NetworkInfo::builder()
            .maximum_network_interfaces(60)
            .maximum_network_cards(4)
            .default_network_card_index(1)
            .network_cards(card(0, 15))
            .network_cards(card(1, 7))
            .ipv4_addresses_per_interface(50)
            .build();
        let (name, limits) = limits_from_info(&info(network, Some("nitro"))).unwrap();
        assert_eq!(name.as_str(), "p4d.24xlarge");
        assert_eq!(
            limits,
            InstanceLimits {
                default_card_max_enis: 7,
                ipv4_per_eni: 50,
                hypervisor: Hypervisor::Nitro,
                vcpus: 96,
                network_cards: 4,
                bare_metal: false,
                nvidia_gpus: 0,
                neuron_devices: 0,
            }
        );
    }

    #[test]
    fn falls_back_to_the_instance_wide_limit_without_cards() {
        let network = NetworkInfo::builder()
            .maximum_network_interfaces(3)
            .ipv4_addresses_per_interface(10)
            .build();
        let (_, limits) = limits_from_info(&info(network, None)).unwrap();
        assert_eq!((limits.default_card_max_enis, limits.network_cards), (3, 1));
        assert_eq!(
            (limits.hypervisor, limits.bare_metal),
            (Hypervisor::None, true)
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let network = NetworkInfo::builder().maximum_network_interfaces(3).build();
        let err = limits_from_info(&info(network, Some("nitro")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Ipv4AddressesPerInterface") && err.contains("p4d.24xlarge"),
            "{err}"
        );
        let network = NetworkInfo::builder()
            .maximum_network_interfaces(3)
            .ipv4_addresses_per_interface(10)
            .build();
        let err = limits_from_info(&info(network, Some("kvm")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Hypervisor"), "{err}");
    }

    #[tokio::test]
    async fn the_table_answers_without_the_network() {
        // An endpoint nobody listens on: the table must answer before any client is built.
        let settings = Ec2Settings {
            region: Some("us-west-2".into()),
            endpoint_url: Some("http://127.0.0.1:9".into()),
            profile: None,
        };
        let t = InstanceType::parse("m5.large").unwrap();
        let (limits, source) = resolve(&t, Lookup::TableThenApi, &settings).await.unwrap();
        assert_eq!(
            (limits.default_card_max_enis, source),
            (3, LimitsSource::EmbeddedTable)
        );
    }
}
