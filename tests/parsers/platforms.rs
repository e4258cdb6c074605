//! Platforms (`os/arch[/variant]`), from users and from registries' index entries.

use ferry::platform::Platform;
use proptest::prelude::*;

use crate::grammar::{PLATFORM, PLATFORM_PART};

fn part() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,31}"
}

fn near_part() -> impl Strategy<Value = String> {
    prop_oneof![
        part(),
        "[A-Za-z0-9._-]{0,34}",
        Just("x86_64".to_owned()),
        Just("aarch64".to_owned()),
        Just("armhf".to_owned()),
        Just("armel".to_owned()),
        Just("i686".to_owned()),
        "[a-z0-9]{0,4}[\n\r\t \"'\\\\/,;\u{e9}\u{130}\u{212a}][a-z0-9]{0,4}",
    ]
}

/// `os/arch[/variant]` of parts near the grammar.
fn near_platform() -> impl Strategy<Value = String> {
    (near_part(), near_part(), prop::option::of(near_part())).prop_map(|(o, a, v)| match v {
        Some(v) => format!("{o}/{a}/{v}"),
        None => format!("{o}/{a}"),
    })
}

fn mixed_platform() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        near_platform(),
        crate::mutated(near_platform())
    ]
}

#[test]
fn the_mixed_input_holds_valid_and_invalid_platforms() {
    let share = crate::accepted_share(mixed_platform(), |s| s.parse::<Platform>().is_ok());
    crate::assert_mixed("platforms", share);
    let parts = (near_part(), near_part(), prop::option::of(near_part()));
    let share = crate::accepted_share(parts, |(o, a, v)| {
        Platform::parse_parts(o, a, v.as_deref()).is_ok()
    });
    crate::assert_mixed("platform parts", share);
}

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn from_str_accepts_only_the_grammar(s in mixed_platform()) {
        match s.parse::<Platform>() {
            Ok(p) => {
                let shown = p.to_string();
                prop_assert!(PLATFORM.is_match(&shown), "{s:?} -> {shown:?}");
                prop_assert_eq!(shown.parse::<Platform>().unwrap(), p);
            }
            // Refused only outside the grammar (after lowercasing, as ferry takes LINUX/AMD64).
            Err(_) => prop_assert!(!PLATFORM.is_match(&s.to_ascii_lowercase()), "{s:?} refused"),
        }
    }

    #[test]
    fn parts_from_registries_accept_only_the_grammar(
        os in near_part(), arch in near_part(), variant in prop::option::of(near_part())
    ) {
        if let Ok(p) = Platform::parse_parts(&os, &arch, variant.as_deref()) {
            let shown = p.to_string();
            prop_assert!(PLATFORM.is_match(&shown), "{shown:?}");
            prop_assert_eq!(shown.parse::<Platform>().unwrap(), p.clone());
            // The serde form (ferry.lock, JSON output) is the same string.
            let json = serde_json::to_string(&p).unwrap();
            prop_assert_eq!(serde_json::from_str::<Platform>(&json).unwrap(), p);
        } else {
            // Refused only when some part is outside the grammar after lowercasing.
            let lower = |s: &str| s.to_ascii_lowercase();
            let ok = |s: &str| PLATFORM_PART.is_match(&lower(s));
            prop_assert!(
                !ok(&os) || !ok(&arch) || variant.as_deref().is_some_and(|v| !v.is_empty() && !ok(v)),
                "{os:?} {arch:?} {variant:?} refused"
            );
        }
    }

    #[test]
    fn valid_platforms_round_trip(os in part(), arch in part(), variant in prop::option::of(part())) {
        let p = Platform::parse_parts(&os, &arch, variant.as_deref()).unwrap();
        let s = match &variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        };
        prop_assert_eq!(s.parse::<Platform>().unwrap(), p.clone());
        prop_assert_eq!(p.os(), os.as_str());
        prop_assert!(p.matches(&p));
        prop_assert_eq!(p.preference(&p), Some(2));
        // Aliases (x86_64, armhf) are normalized; everything else is kept as written.
        if !["x86_64", "x86-64", "aarch64", "armhf", "armel", "i386", "i686"].contains(&arch.as_str()) {
            prop_assert_eq!(p.to_string(), s.clone());
            prop_assert_eq!(s.to_uppercase().parse::<Platform>().unwrap(), p);
        }
    }
}

#[test]
fn tricky_platforms() {
    // Users' --platform values are trimmed; the newline never reaches the platform.
    assert_eq!(
        "linux/amd64\n".parse::<Platform>().unwrap().to_string(),
        "linux/amd64"
    );
    for bad in [
        "linux/amd64/v8\nlinux/arm64",
        "linux/../amd64",
        "../linux/amd64",
        "linux/amd64/..",
        "linux/amd 64",
        "l\u{131}nux/amd64",
        "linux/amd64/v8/",
        "/linux/amd64",
        "linux/\u{212a}64",
    ] {
        assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
    }
}
