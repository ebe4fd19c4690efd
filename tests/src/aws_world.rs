//! Seeds moto with an EC2 instance (RunInstances) and an EKS cluster (CreateCluster) through
//! the AWS SDK, and describes the same instance for the IMDS emulator, so the emulator and
//! moto agree about one host.

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::imds::{Instance, Interface};

/// Region the tests use.
pub const REGION: &str = "us-west-2";
/// An AMI moto knows in every region.
const MOTO_AMI: &str = "ami-03cf127a";
/// Service CIDR given to the test cluster.
pub const SERVICE_CIDR: &str = "172.20.0.0/16";
/// Remote node network given to the test cluster (hybrid nodes).
pub const REMOTE_NODE_CIDR: &str = "10.200.0.0/16";

/// Static test credentials for moto (passed to clients, never put in the process environment).
pub fn credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        "testing",
        "testing",
        None,
        None,
        "moto-test",
    ))
}

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(credentials())
        .endpoint_url(endpoint)
        .load()
        .await
}

/// What was created in moto.
#[derive(Debug, Clone)]
pub struct World {
    /// The instance as the IMDS emulator should serve it.
    pub instance: Instance,
    /// `PrivateDnsName` moto reports for it.
    pub private_dns_name: String,
}

/// Runs one instance of `instance_type` in moto and returns its description for IMDS.
pub async fn run_instance(endpoint: &str, instance_type: &str) -> World {
    let ec2 = aws_sdk_ec2::Client::new(&sdk(endpoint).await);
    let out = ec2
        .run_instances()
        .image_id(MOTO_AMI)
        .instance_type(aws_sdk_ec2::types::InstanceType::from(instance_type))
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("moto RunInstances");
    let inst = out.instances().first().expect("one instance").clone();
    let nic = inst
        .network_interfaces()
        .first()
        .expect("a network interface")
        .clone();
    let subnet_id = inst.subnet_id().expect("subnet").to_string();
    let vpc_id = inst.vpc_id().expect("vpc").to_string();
    let subnets = ec2
        .describe_subnets()
        .subnet_ids(&subnet_id)
        .send()
        .await
        .expect("moto DescribeSubnets");
    let subnet_cidr = subnets.subnets()[0].cidr_block().map(str::to_string);
    let vpcs = ec2
        .describe_vpcs()
        .vpc_ids(&vpc_id)
        .send()
        .await
        .expect("moto DescribeVpcs");
    let vpc_cidrs: Vec<String> = vpcs.vpcs()[0]
        .cidr_block_association_set()
        .iter()
        .filter_map(|a| a.cidr_block().map(str::to_string))
        .collect();
    let az = inst
        .placement()
        .and_then(|p| p.availability_zone())
        .expect("az")
        .to_string();
    let private_ip = inst.private_ip_address().expect("private ip").to_string();
    let private_dns_name = inst.private_dns_name().unwrap_or_default().to_string();
    let mut instance = Instance::example();
    instance.instance_id = inst.instance_id().expect("id").to_string();
    instance.instance_type = instance_type.to_string();
    instance.region = REGION.to_string();
    instance.availability_zone = az;
    instance.account_id = "123456789012".to_string();
    instance.image_id = MOTO_AMI.to_string();
    instance.local_hostname = private_dns_name.clone();
    instance.interfaces = vec![Interface {
        mac: nic.mac_address().expect("mac").to_string(),
        device_number: 0,
        network_card: Some(0),
        local_ipv4s: vec![private_ip],
        ipv6s: vec![],
        vpc_ipv4_cidr_blocks: vpc_cidrs,
        subnet_ipv4_cidr_block: subnet_cidr,
        subnet_id,
        vpc_id,
    }];
    World {
        instance,
        private_dns_name,
    }
}

/// Creates an EKS cluster in moto (status ACTIVE at once: moto has no CREATING phase).
pub async fn create_cluster(endpoint: &str, name: &str) {
    let eks = aws_sdk_eks::Client::new(&sdk(endpoint).await);
    eks.create_cluster()
        .name(name)
        .role_arn("arn:aws:iam::123456789012:role/eks-cluster")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-0123456789abcdef0")
                .build(),
        )
        .kubernetes_network_config(
            aws_sdk_eks::types::KubernetesNetworkConfigRequest::builder()
                .service_ipv4_cidr(SERVICE_CIDR)
                .ip_family(aws_sdk_eks::types::IpFamily::Ipv4)
                .build(),
        )
        .remote_network_config(
            aws_sdk_eks::types::RemoteNetworkConfigRequest::builder()
                .remote_node_networks(
                    aws_sdk_eks::types::RemoteNodeNetwork::builder()
                        .cidrs(REMOTE_NODE_CIDR)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("moto CreateCluster");
}

/// ECS in moto, seeded the way the ECS agent does it: CreateCluster, then
/// RegisterContainerInstance with the EC2 instance's identity document (what the agent sends
/// from IMDS), so the container instance's `ec2InstanceId` is the IMDS emulator's instance.
pub mod ecs {
    use aws_sdk_ecs::types::ContainerInstanceStatus;

    async fn client(endpoint: &str) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&super::sdk(endpoint).await)
    }

    /// Creates `cluster` and registers `world`'s instance in it; returns the container
    /// instance ARN.
    pub async fn register(endpoint: &str, cluster: &str, world: &super::World) -> String {
        let c = client(endpoint).await;
        c.create_cluster()
            .cluster_name(cluster)
            .send()
            .await
            .expect("CreateCluster");
        let out = c
            .register_container_instance()
            .cluster(cluster)
            .instance_identity_document(world.instance.identity_document())
            .send()
            .await
            .expect("RegisterContainerInstance");
        out.container_instance()
            .and_then(|ci| ci.container_instance_arn())
            .expect("container instance ARN")
            .to_owned()
    }

    /// The container instance's status (`ACTIVE`, `DRAINING`) as DescribeContainerInstances
    /// gives it.
    pub async fn status(endpoint: &str, cluster: &str, arn: &str) -> Option<String> {
        let out = client(endpoint)
            .await
            .describe_container_instances()
            .cluster(cluster)
            .container_instances(arn)
            .send()
            .await
            .expect("DescribeContainerInstances");
        out.container_instances()
            .first()
            .and_then(|c| c.status())
            .map(str::to_owned)
    }

    /// Registers a one-container task definition and starts a task of it on the container
    /// instance `arn` (StartTask); returns the task ARN.
    pub async fn start_task(endpoint: &str, cluster: &str, arn: &str) -> String {
        use aws_sdk_ecs::types::ContainerDefinition;
        let c = client(endpoint).await;
        c.register_task_definition()
            .family("web")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("web")
                    .image("public.ecr.aws/nginx/nginx:latest")
                    .memory(128)
                    .build(),
            )
            .send()
            .await
            .expect("RegisterTaskDefinition");
        let out = c
            .start_task()
            .cluster(cluster)
            .task_definition("web")
            .container_instances(arn)
            .send()
            .await
            .expect("StartTask");
        out.tasks()
            .first()
            .and_then(|t| t.task_arn())
            .expect("a task")
            .to_owned()
    }

    /// Stops a task (StopTask).
    pub async fn stop_task(endpoint: &str, cluster: &str, task: &str) {
        client(endpoint)
            .await
            .stop_task()
            .cluster(cluster)
            .task(task)
            .send()
            .await
            .expect("StopTask");
    }

    /// Whether the status is DRAINING.
    pub async fn is_draining(endpoint: &str, cluster: &str, arn: &str) -> bool {
        status(endpoint, cluster, arn).await.as_deref()
            == Some(ContainerInstanceStatus::Draining.as_str())
    }
}
