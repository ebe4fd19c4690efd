//! The HTTP half of token discovery: one anonymous GET of `cluster-info`, over TLS that checks
//! no certificate (the first read, authenticated afterwards by the JWS and the pin) or only
//! the pinned cluster CA (the second).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{Error, Limits};
use crate::net::retry::{NoAnswer, is_retryable_error, is_retryable_status, tls_rejection};
use crate::net::{Attempt, ClientBuilder, Proxy, Trust};

/// The largest `cluster-info` response read (a ConfigMap is at most 1 MiB).
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The HTTPS client: with `ca_pem`, only that CA is trusted; without, no certificate is
/// checked. The proxy is the environment's, as for kubeadm. Each read is bounded by the
/// retry policy.
pub(super) fn client(ca_pem: Option<&[u8]>, limits: &Limits) -> Result<reqwest::Client, Error> {
    let trust = match ca_pem {
        Some(pem) => Trust::Pem(pem.to_vec()),
        None => Trust::UnverifiedForTokenDiscovery,
    };
    ClientBuilder::new()
        .trust(trust)
        .proxy(Proxy::FromEnvironment)
        .connect_timeout(limits.connect)
        .build()
        .map_err(Error::Client)
}

/// The error of the `attempts`-th read when it ran out of time.
pub(super) fn timed_out(url: &str, attempts: u32, started: Instant, bound: Duration) -> Error {
    Error::Unreachable {
        url: url.to_owned(),
        attempts,
        waited: started.elapsed(),
        source: NoAnswer::TimedOut(bound),
    }
}

/// The `attempts`-th read of `cluster-info` at `url` (discovery began at `started`): the
/// ConfigMap's data, or whether the failure is worth another read. With `pinned`, a server
/// certificate the pinned CA did not issue is a refusal.
pub(super) async fn read(
    client: &reqwest::Client,
    url: &str,
    pinned: bool,
    attempts: u32,
    started: Instant,
) -> Attempt<BTreeMap<String, String>, Error> {
    let unreachable = |source: reqwest::Error| Error::Unreachable {
        url: url.to_owned(),
        attempts,
        waited: started.elapsed(),
        source: NoAnswer::Http(source),
    };
    let response = match client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
    {
        Ok(r) => r,
        Err(source) if pinned && tls_rejection(&source).is_some() => {
            return Attempt::Fail(Error::PinnedTls {
                url: url.to_owned(),
                source,
            });
        }
        Err(source) if is_retryable_error(&source) => {
            return Attempt::Retry(unreachable(source));
        }
        Err(source) => return Attempt::Fail(unreachable(source)),
    };
    let status = response.status();
    let body = match read_body(response).await {
        Ok(b) => b,
        Err(source) => return Attempt::Retry(unreachable(source)),
    };
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        // Discovery waits for kubeadm to finish: a missing ConfigMap and a refused anonymous
        // read are retried too, until the discovery timeout.
        let (hint, retry) = match status.as_u16() {
            404 => (
                "; the cluster-info ConfigMap does not exist (yet): this API server is not set up for bootstrap-token discovery, or kubeadm has not finished `kubeadm init`",
                true,
            ),
            401 | 403 => (
                "; anonymous reads of cluster-info are refused: kubeadm grants them with the Role kubeadm:bootstrap-signer-clusterinfo in kube-public (and needs anonymous auth enabled on the API server)",
                true,
            ),
            s if is_retryable_status(s) => ("; the API server is overloaded or starting", true),
            _ => ("", false),
        };
        let error = Error::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            message,
            hint,
            attempts,
            waited: started.elapsed(),
        };
        return if retry {
            Attempt::Retry(error)
        } else {
            Attempt::Fail(error)
        };
    }
    match parse_config_map(&body) {
        Ok(data) => Attempt::Done(data),
        Err(reason) => Attempt::Fail(Error::NotConfigMap {
            url: url.to_owned(),
            reason,
        }),
    }
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `data` of a `v1` `ConfigMap` JSON object.
pub fn parse_config_map(body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    #[derive(serde::Deserialize)]
    struct ConfigMap {
        kind: String,
        #[serde(default)]
        data: BTreeMap<String, String>,
    }
    let cm: ConfigMap =
        serde_json::from_slice(body).map_err(|e| format!("the body is not a ConfigMap ({e})"))?;
    if cm.kind != "ConfigMap" {
        return Err(format!("kind is {:?}", cm.kind));
    }
    Ok(cm.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_v1_config_map_is_read() {
        let data = parse_config_map(
            br#"{"apiVersion":"v1","kind":"ConfigMap","data":{"kubeconfig":"k","jws-kubeconfig-abcdef":"s"}}"#,
        )
        .unwrap();
        assert_eq!(data["kubeconfig"], "k");
        assert_eq!(data.len(), 2);
        assert!(
            parse_config_map(br#"{"kind":"Secret","data":{}}"#)
                .unwrap_err()
                .contains("Secret")
        );
        assert!(parse_config_map(b"<html>").is_err());
    }
}
