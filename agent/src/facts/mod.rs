//! What is true about this host and instance.

pub mod host;
