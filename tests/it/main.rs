//! ferry's integration tests, as one test binary: one build and link instead of one per file,
//! fixtures made once per run and shared by every test (common/fixtures.rs: the seeded
//! registry storage each test's registry starts on a copy of, big images, TLS material), and
//! one scheduler for the whole suite (scripts/test.sh runs 4 at a time: they mostly wait).
//! Each module is one topic; shared helpers live in `common` (real components, fakes) and
//! `served` (a running `ferry serve`). The parsers' property tests are their own binary
//! (tests/parsers). A new test file goes here as a module: `mod NAME;` below, and
//! `use crate::common;` at its top instead of `mod common;`.

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
