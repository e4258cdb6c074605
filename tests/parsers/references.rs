//! Image references (`registry/repository[:tag][@digest]`), normalized as Docker does.

use std::str::FromStr;
use std::sync::LazyLock;

use ferry::digest::Digest;
use ferry::reference::ImageRef;
use proptest::prelude::*;
use regex::Regex;

use crate::digests::valid_digest;
use crate::grammar::{DOMAIN, FULL_REFERENCE};

/// A whole string that is a distribution domain.
static ANCHORED_DOMAIN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{DOMAIN}$")).unwrap());

/// A path component of the distribution grammar: alnum runs joined by `.`, `_`, `__` or dashes.
fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}(?:(?:[._]|__|-{1,3})[a-z0-9]{1,6}){0,2}"
}

/// A registry host that is kept as written (has a dot or a port, or is localhost).
fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,8}(?:-[a-z0-9]{1,4})?\\.[a-z]{2,6}(?::[0-9]{1,5})?",
        "[a-zA-Z0-9]{1,8}\\.[a-z0-9]{1,8}\\.[a-z]{2,4}",
        "localhost(?::[0-9]{1,5})?",
        "127\\.0\\.0\\.1:[0-9]{1,5}",
    ]
    .prop_filter("Docker Hub is renamed", |d| !d.ends_with("docker.io"))
}

fn tag() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,40}"
}

/// `domain/path[:tag][@digest]` with the parts it was made of.
fn full_reference()
-> impl Strategy<Value = (String, String, String, Option<String>, Option<String>)> {
    (
        domain(),
        prop::collection::vec(component(), 1..4),
        prop::option::of(tag()),
        prop::option::of(valid_digest()),
    )
        .prop_map(|(d, path, t, dig)| {
            let repo = path.join("/");
            let mut s = format!("{d}/{repo}");
            if let Some(t) = &t {
                s = format!("{s}:{t}");
            }
            if let Some(dig) = &dig {
                s = format!("{s}@{dig}");
            }
            (s, d, repo, t, dig)
        })
}

/// A full reference as ferry writes it (`:latest` spelled out when there is no tag or digest).
pub fn canonical_reference() -> impl Strategy<Value = String> {
    full_reference().prop_map(|(s, _, _, t, d)| match (t, d) {
        (None, None) => format!("{s}:latest"),
        _ => s,
    })
}

/// References as people write them: a full one perhaps without a tag, or a Docker Hub short
/// name (valid, but not as ferry writes them).
pub fn written_reference() -> impl Strategy<Value = String> {
    prop_oneof![
        full_reference().prop_map(|(s, ..)| s),
        (component(), prop::option::of(tag())).prop_map(|(n, t)| match t {
            Some(t) => format!("{n}:{t}"),
            None => n,
        }),
    ]
}

/// Strings near the grammar, with the characters that break it.
fn near_reference() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9./:@_+=-]{0,60}",
        "[a-z0-9./:@_-]{1,20}(?:\\.\\.|//|\n|\u{e9}|\u{130}| |\\\\|'|\"|%)[a-z0-9./:@_-]{0,20}",
        "(?:docker://|https://|oci:|u:p@)?[a-z.]{1,10}/[a-z]{1,8}:[\\PC]{1,10}",
    ]
}

/// ASCII strings shaped like references, from loose pieces so that valid ones and nearly valid
/// ones (bad separators, hosts, ports, tags, digests, names near 255 bytes) both come out often.
fn ascii_reference_like() -> impl Strategy<Value = String> {
    let first = prop_oneof![
        "[a-zA-Z0-9._-]{1,10}",
        "[a-z0-9-]{1,6}\\.[a-z_]{1,4}(?::[0-9]{0,4})?",
        "localhost(?::[0-9a]{0,4})?",
        "\\[[0-9a-g:]{0,8}\\](?::[0-9]{1,4})?",
        "[A-Z][a-zA-Z]{0,4}",
    ];
    let path_component = prop_oneof![
        4 => "[a-z0-9._-]{1,8}",
        4 => component(),
        1 => "[a-zA-Z]{1,3}",
        1 => "[a-z]{60,130}",
    ];
    let tag = prop_oneof![
        "[a-zA-Z0-9_.-]{0,12}",
        "[a-zA-Z0-9_][a-zA-Z0-9_.-]{125,130}"
    ];
    let digest = prop_oneof![
        valid_digest(),
        "(?:sha256|sha384|sha512|md5|SHA256|s-a|sha256\\+b64|1a):[0-9a-fA-F]{30,34}",
        "sha384:[0-9a-f]{96}",
        "sha256:[0-9A-F]{64}",
    ];
    (
        prop::option::of(first),
        prop::collection::vec(path_component, 1..4),
        prop::option::of(tag),
        prop::option::of(digest),
    )
        .prop_map(|(first, path, tag, digest)| {
            let mut s = first.map_or(String::new(), |f| f + "/") + &path.join("/");
            if let Some(t) = tag {
                s = format!("{s}:{t}");
            }
            if let Some(d) = digest {
                s = format!("{s}@{d}");
            }
            s
        })
}

/// Arbitrary strings, strings near the grammar, full references and full references with one
/// character changed.
fn mixed_reference() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        near_reference(),
        canonical_reference(),
        crate::mutated(canonical_reference()),
    ]
}

#[test]
fn the_mixed_input_holds_valid_and_invalid_references() {
    let share = crate::accepted_share(mixed_reference(), |s| s.parse::<ImageRef>().is_ok());
    crate::assert_mixed("references", share);
}

proptest! {
    #![proptest_config(crate::config())]

    /// ferry's hand-written parser against oci-spec's regex port of distribution's grammar:
    /// the same parts on every ASCII input, except where ferry is stricter on purpose.
    #[test]
    fn agrees_with_oci_spec_on_ascii(s in prop_oneof![
        ascii_reference_like(),
        near_reference().prop_filter("ASCII", |s| s.is_ascii()),
    ]) {
        // ferry trims and takes skopeo's `docker://` before parsing.
        let text = s.trim();
        let text = text.strip_prefix("docker://").unwrap_or(text);
        let theirs = oci_spec::distribution::Reference::from_str(text);
        match (s.parse::<ImageRef>(), theirs) {
            (Ok(ours), Ok(theirs)) => {
                prop_assert_eq!(ours.registry(), theirs.registry(), "{:?}", s);
                prop_assert_eq!(ours.repository(), theirs.repository(), "{:?}", s);
                prop_assert_eq!(ours.tag(), theirs.tag(), "{:?}", s);
                let digest = ours.digest().map(Digest::to_string);
                prop_assert_eq!(digest.as_deref(), theirs.digest(), "{:?}", s);
            }
            (Ok(ours), Err(e)) => prop_assert!(false, "{s:?} -> {ours}, oci-spec: {e}"),
            (Err(ours), Ok(theirs)) => {
                let refused_on_purpose = ours.reason.contains("transport")
                    || ours.reason.contains("scheme")
                    || ours.reason.contains("credentials")
                    || theirs.repository().bytes().any(|b| b.is_ascii_uppercase())
                    || theirs.digest().is_some_and(|d| d.parse::<Digest>().is_err())
                    || !ANCHORED_DOMAIN.is_match(theirs.registry());
                prop_assert!(refused_on_purpose, "{s:?}: {ours}");
            }
            (Err(_), Err(_)) => {}
        }
    }

    /// Whatever is accepted is written in the grammar; refusals are measured by the tests of
    /// refused input (uppercase, non-ASCII, tricky_references) and agrees_with_oci_spec_on_ascii.
    #[test]
    fn accepts_only_the_grammar(s in mixed_reference()) {
        match s.parse::<ImageRef>() {
            Ok(r) => {
                let shown = r.to_string();
                prop_assert!(FULL_REFERENCE.is_match(&shown), "{s:?} -> {shown:?}");
                prop_assert!(r.repository().len() <= 255, "{shown}");
                prop_assert_eq!(shown.parse::<ImageRef>().unwrap(), r);
            }
            Err(e) => prop_assert!(!e.reason.is_empty(), "{s:?} refused without a reason"),
        }
    }

    #[test]
    fn full_references_round_trip((s, d, repo, t, dig) in full_reference()) {
        let r: ImageRef = s.parse().unwrap();
        prop_assert_eq!(r.registry(), d.as_str());
        prop_assert_eq!(r.repository(), repo.as_str());
        prop_assert_eq!(r.digest().map(|d| d.to_string()), dig.clone());
        let expected_tag = match (&t, &dig) {
            (None, None) => Some("latest".to_owned()),
            _ => t.clone(),
        };
        prop_assert_eq!(r.tag().map(str::to_owned), expected_tag);
        if t.is_some() || dig.is_some() {
            prop_assert_eq!(r.to_string(), s.clone());
        }
        prop_assert_eq!(r.to_string().parse::<ImageRef>().unwrap(), r.clone());
        let with_transport = format!("docker://{s}");
        prop_assert_eq!(with_transport.parse::<ImageRef>().unwrap(), r);
    }

    #[test]
    fn short_names_go_to_docker_hub(name in component(), t in tag()) {
        let r: ImageRef = format!("{name}:{t}").parse().unwrap();
        prop_assert_eq!(r.to_string(), format!("docker.io/library/{name}:{t}"));
        let r: ImageRef = format!("index.docker.io/{name}/{name}:{t}").parse().unwrap();
        prop_assert_eq!(r.to_string(), format!("docker.io/{name}/{name}:{t}"));
    }

    #[test]
    fn non_ascii_tags_are_refused(t in "[a-z]{0,5}[\u{e9}\u{660}\u{130}\u{1d7d8}][a-z0-9]{0,5}") {
        let r = format!("quay.io/o/app:{t}");
        prop_assert!(r.parse::<ImageRef>().is_err(), "{:?}", r);
    }

    #[test]
    fn uppercase_repositories_are_refused(path in "[a-z]{0,4}[A-Z][a-zA-Z]{0,4}") {
        let r = format!("quay.io/o/{path}:1");
        let e = r.parse::<ImageRef>().unwrap_err();
        prop_assert!(e.reason.contains("lowercase"), "{e}");
    }
}

#[test]
fn tricky_references() {
    let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    for bad in [
        "quay.io/o/../app:1".to_owned(),
        "quay.io/o/./app:1".to_owned(),
        "quay.io//app:1".to_owned(),
        "quay.io/o/app:1\n".to_owned() + "x",
        "quay.io/o/app:-1".to_owned(),
        "quay.io/o/app:.1".to_owned(),
        format!("quay.io/o/app:{}", "a".repeat(129)),
        format!("quay.io/o/app@{}", d.to_uppercase()),
        format!("quay.io/o/app@{}", &d[..70]),
        "quay.io/o/app:\u{e9}".to_owned(),
        "quay.io/o/app:\u{660}".to_owned(),
        "quay.io/o/app_:1".to_owned(),
        "quay.io/o/app:1 ".to_owned() + "x",
        // Found by this file: oci-spec took `A` for a registry host by its grammar, then
        // for a Docker Hub path component by Docker's rule (`docker.io/A/a`).
        "A/a".to_owned(),
        "Org/app:1".to_owned(),
        // A registry by Docker's rule that is no host (oci-spec took it as a path component).
        "a.b_c/d:1".to_owned(),
        "[::1]:x/app".to_owned(),
    ] {
        assert!(bad.parse::<ImageRef>().is_err(), "{bad:?}");
    }
}

#[test]
fn ipv6_registries_are_refused_with_the_reason() {
    // distribution's grammar has them; the names ferry writes and skopeo reads do not.
    for text in ["[::1]:5000/app:1", "[fe80::1]/o/app"] {
        let e = text.parse::<ImageRef>().unwrap_err();
        assert!(e.reason.contains("IPv6 registry address"), "{e}");
    }
}
