//! The `sts-identity` check of `status`: the node's credentials call STS GetCallerIdentity the
//! way the cluster's authenticator does with the node's token (the presigned URL and its
//! signed `x-k8s-aws-id` header), and on a Roles Anywhere node the identity is a session of
//! the role the configuration names.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_credential_types::Credentials;

use super::Outcome;
use super::status::{HTTP_RETRY, Inputs, fail, ok, truncate, warn};
use crate::auth::token::{self, ClusterId};
use crate::model::Region;
use crate::model::text::error_chain;
use crate::net::retry::{is_retryable_error, is_retryable_status};
use crate::net::{Attempt, ClientBuilder, Proxy, ProxySettings, Trust};

/// What STS said about the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `Arn`.
    pub arn: String,
    /// `Account`.
    pub account: String,
    /// `UserId`.
    pub user_id: String,
}

/// Parses STS's answer to GetCallerIdentity: a `GetCallerIdentityResponse` on 200, an
/// `ErrorResponse` (`Code`, `Message`) otherwise.
pub fn parse_caller_identity(status: u16, body: &str) -> Result<CallerIdentity, String> {
    let fields = xml_leaves(body, &["Arn", "Account", "UserId", "Code", "Message"]);
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    if status == 200 {
        let arn = get("Arn");
        if arn.is_empty() {
            return Err(format!(
                "STS answered HTTP 200 without an Arn: {}",
                truncate(body, 200)
            ));
        }
        return Ok(CallerIdentity {
            arn,
            account: get("Account"),
            user_id: get("UserId"),
        });
    }
    let code = get("Code");
    if code.is_empty() {
        Err(format!(
            "STS answered HTTP {status}: {}",
            truncate(body, 200)
        ))
    } else {
        Err(format!(
            "STS answered HTTP {status} {code}: {}",
            get("Message")
        ))
    }
}

/// The text of the named leaf elements anywhere in `xml` (first occurrence wins).
fn xml_leaves(xml: &str, names: &[&str]) -> BTreeMap<String, String> {
    use aws_smithy_xml::decode::{Document, ScopedDecoder, try_data};
    fn walk(el: &mut ScopedDecoder<'_, '_>, names: &[&str], out: &mut BTreeMap<String, String>) {
        while let Some(mut child) = el.next_tag() {
            let local = child.start_el().local().to_owned();
            if names.contains(&local.as_str()) && !out.contains_key(&local) {
                if let Ok(text) = try_data(&mut child) {
                    out.insert(local, text.trim().to_owned());
                }
            } else {
                walk(&mut child, names, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    let mut doc = Document::new(xml);
    if let Ok(mut root) = doc.root_element() {
        walk(&mut root, names, &mut out);
    }
    out
}

/// The `sts-identity` check. `expected_role` is the IAM role ARN the configuration names
/// (Roles Anywhere); the identity must be a session of that role.
pub fn check(identity: &Result<CallerIdentity, String>, expected_role: Option<&str>) -> Outcome {
    match identity {
        Ok(id) => {
            let evidence = format!(
                "STS GetCallerIdentity with the node's token: {} (account {})",
                id.arn, id.account
            );
            match expected_role.filter(|role| !assumed_role_matches(&id.arn, role)) {
                Some(role) => warn(
                    "NotASessionOfTheRole",
                    format!("{evidence}; expected a session of {role}"),
                    "the cluster maps the node by its role: make the credentials assume the role in spec.hybrid.iamRolesAnywhere.roleArn (check the Roles Anywhere profile's roles), or correct roleArn",
                ),
                None => ok(evidence),
            }
        }
        Err(e) => fail(
            "CallerIdentityFailed",
            e.clone(),
            "the cluster authenticates the node with this call: fix the credentials check first; then allow outbound HTTPS to the regional STS endpoint (sts.REGION.amazonaws.com, or AWS_ENDPOINT_URL_STS), check that the node's clock is right (signatures expire) and that the role's trust policy allows this session",
        ),
    }
}

/// True when `arn` (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`) is a session of
/// `role_arn` (`arn:aws:iam::ACCOUNT:role/PATH/NAME`).
pub fn assumed_role_matches(arn: &str, role_arn: &str) -> bool {
    let account = |a: &str| a.split(':').nth(4).map(str::to_owned);
    let role_name = role_arn
        .split_once(":role/")
        .and_then(|(_, p)| p.rsplit('/').next());
    let session_role = arn
        .split_once(":assumed-role/")
        .and_then(|(_, p)| p.split('/').next());
    account(arn).is_some() && account(arn) == account(role_arn) && role_name == session_role
}

/// The STS endpoint override: the flag, `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`.
fn sts_override(inputs: &Inputs) -> Option<String> {
    inputs
        .sts_endpoint
        .clone()
        .or_else(|| (inputs.env)("AWS_ENDPOINT_URL_STS"))
        .or_else(|| (inputs.env)("AWS_ENDPOINT_URL"))
}

/// What the cluster's authenticator does with the node's token: GET the presigned
/// GetCallerIdentity URL with the signed `x-k8s-aws-id` header. With an endpoint override the
/// request goes there, still naming the signed host in `Host`.
pub async fn caller_identity(
    inputs: &Inputs,
    creds: &Credentials,
    region: &Region,
) -> Result<CallerIdentity, String> {
    let cluster = &inputs.config.spec.cluster;
    let (id, field) = match (&cluster.id, inputs.config.is_outpost()) {
        (Some(id), true) => (id.clone(), "spec.cluster.id"),
        _ => (
            cluster.name.clone().unwrap_or_default(),
            "spec.cluster.name",
        ),
    };
    let cluster_id = ClusterId::parse(&id, field).map_err(|e| error_chain(&e))?;
    let url = token::presign_url(creds, region, &cluster_id, inputs.clock.now())
        .map_err(|e| error_chain(&e))?;
    let signed_host = region.sts_host();
    let target = match sts_override(inputs) {
        Some(base) => retarget(&url, &base)?,
        None => url,
    };
    let client = sts_client(inputs)?;
    let (answer, attempts) = HTTP_RETRY
        .run(
            |attempt| {
                let request = client
                    .get(&target)
                    .header(reqwest::header::HOST, &signed_host)
                    .header(token::CLUSTER_ID_HEADER, cluster_id.as_str());
                async move {
                    match request.send().await {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let body = resp.text().await.unwrap_or_default();
                            let parsed = parse_caller_identity(status, &body);
                            match parsed {
                                Err(why) if is_retryable_status(status) => {
                                    tracing::debug!(attempt, reason = %why, "retrying STS GetCallerIdentity");
                                    Attempt::Retry(Failure::Answer(why))
                                }
                                answered => Attempt::Done(answered),
                            }
                        }
                        Err(e) if is_retryable_error(&e) => {
                            tracing::debug!(attempt, reason = %error_chain(&e), "retrying STS GetCallerIdentity");
                            Attempt::Retry(Failure::Transport(error_chain(&e)))
                        }
                        Err(e) => Attempt::Fail(Failure::Transport(error_chain(&e))),
                    }
                }
            },
            |_, limit| Failure::Transport(format!("no answer within {limit:?}")),
        )
        .await;
    match answer {
        Ok(answered) => answered,
        // The last answer STS gave, as it gave it.
        Err(Failure::Answer(why)) => Err(why),
        Err(Failure::Transport(why)) => Err(format!(
            "STS at {}: no answer after {attempts} attempt(s): {why}",
            strip_query(&target)
        )),
    }
}

/// Why an attempt at STS did not give an answer to keep.
enum Failure {
    /// STS answered with an error worth another attempt (throttling, server errors).
    Answer(String),
    /// No answer: connection, timeout, or the request could not be sent.
    Transport(String),
}

/// The HTTPS client for STS: the system's CAs, or only the bundle `AWS_CA_BUNDLE` names (as
/// the AWS CLI and SDKs use it); the proxy of the environment.
fn sts_client(inputs: &Inputs) -> Result<reqwest::Client, String> {
    let env = inputs.env.as_ref();
    let trust = match env("AWS_CA_BUNDLE") {
        Some(bundle) => Trust::Only(PathBuf::from(bundle)),
        None => Trust::System,
    };
    ClientBuilder::new()
        .trust(trust)
        .proxy(Proxy::Settings(ProxySettings::from_vars(env)))
        .build()
        .map_err(|e| error_chain(&e))
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// `url` with the scheme, host and port of `base`.
fn retarget(url: &str, base: &str) -> Result<String, String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("presigned URL: {e}"))?;
    let b = url::Url::parse(base).map_err(|e| format!("STS endpoint {base:?}: {e}"))?;
    u.set_scheme(b.scheme())
        .and_then(|()| u.set_host(b.host_str()).map_err(|_| ()))
        .and_then(|()| u.set_port(b.port()))
        .map_err(|()| format!("STS endpoint {base:?} is not an http(s) URL"))?;
    Ok(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_answers_parse() {
        let good = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><UserId>AROAEXAMPLE:node-1</UserId><Account>123456789012</Account><Arn>arn:aws:sts::123456789012:assumed-role/eks-hybrid/node-1</Arn></GetCallerIdentityResult><ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#;
        let id = parse_caller_identity(200, good).unwrap();
        assert_eq!(
            id.arn,
            "arn:aws:sts::123456789012:assumed-role/eks-hybrid/node-1"
        );
        assert_eq!(id.account, "123456789012");
        assert!(assumed_role_matches(
            &id.arn,
            "arn:aws:iam::123456789012:role/path/eks-hybrid"
        ));
        assert!(!assumed_role_matches(
            &id.arn,
            "arn:aws:iam::123456789012:role/other"
        ));
        assert!(!assumed_role_matches(
            &id.arn,
            "arn:aws:iam::210987654321:role/eks-hybrid"
        ));
        let bad = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>Signature expired</Message></Error><RequestId>x</RequestId></ErrorResponse>"#;
        let err = parse_caller_identity(403, bad).unwrap_err();
        assert_eq!(
            err,
            "STS answered HTTP 403 SignatureDoesNotMatch: Signature expired"
        );
        assert!(parse_caller_identity(200, "<x/>").is_err());
    }

    #[test]
    fn retarget_keeps_the_signed_query() {
        let url =
            "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&X-Amz-Signature=ab";
        assert_eq!(
            retarget(url, "http://127.0.0.1:5000").unwrap(),
            "http://127.0.0.1:5000/?Action=GetCallerIdentity&X-Amz-Signature=ab"
        );
    }
}
