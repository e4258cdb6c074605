//! Keys and signatures made by the openssl command line, not by ferry.

use std::process::Command;

use super::*;

struct Key {
    _dir: tempfile::TempDir,
    private: std::path::PathBuf,
    public: Vec<u8>,
    ed25519: bool,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn key(algorithm: &str) -> Key {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("key.pem");
    let p = private.to_str().unwrap();
    match algorithm {
        "ec" => openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            p,
        ]),
        "rsa" => openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            p,
        ]),
        _ => openssl(&["genpkey", "-algorithm", "ED25519", "-out", p]),
    };
    let public = openssl(&["pkey", "-in", p, "-pubout"]);
    Key {
        _dir: dir,
        private,
        public,
        ed25519: algorithm == "ed25519",
    }
}

impl Key {
    fn sign(&self, message: &[u8]) -> String {
        let input = self._dir.path().join("message");
        std::fs::write(&input, message).unwrap();
        let (k, i) = (self.private.to_str().unwrap(), input.to_str().unwrap());
        let sig = if self.ed25519 {
            openssl(&["pkeyutl", "-sign", "-rawin", "-inkey", k, "-in", i])
        } else {
            openssl(&["dgst", "-sha256", "-sign", k, i])
        };
        base64::engine::general_purpose::STANDARD.encode(sig)
    }

    fn public(&self) -> PublicKey {
        PublicKey::from_pem(&self.public).unwrap()
    }
}

fn payload(named: &Digest) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/app"}},"image":{{"docker-manifest-digest":"{named}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

fn signature_manifest(payload: &[u8], signature: &str) -> Vec<u8> {
    let config = b"{}";
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::manifest::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": Digest::sha256_of(config).to_string()},
        "layers": [{"mediaType": SIMPLESIGNING, "size": payload.len(), "digest": Digest::sha256_of(payload).to_string(),
                    "annotations": {ANNOTATION_SIGNATURE: signature}}],
    }))
    .unwrap()
}

/// Checks `manifest` for `image`, serving `served` as the payload.
fn check(image: &Digest, manifest: &[u8], served: &[u8], key: &PublicKey) -> Verdict {
    let served = served.to_vec();
    check_signature_manifest(image, manifest, |_, _| Ok(served.clone()), key)
}

#[test]
fn good_signatures_verify_for_every_key_type() {
    let image = Digest::sha256_of(b"an image manifest");
    for algorithm in ["ec", "rsa", "ed25519"] {
        let k = key(algorithm);
        let p = payload(&image);
        let m = signature_manifest(&p, &k.sign(&p));
        assert_eq!(
            check(&image, &m, &p, &k.public()),
            Verdict::Verified,
            "{algorithm}"
        );
    }
    assert_eq!(key("ec").public().algorithm(), "ECDSA P-256");
    assert_eq!(key("rsa").public().algorithm(), "RSA");
    assert_eq!(key("ed25519").public().algorithm(), "Ed25519");
}

#[test]
fn a_flipped_byte_another_key_or_another_digest_fail() {
    let image = Digest::sha256_of(b"an image manifest");
    let k = key("ec");
    let p = payload(&image);
    let m = signature_manifest(&p, &k.sign(&p));
    let mut flipped = p.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 1;
    assert_eq!(check(&image, &m, &flipped, &k.public()), Verdict::OtherKey);
    assert_eq!(
        check(&image, &m, &p, &key("ec").public()),
        Verdict::OtherKey
    );
    assert_eq!(
        check(&image, &m, &p, &key("rsa").public()),
        Verdict::OtherKey
    );
    let other = Digest::sha256_of(b"another image");
    assert_eq!(
        check(&other, &m, &p, &k.public()),
        Verdict::OtherDigest(image.to_string())
    );
    let not_base64 = signature_manifest(&p, "!!!");
    assert!(matches!(
        check(&image, &not_base64, &p, &k.public()),
        Verdict::Malformed(_)
    ));
}

#[test]
fn keyless_and_unsigned_are_named() {
    let image = Digest::sha256_of(b"an image manifest");
    let k = key("ec");
    let p = payload(&image);
    let mut m: serde_json::Value = serde_json::from_slice(&signature_manifest(&p, "")).unwrap();
    m["layers"][0]["annotations"] =
        serde_json::json!({ANNOTATION_CERTIFICATE: "-----BEGIN CERTIFICATE-----"});
    let m = serde_json::to_vec(&m).unwrap();
    assert_eq!(check(&image, &m, &p, &k.public()), Verdict::Keyless);
    assert!(Verdict::Keyless.to_string().contains("out of scope"));
    let mut empty: serde_json::Value = serde_json::from_slice(&m).unwrap();
    empty["layers"] = serde_json::json!([]);
    let empty = serde_json::to_vec(&empty).unwrap();
    assert_eq!(check(&image, &empty, &p, &k.public()), Verdict::Unsigned);
}

#[test]
fn keys_that_are_not_public_keys_are_refused() {
    let k = key("ec");
    let private = std::fs::read(&k.private).unwrap();
    let err = PublicKey::from_pem(&private).unwrap_err();
    assert!(err.reason.contains("PUBLIC KEY"), "{err:?}");
    assert!(err.hint.unwrap().contains("cosign.pub"), "{err:?}");
    assert!(PublicKey::from_pem(b"not pem").is_err());
}

#[test]
fn keys_of_another_curve_size_or_kind_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("key.pem");
    let p = p.to_str().unwrap();
    let cases: [&[&str]; 3] = [
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        &["-algorithm", "X25519"],
    ];
    for args in cases {
        openssl(&[&["genpkey"], args, &["-out", p]].concat());
        let public = openssl(&["pkey", "-in", p, "-pubout"]);
        let err = PublicKey::from_pem(&public).unwrap_err();
        assert_eq!(err.reason, UNSUPPORTED, "{args:?}");
    }
}
