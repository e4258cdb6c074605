//! ferry's integration tests, as one test binary: one build and link instead of one per file,
//! fixtures made once per run and shared by every test (common/fixtures.rs: the seeded
//! registry storage each test's registry starts on a copy of, big images, TLS material), and
//! one scheduler for the whole suite (scripts/test.sh runs 4 at a time: they mostly wait).
//! Each module is one topic; shared helpers live in `common` (real components, fakes) and
//! `served` (a running `ferry serve`). The parsers' property tests are their own binary
//! (tests/parsers). A new test file goes here as a module: `mod NAME;` below, and
//! `use crate::common;` at its top instead of `mod common;`.

mod architecture;
mod archive;
mod artifacts;
mod auth;
mod auth_defaults;
mod big_blobs;
mod binary_delta;
mod broken_pipe;
mod bundle;
mod certificates;
mod chart_images;
mod chart_lock;
mod chart_pull;
mod chart_tls;
mod charts;
mod cli_output;
mod common;
mod conventions;
mod copy_progress;
mod crashes;
mod delta;
mod error_output;
mod errors;
mod escaping;
mod examples;
mod export_more;
mod faults;
mod faults_redirects;
mod files;
mod fleet_mirrors;
mod hostile;
mod inputs;
mod interrupt;
mod interrupt_bars;
mod interrupted;
mod json_exit;
mod k3s;
mod links;
mod login;
mod logs;
mod mirror_node;
mod mirrors;
mod network;
mod nodes;
mod nothing_to_do;
mod platforms_missing;
mod prefixes;
mod preload;
mod push;
mod push_faults;
mod push_mirror_config;
mod push_readback;
mod push_tokens;
mod referrers_cap;
mod restore;
mod restore_from;
mod restore_options;
mod secrets;
mod serve;
mod serve_api;
mod serve_changed;
mod serve_fleet;
mod serve_node;
mod serve_reload;
mod served;
mod slow_peers;
mod snapshot;
mod sources;
mod storage;
mod strict_inputs;
mod supply;
mod supply_more;
mod terminal;
mod tokens;
mod verify;
