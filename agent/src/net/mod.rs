//! The agent's own HTTP: one client builder (TLS roots, proxies with NO_PROXY, timeouts, user
//! agent) and one retry policy, used by every network call the AWS SDK does not make.

pub mod body;
pub mod client;
pub mod proxy;
pub mod retry;

pub use client::{ClientBuilder, Proxy, Trust};
pub use proxy::ProxySettings;
pub use retry::{Attempt, RetryPolicy};
