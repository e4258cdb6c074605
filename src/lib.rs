//! ferry: ferry container images across an air gap.
//!
//! The library resolves references against registries, fetches every blob once into a single
//! content-addressed OCI layout, and verifies it. It never prints: progress reaches the caller
//! as [`report::Event`]s.

pub mod bundle;
pub mod credentials;
pub mod delta;
pub mod digest;
pub mod docker_hub;
pub mod error;
pub mod export;
pub mod fetch;
pub mod inputs;
pub mod kube_client;
pub mod lock;
pub mod manifest;
pub mod node;
pub mod plan;
pub mod platform;
pub mod preload;
pub mod push;
pub mod redact;
pub mod reference;
pub mod registry;
pub mod report;
pub mod resolve;
pub mod restore;
pub mod serve;
pub mod snapshot;
pub mod store;
pub mod supply;
pub mod untrusted;
