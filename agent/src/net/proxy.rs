//! Proxy settings for the agent's own calls (EC2, EKS, STS, Roles Anywhere, SSM, mirrors).
//! IMDS and loopback endpoints never go through a proxy.

/// Proxy settings for the agent's own calls. IMDS never uses them.
/// The AWS SDK's HTTP client ignores the proxy variables unless told, so the agent reads them
/// itself: from its process environment first, then from the NodeConfig's
/// `spec.instance.environment` (what containerd and kubelet get).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// `HTTPS_PROXY` (used for https:// endpoints, i.e. every AWS endpoint).
    pub https: Option<String>,
    /// `HTTP_PROXY` (used for http:// endpoints: mirrors and local emulators).
    pub http: Option<String>,
    /// `NO_PROXY`: hosts, domains and CIDRs reached directly.
    pub no_proxy: Option<String>,
}

impl ProxySettings {
    /// Reads the variables (upper case first, then lower case, as curl and Go do);
    /// `ALL_PROXY` stands in for a scheme's proxy that is not set, as in curl.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> ProxySettings {
        let var = |upper: &str, lower: &str| {
            get(upper)
                .filter(|v| !v.trim().is_empty())
                .or_else(|| get(lower).filter(|v| !v.trim().is_empty()))
        };
        let all = var("ALL_PROXY", "all_proxy");
        ProxySettings {
            https: var("HTTPS_PROXY", "https_proxy").or_else(|| all.clone()),
            http: var("HTTP_PROXY", "http_proxy").or(all),
            no_proxy: var("NO_PROXY", "no_proxy"),
        }
    }

    /// The process environment.
    pub fn from_process_env() -> ProxySettings {
        ProxySettings::from_vars(|k| std::env::var(k).ok())
    }

    /// These settings where set, else `fallback`'s (as a whole: a proxy and its NO_PROXY
    /// belong together).
    pub fn or(self, fallback: ProxySettings) -> ProxySettings {
        if self.https.is_some() || self.http.is_some() {
            self
        } else {
            fallback
        }
    }

    /// The SDK's proxy configuration; `None` when no proxy is set.
    pub fn proxy_config(
        &self,
    ) -> Result<Option<aws_smithy_http_client::proxy::ProxyConfig>, String> {
        use aws_smithy_http_client::proxy::ProxyConfig;
        let config = match (&self.https, &self.http) {
            (Some(s), Some(h)) if s == h => ProxyConfig::all(s.as_str()),
            (Some(s), _) => ProxyConfig::https(s.as_str()),
            (None, Some(h)) => ProxyConfig::http(h.as_str()),
            (None, None) => return Ok(None),
        }
        .map_err(|e| format!("{e}"))?;
        Ok(Some(match &self.no_proxy {
            Some(rules) => config.no_proxy(rules),
            None => config,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> ProxySettings {
        ProxySettings::from_vars(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn upper_case_first_then_lower_then_all_proxy() {
        let p = vars(&[
            ("https_proxy", "http://lower:3128"),
            ("HTTPS_PROXY", " "),
            ("ALL_PROXY", "http://all:3128"),
            ("no_proxy", "10.0.0.0/8"),
        ]);
        assert_eq!(p.https.as_deref(), Some("http://lower:3128"));
        assert_eq!(p.http.as_deref(), Some("http://all:3128"));
        assert_eq!(p.no_proxy.as_deref(), Some("10.0.0.0/8"));
        assert_eq!(vars(&[]), ProxySettings::default());
    }
}
