//! Registry certificates made the way Docker's "deploy a registry" recipe makes them: one
//! self-signed certificate (openssl marks it CA:TRUE) served by the real docker-registry and
//! given to ferry with --ca-file or a certs.d folder.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Docker's recipe, word for word, in `dir`, for the subject and names given.
fn self_signed(dir: &Path, stem: &str, subj: &str, names: &str) -> (String, String) {
    require("openssl", "openssl");
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:4096", "-nodes", "-sha256"])
        .args(["-keyout", &format!("{stem}.key"), "-days", "2"])
        .args(["-out", &format!("{stem}.crt"), "-subj", subj])
        .args(["-addext", &format!("subjectAltName={names}")])
        .current_dir(dir));
    let text = run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", &format!("{stem}.crt")])
        .current_dir(dir));
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "the recipe makes a CA:TRUE certificate"
    );
    let p = |ext: &str| dir.join(format!("{stem}.{ext}")).display().to_string();
    (p("crt"), p("key"))
}

/// A TLS registry with the sample images, on a self-signed certificate for 127.0.0.1 and
/// localhost (nothing trusts it unless told); returns it and the certificate's path.
fn loopback_tls_registry(dir: &Path) -> (Registry, String) {
    let names = "IP:127.0.0.1,DNS:localhost";
    let (crt, key) = self_signed(dir, "domain", "/CN=127.0.0.1", names);
    (tls_registry(&crt, &key), crt)
}

/// A TLS registry holding the sample images (the storage seeded once per run), serving `crt`.
fn tls_registry(crt: &str, key: &str) -> Registry {
    Registry::seeded_with(&["--tls", crt, key])
}

#[test]
fn a_self_signed_ca_true_certificate_is_trusted_when_given() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, crt) = loopback_tls_registry(dir.path());
    let out = |name: &str| dir.path().join(name).display().to_string();
    let hello = reg.image("sample/hello:1.0");

    // --ca-file, by IP address and by the DNS name the certificate lists.
    let (code, _, stderr) = ferry_out(&["bundle", "-o", &out("a"), "--ca-file", &crt, &hello]);
    assert_eq!(code, 0, "{stderr}");
    let port = reg.addr.rsplit_once(':').unwrap().1;
    let by_name = format!("localhost:{port}/sample/hello:1.0");
    let (code, _, stderr) = ferry_out(&["bundle", "-o", &out("b"), "--ca-file", &crt, &by_name]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(ferry_out(&["verify", &out("a")]).0, 0);

    // certs.d: the certificate as HOST:PORT/domain.crt.
    let certs = dir.path().join("certs.d");
    std::fs::create_dir_all(certs.join(&reg.addr)).unwrap();
    std::fs::copy(&crt, certs.join(&reg.addr).join("domain.crt")).unwrap();
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        &out("c"),
        "--cert-dir",
        certs.to_str().unwrap(),
        &hello,
    ]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn another_self_signed_certificate_or_a_wrong_name_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _) = loopback_tls_registry(dir.path());
    let (other, _) = self_signed(
        dir.path(),
        "other",
        "/CN=127.0.0.1",
        "IP:127.0.0.1,DNS:localhost",
    );
    let b = dir.path().join("b").display().to_string();
    let hello = reg.image("sample/hello:1.0");

    // Nothing given: refused, and the hint says how to trust it.
    let (code, _, stderr) = ferry_out(&["bundle", "--retries", "0", "-o", &b, &hello]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not trusted: pass --ca-file"), "{stderr}");

    // A different certificate made by the same recipe: refused, and the hint does not tell
    // the user to pass the --ca-file they passed.
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--retries",
        "0",
        "-o",
        &b,
        "--ca-file",
        &other,
        &hello,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("TLS:") && stderr.contains(&format!("--ca-file {other}")),
        "{stderr}"
    );
    assert!(!stderr.contains("pass --ca-file"), "{stderr}");
    assert!(!stderr.contains("CaUsedAsEndEntity"), "{stderr}");

    // The trusted certificate served for a name it does not list: refused.
    let (wrong_crt, wrong_key) = self_signed(
        dir.path(),
        "wrong",
        "/CN=registry.example",
        "DNS:registry.example",
    );
    let wrong = tls_registry(&wrong_crt, &wrong_key);
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--retries",
        "0",
        "-o",
        &b,
        "--ca-file",
        &wrong_crt,
        &wrong.image("sample/hello:1.0"),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("TLS:") && stderr.contains("does not name 127.0.0.1"),
        "{stderr}"
    );
    assert!(!b_has_images(&b));
}

#[test]
fn insecure_registry_accepts_an_untrusted_certificate_for_that_registry_only() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, _) = loopback_tls_registry(dir.path());
    let hello = reg.image("sample/hello:1.0");
    let out = |name: &str| dir.path().join(name).display().to_string();

    // Nothing trusts the certificate; --insecure-registry for that registry skips the check
    // (reqwest's own TLS setup, on the crypto provider ferry installs).
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        &out("a"),
        "--insecure-registry",
        &reg.addr,
        &hello,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(b_has_images(&out("a")));
    assert_eq!(ferry_out(&["verify", &out("a")]).0, 0);

    // For another registry it changes nothing.
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--retries",
        "0",
        "-o",
        &out("b"),
        "--insecure-registry",
        "127.0.0.2:5000",
        &hello,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not trusted"), "{stderr}");
}

fn b_has_images(bundle: &str) -> bool {
    Path::new(bundle).join("index.json").exists()
        && index_json(Path::new(bundle))["manifests"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
}

/// A server certificate from a trusted CA whose dates are past (made with `openssl ca`, which
/// takes explicit dates): refused, and the hint says the dates are the problem.
#[test]
fn an_expired_certificate_is_refused_with_a_hint_about_its_dates() {
    require("openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sh = |script: &str| run(Command::new("sh").arg("-c").arg(script).current_dir(d));
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=expiry-ca \
        -keyout ca.key -out ca.crt 2>/dev/null && \
        openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout s.key -out s.csr \
        2>/dev/null && \
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext && \
        mkdir db && touch db/index && echo 01 > db/serial && \
        printf '[ca]\\ndefault_ca=d\\n[d]\\ndatabase=db/index\\nserial=db/serial\\n\
new_certs_dir=db\\ndefault_md=sha256\\npolicy=p\\n[p]\\ncommonName=supplied\\n' > ca.cnf && \
        openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in s.csr -out s.crt \
        -startdate 20200101000000Z -enddate 20200102000000Z -extfile ext 2>/dev/null",
    );
    let dates = sh("openssl x509 -noout -enddate -in s.crt");
    assert!(String::from_utf8_lossy(&dates.stdout).contains("2020"));
    let p = |f: &str| d.join(f).display().to_string();
    let reg = tls_registry(&p("s.crt"), &p("s.key"));
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--retries",
        "0",
        "-o",
        &p("b"),
        "--ca-file",
        &p("ca.crt"),
        "--jobs",
        "1",
        &reg.image("sample/hello:1.0"),
        &reg.image("sample/world:1.0"),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("has expired or is not valid yet")
            && stderr.contains("openssl x509 -noout -dates"),
        "{stderr}"
    );
    // The registry's certificate, not the image: said once, the other image counted.
    assert_eq!(stderr.matches("has expired").count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "1 other image(s) of {} failed as {} did (certificate)",
            reg.addr,
            reg.image("sample/hello:1.0")
        )),
        "{stderr}"
    );
    assert!(!b_has_images(&p("b")));
}
