//! The `api-server` check of `status`: the API server answers an anonymous `GET /version`
//! over TLS verified with the cluster's CA only (as the kubelet trusts it). Its version feeds
//! the kubelet's skew check.

use super::Outcome;
use super::status::{HTTP_RETRY, fail, ok, warn};
use crate::auth::credentials::Env;
use crate::model::Version;
use crate::model::text::error_chain;
use crate::net::retry::{is_retryable_error, is_retryable_status, tls_rejection};
use crate::net::{Attempt, ClientBuilder, Proxy, ProxySettings, Trust};

/// Largest answer body read from the API server.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// What probing the API server's `/version` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiProbe {
    /// No endpoint or CA to probe with; the reason.
    NotConfigured(String),
    /// The configured CA bundle is unusable.
    BadCa(String),
    /// TLS handshake failed verification: the CA does not match the server's certificate.
    Untrusted(String),
    /// No connection (DNS, refused, timeout).
    Unreachable(String),
    /// HTTPS worked; `/version` answered with this status (not 200).
    Refused {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// HTTPS worked and `/version` answered something that is not a version.
    BadAnswer(String),
    /// The server's version.
    Version {
        /// `gitVersion`, e.g. `v1.33.5-eks-3025e55`.
        git_version: String,
        /// Parsed.
        version: Version,
    },
}

/// The `api-server` check.
pub fn check(endpoint: Option<&str>, probe: &ApiProbe) -> Outcome {
    let at = endpoint.unwrap_or("(no endpoint)");
    match probe {
        ApiProbe::Version { git_version, .. } => ok(format!(
            "{at}: TLS verified with the cluster CA; GET /version: {git_version}"
        )),
        ApiProbe::NotConfigured(why) => fail(
            "ApiServerNotConfigured",
            why.clone(),
            "set spec.cluster.apiServerEndpoint and spec.cluster.certificateAuthority (from `aws eks describe-cluster --query 'cluster.[endpoint,certificateAuthority.data]'`), or give the node credentials that may call eks:DescribeCluster",
        ),
        ApiProbe::BadCa(why) => fail(
            "ClusterCaUnusable",
            format!("the cluster CA is unusable: {why}"),
            "set spec.cluster.certificateAuthority to the base64 PEM from `aws eks describe-cluster --query cluster.certificateAuthority.data`",
        ),
        ApiProbe::Untrusted(why) => fail(
            "ApiServerUntrusted",
            format!("{at}: TLS verification failed with the configured CA: {why}"),
            "the CA does not match this cluster: set spec.cluster.certificateAuthority to the cluster's CA (`aws eks describe-cluster --query cluster.certificateAuthority.data`) and check that apiServerEndpoint is this cluster's endpoint (no TLS-intercepting proxy in between)",
        ),
        ApiProbe::Unreachable(why) => fail(
            "ApiServerUnreachable",
            format!("{at}: unreachable: {why}"),
            "allow outbound TCP 443 from the node to the API server (security groups, firewall, routes to the cluster's VPC; for a private endpoint, DNS resolution from the node's network), or correct spec.cluster.apiServerEndpoint",
        ),
        ApiProbe::Refused { status, body } => warn(
            "VersionRefused",
            format!(
                "{at}: TLS verified with the cluster CA, but anonymous GET /version answered HTTP {status}: {body}"
            ),
            "the server is reachable and trusted; it refuses anonymous discovery, so the version skew check cannot run: allow system:public-info-viewer for system:unauthenticated, or check the versions by hand",
        ),
        ApiProbe::BadAnswer(why) => fail(
            "NotAnApiServer",
            format!("{at}: TLS verified, but {why}"),
            "the endpoint is not a Kubernetes API server: correct spec.cluster.apiServerEndpoint",
        ),
    }
}

/// The API server's `/version` answer: `gitVersion` and its parsed form.
pub fn parse_server_version(body: &[u8]) -> Result<(String, Version), String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("/version is not JSON ({e})"))?;
    let git = value
        .get("gitVersion")
        .and_then(|v| v.as_str())
        .ok_or("/version has no gitVersion")?;
    let version =
        Version::parse_word(git).ok_or_else(|| format!("gitVersion {git:?} is not a version"))?;
    Ok((git.to_owned(), version))
}

/// Anonymous `GET /version` over TLS verified with `ca_pem` only (as the kubelet trusts it),
/// through the proxy `env` sets; retried by [`HTTP_RETRY`].
pub async fn probe(endpoint: &str, ca_pem: &[u8], env: &Env) -> ApiProbe {
    let built = ClientBuilder::new()
        .trust(Trust::Pem(ca_pem.to_vec()))
        .proxy(Proxy::Settings(ProxySettings::from_vars(env)))
        .build();
    let client = match built {
        Ok(c) => c,
        Err(crate::net::client::Error::Certificates { reason }) => return ApiProbe::BadCa(reason),
        Err(e @ crate::net::client::Error::Tls(_)) => return ApiProbe::BadCa(error_chain(&e)),
        Err(e) => return ApiProbe::Unreachable(error_chain(&e)),
    };
    let url = format!("{}/version", endpoint.trim_end_matches('/'));
    let (answer, attempts) = HTTP_RETRY
        .run(
            |_| {
                let request = client.get(&url);
                async move {
                    match request.send().await {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let body = resp.bytes().await.unwrap_or_default();
                            let body = &body[..body.len().min(MAX_BODY_BYTES)];
                            if status == 200 {
                                return Attempt::Done(version_answer(body));
                            }
                            let refused = ApiProbe::Refused {
                                status,
                                body: String::from_utf8_lossy(body).chars().take(200).collect(),
                            };
                            if is_retryable_status(status) {
                                Attempt::Retry(refused)
                            } else {
                                Attempt::Done(refused)
                            }
                        }
                        Err(e) => match tls_rejection(&e) {
                            Some(why) => Attempt::Fail(ApiProbe::Untrusted(why)),
                            None if is_retryable_error(&e) => {
                                Attempt::Retry(ApiProbe::Unreachable(error_chain(&e)))
                            }
                            None => Attempt::Fail(ApiProbe::Unreachable(error_chain(&e))),
                        },
                    }
                }
            },
            |_, limit| ApiProbe::Unreachable(format!("no answer within {limit:?}")),
        )
        .await;
    match answer {
        Ok(probe) => probe,
        Err(ApiProbe::Unreachable(why)) => {
            ApiProbe::Unreachable(format!("{why} after {attempts} attempt(s)"))
        }
        // The last answer (a server error) or the TLS rejection.
        Err(other) => other,
    }
}

/// What a 200 answer to `/version` says.
fn version_answer(body: &[u8]) -> ApiProbe {
    match parse_server_version(body) {
        Ok((git_version, version)) => ApiProbe::Version {
            git_version,
            version,
        },
        Err(e) => ApiProbe::BadAnswer(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    #[test]
    fn api_probe_outcomes() {
        let at = Some("https://x.example:443");
        let version = ApiProbe::Version {
            git_version: "v1.33.1".into(),
            version: Version {
                major: 1,
                minor: 33,
                patch: 1,
            },
        };
        assert_eq!(check(at, &version).status, Status::Ok);
        let r = check(at, &ApiProbe::Untrusted("UnknownIssuer".into()));
        assert_eq!(r.status, Status::Fail);
        assert!(r.fix.contains("certificateAuthority"));
        assert_eq!(
            check(
                at,
                &ApiProbe::Refused {
                    status: 401,
                    body: String::new()
                }
            )
            .status,
            Status::Warn
        );
        assert_eq!(
            check(at, &ApiProbe::Unreachable("refused".into())).status,
            Status::Fail
        );
    }
}
