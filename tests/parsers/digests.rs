//! `sha256:<hex>` and `sha512:<hex>` digests.

use ferry::digest::{Algorithm, Digest};
use proptest::prelude::*;

use crate::grammar::{DIGEST, REGISTERED_DIGEST};

/// A digest string that is valid under the spec, for either registered algorithm.
pub fn valid_digest() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}")),
        "[0-9a-f]{128}".prop_map(|h| format!("sha512:{h}")),
    ]
}

/// Strings near the grammar: algorithm-ish, a colon, hex-ish of about the right lengths.
fn near_digest() -> impl Strategy<Value = String> {
    let alg = prop_oneof![
        Just("sha256".to_owned()),
        Just("sha512".to_owned()),
        Just("SHA256".to_owned()),
        Just("sha384".to_owned()),
        Just("blake3".to_owned()),
        Just("sha256+b64u".to_owned()),
        "[a-z0-9+._-]{0,10}",
    ];
    let hex = prop_oneof![
        "[0-9a-fA-F]{63,65}",
        "[0-9a-f]{127,129}",
        "[0-9a-zA-Z=_./-]{0,130}",
        "[0-9a-f\u{e9}\u{660}\n ]{60,70}",
    ];
    (alg, prop::sample::select(vec![":", "", "::", ": "]), hex).prop_map(|(a, c, h)| a + c + &h)
}

/// Arbitrary strings, strings near the grammar, valid digests and valid ones with one
/// character changed.
fn mixed_digest() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        near_digest(),
        valid_digest(),
        crate::mutated(valid_digest()),
    ]
}

#[test]
fn the_mixed_input_holds_valid_and_invalid_digests() {
    let share = crate::accepted_share(mixed_digest(), |s| s.parse::<Digest>().is_ok());
    crate::assert_mixed("digests", share);
}

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn never_panics(s in any::<String>()) {
        let _ = s.parse::<Digest>();
    }

    /// Accepted exactly when the spec's grammar for a registered algorithm matches.
    #[test]
    fn accepts_exactly_the_grammar(s in mixed_digest()) {
        match s.parse::<Digest>() {
            Ok(d) => {
                prop_assert!(DIGEST.is_match(&s), "{s:?}");
                prop_assert!(REGISTERED_DIGEST.is_match(&s), "{s:?}");
                prop_assert_eq!(d.to_string(), s);
            }
            Err(_) => prop_assert!(!REGISTERED_DIGEST.is_match(&s), "{s:?} refused"),
        }
    }

    #[test]
    fn valid_digests_round_trip(s in valid_digest()) {
        let d: Digest = s.parse().unwrap();
        prop_assert_eq!(d.to_string(), s.clone());
        prop_assert_eq!(d.to_string().parse::<Digest>().unwrap(), d.clone());
        prop_assert_eq!(format!("{}:{}", d.algorithm().as_str(), d.hex()), s);
        prop_assert!(d.short().len() == d.algorithm().as_str().len() + 13);
        let json = serde_json::to_string(&d).unwrap();
        prop_assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn computed_digests_are_valid(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for alg in Algorithm::ALL {
            let s = Digest::of(alg, &bytes).to_string();
            prop_assert!(REGISTERED_DIGEST.is_match(&s), "{s}");
            prop_assert_eq!(s.parse::<Digest>().unwrap(), Digest::of(alg, &bytes));
        }
    }

    #[test]
    fn uppercase_hex_is_refused(h in "[0-9a-f]{63}[A-F]", pos in 0usize..64) {
        // The uppercase letter moved anywhere: a different file name than the registry's.
        let mut chars: Vec<char> = h.chars().collect();
        chars.swap(63, pos);
        let s: String = chars.into_iter().collect();
        let digest = format!("sha256:{s}");
        prop_assert!(digest.parse::<Digest>().is_err(), "{}", digest);
    }

    #[test]
    fn wrong_lengths_are_refused(h in "[0-9a-f]{0,200}") {
        let ok256 = h.len() == 64;
        let ok512 = h.len() == 128;
        let (d256, d512) = (format!("sha256:{h}"), format!("sha512:{h}"));
        prop_assert_eq!(d256.parse::<Digest>().is_ok(), ok256);
        prop_assert_eq!(d512.parse::<Digest>().is_ok(), ok512);
    }
}

#[test]
fn tricky_digests() {
    let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    for bad in [
        format!("sha256:{}", hex.to_uppercase()),
        format!("SHA256:{hex}"),
        format!(" sha256:{hex}"),
        format!("sha256:{hex}\n"),
        format!("sha256:{hex}:"),
        format!("sha256::{hex}"),
        format!("sha256:../{}", &hex[3..]),
        format!("sha256:{}é", &hex[..62]),
        format!("sha256+b64u:{hex}"),
        format!("sha384:{hex}"),
        format!("sha512:{hex}"),
        format!("sha256:{hex}{hex}"),
    ] {
        assert!(bad.parse::<Digest>().is_err(), "{bad:?}");
    }
}
