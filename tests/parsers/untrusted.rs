//! The grammars registry- and bundle-provided strings must match before ferry writes them:
//! media types (RFC 6838) and full reference names; and how refused values are shown.

use ferry::untrusted::{check_media_type, check_reference_name, shown};
use proptest::prelude::*;

use crate::grammar::{FULL_REFERENCE, MEDIA_TYPE};
use crate::references::{canonical_reference, written_reference};

/// Arbitrary strings, strings of the reference characters, references as ferry writes them,
/// as people write them, and either with one character changed.
fn mixed_name() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9./:@_+=\n -]{0,60}",
        canonical_reference(),
        written_reference(),
        crate::mutated(canonical_reference()),
    ]
}

#[test]
fn the_mixed_input_holds_accepted_and_refused_names() {
    let share = crate::accepted_share(mixed_name(), |s| check_reference_name(s).is_ok());
    crate::assert_mixed("reference names", share);
}

fn restricted_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,40}"
}

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn media_types_accept_only_rfc_6838(
        s in prop_oneof![
            any::<String>(),
            "[a-z.+/ ;=\"\n\\\\-]{0,40}",
            (restricted_name(), restricted_name()).prop_map(|(a, b)| format!("{a}/{b}")),
        ]
    ) {
        prop_assert_eq!(check_media_type(&s).is_ok(), MEDIA_TYPE.is_match(&s), "{:?}", s);
    }

    /// Accepted only in the grammar and as written (ferry's own spelling); refused otherwise,
    /// with the value shown escaped.
    #[test]
    fn reference_names_accept_only_full_references(s in mixed_name()) {
        match check_reference_name(&s) {
            Ok(r) => {
                prop_assert!(FULL_REFERENCE.is_match(&s), "{s:?}");
                prop_assert_eq!(r.to_string(), s);
            }
            Err(e) => prop_assert_eq!(e.value, shown(&s)),
        }
    }

    #[test]
    fn full_references_as_ferry_writes_them_are_accepted(s in canonical_reference()) {
        let r = check_reference_name(&s);
        prop_assert!(r.is_ok(), "{s:?}: {r:?}");
        prop_assert_eq!(r.unwrap().to_string(), s);
    }

    #[test]
    fn every_normalized_reference_is_a_valid_name(
        host in "[a-z0-9]{1,8}\\.[a-z]{2,4}(?::[0-9]{1,5})?",
        path in "[a-z0-9]{1,8}(?:/[a-z0-9]{1,8}(?:-[a-z0-9]{1,3})?){0,2}",
        tag in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}",
    ) {
        let written = format!("{host}/{path}:{tag}")
            .parse::<ferry::reference::ImageRef>()
            .unwrap()
            .to_string();
        prop_assert!(check_reference_name(&written).is_ok(), "{written}");
    }

    #[test]
    fn shown_values_hold_no_control_characters(s in any::<String>()) {
        let out = shown(&s);
        prop_assert!(!out.chars().any(char::is_control), "{out:?}");
        prop_assert!(out.starts_with('"'));
        // At most 80 characters of the value, each escaped to at most `\u{10ffff}`.
        prop_assert!(out.chars().count() <= 2 + 80 * 10 + 3, "{}", out.len());
        if s.chars().count() <= 80 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ') {
            prop_assert_eq!(out, format!("\"{s}\""));
        }
    }
}
