//! ferry: ferry container images across an air gap.
//!
//! The library resolves references against registries, fetches every blob once into a single
//! content-addressed OCI layout, and verifies it. It never prints: progress reaches the caller
//! as [`report::Event`]s.
//!
//! The house, from the ground up (a module uses only those on its floor or below;
//! tests/it/architecture.rs checks the foundations):
//!
//! - vocabulary: [`digest`], [`reference`](mod@reference) (and referrer names), [`platform`], [`manifest`],
//!   [`untrusted`] (grammars), [`redact`], [`error`], [`report`] (events), [`docker_hub`]
//! - [`fsutil`]: atomic writes, free space, bounded reads; knows no bundle; [`tool`]: running
//!   an external program to its end or until stopped
//! - two peers that know no command and not each other: [`store`] (the bundle on disk: index,
//!   lock file format, derived files, restore.sh, the one reader `store::source`) and
//!   [`registry`] (the distribution API: one request pipeline, one retry loop) with
//!   [`credentials`]
//! - between them: [`resolve`] (reference -> manifests), [`plan`] (pure), [`fetch`] (one blob
//!   into the store)
//! - commands: [`bundle`], [`lock`], [`delta`], [`export`], [`restore`], [`push`], [`serve`],
//!   [`snapshot`], [`supply`], [`inputs`], [`node`], [`kube_client`]; the CLI (src/cli) draws
//!   their events and is the only place that prints

pub mod artifact;
pub mod bundle;
pub mod chart;
pub mod credentials;
pub mod delta;
pub mod digest;
pub mod docker_hub;
pub mod error;
pub mod export;
pub mod fetch;
pub mod fsutil;
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
pub mod tool;
pub mod untrusted;
