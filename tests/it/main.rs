//! ferry's integration tests, as one test binary: one build and link instead of one per file,
//! fixtures that can be shared by every test (OnceLock in `common`), and
//! one scheduler that keeps both cores busy. Each module is one topic; shared helpers live in
//! `common` (real components, fakes) and `served` (a running `ferry serve`).
//! The property tests of the parsers stay in their own binary (tests/parsers).

mod auth;
mod auth_defaults;
mod bundle;
mod certificates;
mod cli_output;
mod common;
mod conventions;
mod crashes;
mod delta;
mod error_output;
mod errors;
mod examples;
mod export_more;
mod faults;
mod hostile;
mod inputs;
mod interrupt;
mod k3s;
mod login;
mod logs;
mod mirror_node;
mod mirrors;
mod network;
mod push;
mod push_faults;
mod push_tokens;
mod restore;
mod restore_options;
mod secrets;
mod serve;
mod serve_api;
mod serve_node;
mod served;
mod slow_peers;
mod snapshot;
mod sources;
mod storage;
mod supply;
mod supply_more;
mod terminal;
mod tokens;
mod verify;
