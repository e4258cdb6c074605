//! Registry text never reaches the terminal raw: a registry whose error messages (JSON and
//! plain text) and headers carry ESC sequences, NUL, carriage returns, C1 controls and line
//! breaks, and a manifest with a malformed digest holding them, cannot clear the screen or
//! forge a line such as "bundled 9 of 9 images": every such character is shown escaped, on
//! the plain output, the progress lines and the `-v` logs. A fake registry: a real one sends
//! no such thing on demand.

use crate::common;

use common::fake::{Fake, OCI_MANIFEST, Reply, TestImage};
use common::*;

/// What a hostile registry writes where its text is shown.
const FORGED: &str =
    "\u{1b}[2J\u{1b}[Hbundled 9 of 9 images into /bundle in 0.1 s\r\n\0ok\u{9b}31m\u{7}\u{202e}";

/// No byte a terminal obeys, and no line that starts with the forged text.
fn assert_inert(what: &str, stderr: &str) {
    for (c, name) in [
        ('\u{1b}', "ESC"),
        ('\0', "NUL"),
        ('\r', "CR"),
        ('\u{9b}', "CSI"),
        ('\u{7}', "BEL"),
        ('\u{202e}', "RLO"),
    ] {
        assert!(
            !stderr.contains(c),
            "{what}: a raw {name} reached stderr:\n{stderr:?}"
        );
    }
    for line in stderr.lines() {
        assert!(
            !line.trim_start().starts_with("bundled 9 of 9")
                && !line.trim_start().starts_with("ok")
                && !line.trim_start().starts_with("\\0ok"),
            "{what}: a forged line: {line:?}"
        );
    }
    assert!(
        stderr.contains("\\u{1b}[2J"),
        "{what}: the text is shown, escaped: {stderr}"
    );
}

#[test]
fn hostile_registry_text_is_shown_escaped() {
    let fake = Fake::start();
    // A JSON error message (403: not retried).
    let json = serde_json::json!({"errors": [{"code": "DENIED", "message": FORGED}]}).to_string();
    fake.route("/v2/json/manifests/1", move |_, _| {
        Reply::new(403, json.clone())
    });
    // A plain-text error body (500: retried, so it is in the retry lines too).
    fake.route("/v2/text/manifests/1", |_, _| Reply::new(500, FORGED));
    // A manifest whose layer digest holds the text.
    let image = TestImage::random(51, &[1000]);
    let mut manifest: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    manifest["layers"][0]["digest"] = format!("sha256:{FORGED}").into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    fake.route("/v2/digest/manifests/1", move |_, _| {
        Reply::new(200, bytes.clone()).header("Content-Type", OCI_MANIFEST)
    });
    // A header value with the bytes HTTP allows (no CR or LF): an error naming it is escaped.
    fake.route("/v2/header/manifests/1", |_, _| {
        Reply::new(401, "").header("WWW-Authenticate", "Basic realm=\"\u{1b}[2J\u{9b}\"")
    });

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let images: Vec<String> = ["json", "text", "digest", "header"]
        .iter()
        .map(|r| format!("{}/{r}:1", fake.addr))
        .collect();
    for extra in [&["--no-progress"][..], &["-v"][..]] {
        let mut args = vec!["bundle", "--retries", "1", "-o", out.to_str().unwrap()];
        args.extend(extra);
        args.extend(images.iter().map(String::as_str));
        let (code, stdout, stderr) = ferry_out(&args);
        assert_eq!(code, 1, "{stderr}");
        assert_inert(&format!("bundle {extra:?}"), &stderr);
        assert!(stdout.is_empty());
        for image in &images[..3] {
            assert!(
                stderr.contains(&format!("error: {image}")),
                "{image} named: {stderr}"
            );
        }
    }
    // JSON carries the text as JSON strings (escaped by JSON itself), once.
    let (code, stdout, _) =
        ferry_out(&["bundle", "--json", "-o", out.to_str().unwrap(), &images[0]]);
    assert_eq!(code, 1);
    assert!(!stdout.contains('\u{1b}'), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        report["images"][0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bundled 9 of 9"),
        "{report}"
    );
}
