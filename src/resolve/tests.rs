use super::*;

fn entry(
    platform: Option<(&str, &str, Option<&str>)>,
    digest_byte: u8,
    attestation: bool,
) -> Descriptor {
    let mut json = serde_json::json!({
        "mediaType": manifest::OCI_MANIFEST,
        "size": 10,
        "digest": format!("sha256:{}", hex::encode([digest_byte; 32])),
    });
    if let Some((os, arch, variant)) = platform {
        json["platform"] = serde_json::json!({"os": os, "architecture": arch});
        if let Some(v) = variant {
            json["platform"]["variant"] = v.into();
        }
    }
    if attestation {
        json["annotations"] =
            serde_json::json!({"vnd.docker.reference.type": "attestation-manifest"});
    }
    serde_json::from_value(json).unwrap()
}

fn only(p: &[&str]) -> PlatformFilter {
    PlatformFilter::Only(p.iter().map(|s| s.parse().unwrap()).collect())
}

#[test]
fn selection_by_platform() {
    let entries = vec![
        entry(Some(("linux", "amd64", None)), 1, false),
        entry(Some(("linux", "arm64", Some("v8"))), 2, false),
        entry(Some(("unknown", "unknown", None)), 3, true),
    ];
    let picked = select_children(&entries, &only(&["linux/arm64", "linux/arm64/v8"])).unwrap();
    assert_eq!(picked.len(), 1, "one child even when two requests match it");
    assert_eq!(picked[0].digest(), entries[1].digest());
    assert_eq!(
        select_children(&entries, &PlatformFilter::All)
            .unwrap()
            .len(),
        3
    );
    // alpine lists arm/v6 before arm/v7: linux/arm means v7.
    let arm = vec![
        entry(Some(("linux", "arm", Some("v6"))), 4, false),
        entry(Some(("linux", "arm", Some("v7"))), 5, false),
    ];
    assert_eq!(
        select_children(&arm, &only(&["linux/arm"])).unwrap()[0].digest(),
        arm[1].digest()
    );
    assert_eq!(
        select_children(&arm, &only(&["linux/arm/v6"])).unwrap()[0].digest(),
        arm[0].digest()
    );
    let Err(ResolveError::MissingPlatform { available, .. }) =
        select_children(&entries, &only(&["linux/s390x"]))
    else {
        panic!("s390x must be missing")
    };
    assert_eq!(
        available,
        ["linux/amd64", "linux/arm64/v8"],
        "attestations are not offered"
    );
    let err = select_children(&entries, &only(&["linux/s390x"])).unwrap_err();
    use crate::error::Diagnostic;
    let hint = err.hint().unwrap_or_default();
    assert!(hint.contains("--all-platforms"), "{err}: {hint}");
}

#[test]
fn an_invalid_entry_is_ignored_unless_it_is_needed() {
    let spoof = "v1\ndocker.io/library/nginx:latest";
    let entries = vec![
        entry(Some(("linux", "arm64", Some(spoof))), 1, false),
        entry(Some(("linux", "amd64", None)), 2, false),
    ];
    // Not wanted: ignored.
    let picked = select_children(&entries, &only(&["linux/amd64"])).unwrap();
    assert_eq!(picked[0].digest(), entries[1].digest());
    // Wanted (nothing else serves arm64): the error names the entry and the field.
    let err = select_children(&entries, &only(&["linux/arm64"])).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ResolveError::Invalid { .. }), "{text}");
    assert!(text.contains("invalid platform variant"), "{text}");
    assert!(text.contains(&entries[0].digest().to_string()), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("docker.io")), "{text}");
}
