//! Property tests for ferry's hand-written parsers of untrusted text: digests, image
//! references, platforms, media types and reference names, manifests, `WWW-Authenticate`
//! challenges, `Retry-After`, mirror flags and the node mirror configs ferry writes.
//!
//! Each parser is checked three ways: it never panics on arbitrary input; valid generated
//! input parses and round-trips through `Display`; and whatever it accepts matches the grammar
//! of the specification, written here as an independent regex (see `grammar`), not derived
//! from ferry's code.

mod challenges;
mod digests;
mod grammar;
mod manifests;
mod mirrors;
mod platforms;
mod references;
mod untrusted;

use proptest::test_runner::Config;

/// Cases per property: enough to find grammar holes, few enough for a 2-core machine.
pub fn config() -> Config {
    Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    }
}
