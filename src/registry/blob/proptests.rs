//! Property tests for the `Content-Range` parser (RFC 9110 section 14.4): whatever it accepts
//! is a `range-resp` of the grammar with first <= last < complete-length.

use proptest::prelude::*;

use super::parse_content_range;

/// RFC 9110: `"bytes" SP first-pos "-" last-pos "/" ( complete-length / "*" )`.
static GRAMMAR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"^(?i:bytes) [0-9]+-[0-9]+/(?:[0-9]+|\*)$").unwrap()
});

fn near_range() -> impl Strategy<Value = String> {
    prop_oneof![
        "(?:bytes|BYTES|items|byte)?[ \t]{0,2}[+-]?[0-9]{0,21}[ -]{0,2}[+-]?[0-9]{0,21}/?(?:\\*|[0-9]{0,21})",
        "bytes [0-9*/ ,-]{0,20}",
        "bytes [0-9]{1,3}-[0-9]{1,3}/[0-9\u{660}\u{ff11}]{1,3}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn accepts_only_the_grammar(s in prop_oneof![any::<String>(), near_range()]) {
        if let Some((first, last, total)) = parse_content_range(&s) {
            prop_assert!(GRAMMAR.is_match(s.trim()), "{s:?}");
            prop_assert!(first <= last, "{s:?}");
            prop_assert!(total.is_none_or(|t| last < t), "{s:?}");
        }
    }

    #[test]
    fn valid_ranges_round_trip(first in any::<u64>(), len in 0u64..1 << 40, more in 1u64..1 << 40, star in any::<bool>()) {
        let last = first.saturating_add(len);
        let total = last.checked_add(more);
        let (shown, want) = match total {
            Some(t) if !star => (format!("bytes {first}-{last}/{t}"), Some(t)),
            _ => (format!("bytes {first}-{last}/*"), None),
        };
        prop_assert_eq!(parse_content_range(&shown), Some((first, last, want)));
    }
}

#[test]
fn tricky_ranges() {
    for bad in [
        "bytes +1-2/3",
        "bytes 1-+2/3",
        "bytes 1-2/+3",
        "bytes1-2/3",
        "bytes 2-1/3",
        "bytes 1-3/3",
        "bytes 1-2/ 3",
        "bytes */3",
        "bytes 1-2",
        "bytes -1-2/3",
        "bytes 1-2/18446744073709551616",
        "bytes \u{661}-2/3",
    ] {
        assert_eq!(parse_content_range(bad), None, "{bad:?}");
    }
    assert_eq!(parse_content_range("Bytes 0-0/1"), Some((0, 0, Some(1))));
}
