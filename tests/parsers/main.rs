//! Property tests for ferry's hand-written parsers of untrusted text: digests, image
//! references, platforms, media types and reference names, manifests, `WWW-Authenticate`
//! challenges, `Retry-After`, mirror flags and the node mirror configs ferry writes.
//!
//! Each parser is checked three ways: it never panics on arbitrary input; valid generated
//! input parses and round-trips through `Display`; and whatever it accepts matches the grammar
//! of the specification, written here as an independent regex (see `grammar`), not derived
//! from ferry's code. A property that asserts on accepted input only is fed a mix of valid,
//! nearly valid (one character changed) and arbitrary input, and a plain test measures that
//! the mix really holds both kinds ([`accepted_share`]): arbitrary strings alone almost never
//! parse, and the property would then check nothing.

mod challenges;
mod digests;
mod grammar;
mod manifests;
mod mirrors;
mod platforms;
mod references;
mod untrusted;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

/// Cases per property: enough to find grammar holes, few enough for a 2-core machine.
pub fn config() -> Config {
    Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    }
}

/// `base` with one character inserted, removed or replaced by one of those that matter to the
/// grammars (separators, case, whitespace, non-ASCII).
pub fn mutated(base: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    let odd = vec![
        '/', ':', '@', '.', '-', '_', '+', '=', 'A', 'z', '0', ' ', '\n', '\u{e9}', '%',
    ];
    (
        base,
        any::<prop::sample::Index>(),
        prop::sample::select(odd),
        0..3u8,
    )
        .prop_map(|(s, at, c, op)| {
            let mut chars: Vec<char> = s.chars().collect();
            let i = at.index(chars.len() + 1);
            match op {
                0 => chars.insert(i, c),
                _ if i == chars.len() => chars.push(c),
                1 => {
                    chars.remove(i);
                }
                _ => chars[i] = c,
            }
            chars.into_iter().collect()
        })
}

/// The share of 512 values drawn from `strategy` that `accepted` holds for.
pub fn accepted_share<S: Strategy>(strategy: S, accepted: impl Fn(&S::Value) -> bool) -> f64 {
    let mut runner = TestRunner::deterministic();
    let n = 512;
    let hits = (0..n)
        .filter(|_| accepted(&strategy.new_tree(&mut runner).unwrap().current()))
        .count();
    hits as f64 / n as f64
}

/// Asserts that a property's input mix holds accepted and refused values alike (10 to 90%).
pub fn assert_mixed(what: &str, share: f64) {
    assert!(
        (0.1..=0.9).contains(&share),
        "{what}: {:.0}% of the generated input is accepted",
        share * 100.0
    );
}
