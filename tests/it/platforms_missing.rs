//! Partial platforms are said, not silent: `bundle --platform A --platform B` keeps a
//! single-platform image that serves only A (as crane, skopeo and ctr do), and now says so per
//! image on stderr and in JSON (`platformsMissing`); `--require-platforms` fails such an image
//! (exit 1) and bundles the others. The fixtures' platforms come from make_fixtures.py.

use crate::common;

use common::*;

fn image<'a>(report: &'a serde_json::Value, reference: &str) -> &'a serde_json::Value {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == reference)
        .unwrap_or_else(|| panic!("{reference} not in {report}"))
}

#[test]
fn a_single_platform_image_missing_a_wanted_platform_is_named_or_refused() {
    let fixtures = fixture_tags();
    assert_eq!(
        fixtures["sample/hello:1.0"]["platforms"],
        serde_json::json!(["linux/amd64"])
    );
    assert_eq!(
        fixtures["sample/arm-only:1.0"]["platforms"],
        serde_json::json!(["linux/arm64/v8"])
    );
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let (hello, arm, multi) = (
        reg.image("sample/hello:1.0"),
        reg.image("sample/arm-only:1.0"),
        reg.image("sample/multi:1.0"),
    );
    let bundle = |out: &str, extra: &[&str]| {
        let out = dir.path().join(out);
        let mut args = vec![
            "bundle",
            "--json",
            "-o",
            out.to_str().unwrap(),
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
        ];
        args.extend(extra);
        args.extend([hello.as_str(), arm.as_str(), multi.as_str()]);
        let (code, stdout, stderr) = ferry_out(&args);
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        (code, report, stderr)
    };

    let (code, report, stderr) = bundle("kept", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        image(&report, &hello)["platformsMissing"],
        serde_json::json!(["linux/arm64"])
    );
    assert_eq!(
        image(&report, &arm)["platformsMissing"],
        serde_json::json!(["linux/amd64"])
    );
    assert_eq!(
        image(&report, &multi)["platformsMissing"],
        serde_json::json!([])
    );
    for (reference, missing) in [(&hello, "linux/arm64"), (&arm, "linux/amd64")] {
        assert!(
            stderr.lines().any(|l| l.starts_with("warning:")
                && l.contains(reference.as_str())
                && l.contains(missing)),
            "{reference} lacks {missing}, said on stderr: {stderr}"
        );
    }
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains(multi.as_str()))
    );

    let (code, report, stderr) = bundle("required", &["--require-platforms"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(report["ok"], false);
    for r in [&hello, &arm] {
        let i = image(&report, r);
        assert_eq!(i["status"], "failed", "{i}");
        assert!(
            i["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--require-platforms"),
            "{i}"
        );
    }
    assert_eq!(image(&report, &multi)["status"], "ok");
    let b = dir.path().join("required");
    assert!(index_entry(&b, &multi).is_some());
    assert!(index_entry(&b, &hello).is_none() && index_entry(&b, &arm).is_none());
}
