//! Supply chain across the gap: cosign signatures and an SPDX SBOM (made by
//! testdata/sign_fixtures.py with openssl, not by ferry) on the real docker-registry, bundled
//! with --referrers, listed, verified offline with --key, and required with
//! --require-signatures.

use crate::common;
use crate::served;

use std::process::Command;

use common::*;

const IMAGES: &[&str] = &[
    "sample/hello:1.0",
    "sample/multi:1.0",
    "sample/world:1.0",
    "sample/zstd:1.0",
];

/// A seeded registry with signatures and an SBOM, the key files, and what the script did.
struct Signed {
    reg: Registry,
    keys: tempfile::TempDir,
    fixtures: serde_json::Value,
}

impl Signed {
    fn new() -> Signed {
        require("openssl", "openssl");
        let reg = Registry::seeded();
        let keys = tempfile::tempdir().unwrap();
        run(Command::new("python3")
            .arg(root().join("testdata/sign_fixtures.py"))
            .arg(&reg.addr)
            .arg(keys.path()));
        let fixtures =
            serde_json::from_slice(&std::fs::read(keys.path().join("fixtures.json")).unwrap())
                .unwrap();
        Signed {
            reg,
            keys,
            fixtures,
        }
    }

    fn key(&self, name: &str) -> String {
        self.keys.path().join(name).display().to_string()
    }

    fn images(&self) -> Vec<String> {
        IMAGES.iter().map(|i| self.reg.image(i)).collect()
    }

    /// `ferry bundle` of every sample image with `extra` flags; returns the exit code.
    fn bundle(&self, out: &std::path::Path, extra: &[&str]) -> (i32, String) {
        let mut args = vec!["bundle", "--no-progress", "-o", out.to_str().unwrap()];
        args.extend(extra);
        let images = self.images();
        args.extend(images.iter().map(String::as_str));
        let (code, _, stderr) = ferry_out(&args);
        (code, stderr)
    }
}

/// The manifest bytes the registry serves for a full `host:port/repo:tag` reference.
fn served(reg: &Registry, reference: &str) -> Vec<u8> {
    let rest = reference.strip_prefix(&format!("{}/", reg.addr)).unwrap();
    let (repo, tag) = rest.rsplit_once(':').unwrap();
    reg.manifest(repo, tag).0
}

fn entry_digest(bundle: &std::path::Path, name: &str) -> String {
    let entry = index_entry(bundle, name).unwrap_or_else(|| panic!("{name} not in index.json"));
    entry["digest"].as_str().unwrap().to_owned()
}

#[test]
fn referrers_are_bundled_byte_exact_listed_and_verified() {
    let s = Signed::new();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b");
    let (code, stderr) = s.bundle(&bundle, &["--referrers"]);
    assert_eq!(code, 0, "{stderr}");

    // Every signature: under its fallback-tag name, the registry's bytes exactly.
    let signatures = s.fixtures["signatures"].as_object().unwrap();
    assert_eq!(
        signatures.len(),
        4,
        "hello, multi and its amd64 child, world"
    );
    for (name, digest) in signatures {
        let digest = digest.as_str().unwrap();
        assert_eq!(entry_digest(&bundle, name), digest, "{name}");
        let stored = std::fs::read(blob_path(&bundle, digest)).unwrap();
        assert_eq!(stored, served(&s.reg, name), "{name} byte-exact");
        assert_eq!(sha256(&stored), digest);
    }
    // The SBOM: the fallback-tag index, the artifact manifest it lists and the SPDX layer.
    let sbom = &s.fixtures["sbom"];
    let tag = sbom["tag"].as_str().unwrap();
    assert_eq!(entry_digest(&bundle, tag), sbom["index"].as_str().unwrap());
    assert_eq!(
        std::fs::read(blob_path(&bundle, sbom["index"].as_str().unwrap())).unwrap(),
        served(&s.reg, tag)
    );
    for blob in ["manifest", "layer"] {
        let digest = sbom[blob].as_str().unwrap();
        let bytes = std::fs::read(blob_path(&bundle, digest)).unwrap();
        assert_eq!(sha256(&bytes), digest, "SBOM {blob}");
    }
    // Recorded in the lock as well, so that `ferry verify` finds nothing stale.
    let lock = std::fs::read_to_string(bundle.join("ferry.lock")).unwrap();
    assert!(lock.contains(tag), "{lock}");
    let (code, stdout, stderr) = ferry_out(&["verify", bundle.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");

    // ls shows them per image.
    let (code, stdout, _) = ferry_out(&["ls", "--json", bundle.to_str().unwrap()]);
    assert_eq!(code, 0);
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let listed = listed["images"].as_array().unwrap();
    assert_eq!(listed.len(), 4, "referrer entries are not listed as images");
    let of = |image: &str| -> Vec<serde_json::Value> {
        let reference = s.reg.image(image);
        listed
            .iter()
            .find(|i| i["reference"] == reference.as_str())
            .unwrap()["referrers"]
            .as_array()
            .unwrap()
            .clone()
    };
    let hello = of("sample/hello:1.0");
    assert!(hello.iter().any(|r| r["kind"] == "signature"), "{hello:?}");
    assert!(
        hello.iter().any(|r| r["kind"] == "referrers"
            && r["artifactTypes"] == serde_json::json!(["application/spdx+json"])),
        "{hello:?}"
    );
    assert_eq!(
        of("sample/multi:1.0").len(),
        2,
        "index and amd64 child signed"
    );
    assert!(of("sample/zstd:1.0").is_empty());
    let (_, table, _) = ferry_out(&["ls", bundle.to_str().unwrap()]);
    assert!(
        table.contains("REFERRERS") && table.contains("application/spdx+json,signature"),
        "{table}"
    );

    // verify --key: passes the signed, names the unsigned and the moved signature.
    let b = bundle.to_str().unwrap();
    let (code, stdout, stderr) = ferry_out(&["verify", b, "--key", &s.key("cosign.pub")]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("signatures: 2 of 4 images signed"),
        "{stdout}"
    );
    // One verdict, last, and it is the exit code's: never "ok" above "FAILED".
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.last().unwrap().starts_with("FAILED: 4 images (and "),
        "signatures are not counted as images: {stdout}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("ok")), "{stdout}");
    let world = s.reg.image("sample/world:1.0");
    let zstd = s.reg.image("sample/zstd:1.0");
    assert!(
        stderr.contains(&format!("{world} (")) && stderr.contains("names another manifest"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{zstd} (")) && stderr.contains("unsigned"),
        "{stderr}"
    );
    for signed in ["sample/hello:1.0", "sample/multi:1.0"] {
        assert!(
            !stderr.contains(&format!("{} (", s.reg.image(signed))),
            "{stderr}"
        );
    }
    let (_, stdout, _) = ferry_out(&["verify", b, "--json", "--key", &s.key("cosign.pub")]);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let verdict = |image: &str| {
        let reference = s.reg.image(image);
        report["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["reference"] == reference.as_str())
            .unwrap()["verdict"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(verdict("sample/hello:1.0"), "verified");
    assert_eq!(verdict("sample/multi:1.0"), "verified");
    assert_eq!(verdict("sample/world:1.0"), "other-digest");
    assert_eq!(verdict("sample/zstd:1.0"), "unsigned");

    // Another key: every signature fails, named.
    let (code, _, stderr) = ferry_out(&["verify", b, "--key", &s.key("other.pub")]);
    assert_eq!(code, 1);
    let hello_ref = s.reg.image("sample/hello:1.0");
    assert!(
        stderr.contains(&format!("{hello_ref} (")) && stderr.contains("not by this key"),
        "{stderr}"
    );
    // restore --key checks before importing anything (no runtime is reached).
    let (code, _, stderr) = ferry_out(&["restore", b, "--key", &s.key("other.pub")]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    // A private key is not a public key: a usage error.
    let (code, _, stderr) = ferry_out(&["verify", b, "--key", &s.key("cosign.key")]);
    assert_eq!(code, 2, "{stderr}");

    // Exports: oci-archive keeps every entry; docker-archive says what it drops.
    let oci = dir.path().join("b.tar");
    let (code, _, stderr) = ferry_out(&["export", b, "--oci-archive", oci.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let listing = run(Command::new("tar").arg("-tf").arg(&oci)).stdout;
    let listing = String::from_utf8(listing).unwrap();
    let sbom_hex = sbom["layer"].as_str().unwrap().split_once(':').unwrap().1;
    assert!(
        listing.contains(sbom_hex),
        "the SBOM layer is in the oci-archive"
    );
    let docker = dir.path().join("d.tar");
    let (code, _, stderr) = ferry_out(&["export", b, "--docker-archive", docker.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("dropped 5 signature/SBOM/referrer entries"),
        "{stderr}"
    );
}

#[test]
fn require_signatures_leaves_unverified_images_out() {
    let s = Signed::new();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b");
    let key = s.key("cosign.pub");
    let (code, stderr) = s.bundle(&bundle, &["--require-signatures", "--key", &key]);
    assert_eq!(code, 1, "{stderr}");
    for out in ["sample/world:1.0", "sample/zstd:1.0"] {
        let reference = s.reg.image(out);
        assert!(index_entry(&bundle, &reference).is_none(), "{out} left out");
        assert!(
            stderr.contains(&format!("{reference}: refused by --require-signatures")),
            "{stderr}"
        );
    }
    for kept in ["sample/hello:1.0", "sample/multi:1.0"] {
        assert!(
            index_entry(&bundle, &s.reg.image(kept)).is_some(),
            "{kept} kept"
        );
    }
    // What is in the bundle verifies with the key, and restore.sh lists no signature.
    let (code, stdout, stderr) = ferry_out(&["verify", bundle.to_str().unwrap(), "--key", &key]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let script = std::fs::read_to_string(bundle.join("restore.sh")).unwrap();
    assert!(
        !script.contains(".sig "),
        "signatures are not images to import"
    );
    // restore --key checks, then imports the images and nothing else.
    let node = Containerd::start();
    let (code, stdout, stderr) = ferry_out(&[
        "restore",
        bundle.to_str().unwrap(),
        "--address",
        &node.socket,
        "--key",
        &key,
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["images"].as_array().unwrap().len(), 2, "{report}");
    let names = String::from_utf8(node.ctr(&["images", "ls", "-q"]).stdout).unwrap();
    assert!(names.contains(&s.reg.image("sample/hello:1.0")), "{names}");
    assert!(
        !names.contains(":sha256-"),
        "no signature imported: {names}"
    );
    // No key file: a usage error before anything is fetched.
    let (code, _, _) = ferry_out(&[
        "bundle",
        "--require-signatures",
        "-o",
        dir.path().join("c").to_str().unwrap(),
        &s.reg.image("sample/hello:1.0"),
    ]);
    assert_eq!(code, 2);
}

/// docker-registry 2.8 has no referrers API: a fake answers it (and only it), to show that its
/// answer is used and stored under the fallback-tag name, without asking for the tag.
#[test]
fn the_referrers_api_answer_is_used_when_the_registry_has_one() {
    use common::fake::{Fake, Reply, TestImage};
    let fake = Fake::start();
    let image = TestImage::random(7, &[100]);
    fake.serve_image("app", "1", &image);
    let sbom = br#"{"spdxVersion":"SPDX-2.3"}"#.to_vec();
    let empty = b"{}".to_vec();
    let desc = |mt: &str, b: &[u8]| serde_json::json!({"mediaType": mt, "digest": sha256(b), "size": b.len()});
    let artifact = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": desc("application/vnd.oci.empty.v1+json", &empty),
        "layers": [desc("application/spdx+json", &sbom)],
        "subject": desc("application/vnd.oci.image.manifest.v1+json", &image.manifest),
    }))
    .unwrap();
    let artifact_digest = sha256(&artifact);
    let mut listed = desc("application/vnd.oci.image.manifest.v1+json", &artifact);
    listed["artifactType"] = "application/spdx+json".into();
    let answer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [listed],
    }))
    .unwrap();
    let a = artifact.clone();
    fake.route(
        &format!("/v2/app/manifests/{artifact_digest}"),
        move |_, _| {
            Reply::new(200, a.clone())
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        },
    );
    for blob in [sbom.clone(), empty] {
        fake.route(&format!("/v2/app/blobs/{}", sha256(&blob)), move |_, _| {
            Reply::new(200, blob.clone())
        });
    }
    let ans = answer.clone();
    fake.route(
        &format!("/v2/app/referrers/{}", image.digest),
        move |_, _| {
            Reply::new(200, ans.clone())
                .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        },
    );

    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b");
    let reference = format!("{}/app:1", fake.addr);
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--no-progress",
        "--referrers",
        "-o",
        bundle.to_str().unwrap(),
        &reference,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let name = format!(
        "{}/app:sha256-{}",
        fake.addr,
        image.digest.split_once(':').unwrap().1
    );
    assert_eq!(entry_digest(&bundle, &name), sha256(&answer));
    assert_eq!(
        std::fs::read(blob_path(&bundle, &sha256(&answer))).unwrap(),
        answer
    );
    assert_eq!(
        std::fs::read(blob_path(&bundle, &artifact_digest)).unwrap(),
        artifact
    );
    assert_eq!(
        std::fs::read(blob_path(&bundle, &sha256(&sbom))).unwrap(),
        sbom
    );
    assert!(
        fake.seen("/v2/app/manifests/sha256-")
            .iter()
            .all(|s| s.path.ends_with(".sig")
                || s.path.ends_with(".att")
                || s.path.ends_with(".sbom")),
        "the fallback tag is not asked for when the API answers"
    );
    let (code, stdout, stderr) = ferry_out(&["verify", bundle.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// A registry with neither the API nor any referrer tag: the image is bundled all the same.
#[test]
fn an_image_without_referrers_is_bundled() {
    use common::fake::{Fake, TestImage};
    let fake = Fake::start();
    let image = TestImage::random(8, &[100]);
    fake.serve_image("app", "1", &image);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b");
    let reference = format!("{}/app:1", fake.addr);
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--no-progress",
        "--referrers",
        "-o",
        bundle.to_str().unwrap(),
        &reference,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        index_json(&bundle)["manifests"].as_array().unwrap().len(),
        1
    );
    assert!(
        !fake.seen("/v2/app/referrers/").is_empty(),
        "the API was asked"
    );
    assert!(
        !fake.seen("/v2/app/manifests/sha256-").is_empty(),
        "then the fallback tag"
    );
    // verify --key of a bundle that holds no signature says what the usual cause is.
    let key = dir.path().join("cosign.pub");
    let out = run(Command::new("openssl")
        .args(["ecparam", "-name", "prime256v1", "-genkey", "-noout"])
        .stdout(std::process::Stdio::piped()));
    let private = dir.path().join("cosign.key");
    std::fs::write(&private, &out.stdout).unwrap();
    run(Command::new("openssl")
        .args(["ec", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&key));
    let (code, stdout, stderr) = ferry_out(&[
        "verify",
        bundle.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("signatures: 0 of 1 images signed"),
        "{stdout}"
    );
    assert!(
        stderr.contains("no signatures found") && stderr.contains("--referrers"),
        "{stderr}"
    );
}

/// What --referrers brought across is answered by `ferry serve` (the referrers API lists the
/// SBOM; the signature tags resolve) and carried by `ferry push` (every signature and the SBOM
/// index arrive under their fallback tags, same digests), so cosign and oras find them there.
#[test]
fn serve_answers_for_referrers_and_push_carries_them() {
    let s = Signed::new();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b");
    let (code, stderr) = s.bundle(&bundle, &["--referrers", "--all-platforms"]);
    assert_eq!(code, 0, "{stderr}");
    let sbom = &s.fixtures["sbom"];
    let hello = s.fixtures["digests"][s.reg.image("sample/hello:1.0")]
        .as_str()
        .unwrap()
        .to_owned();
    let signatures = s.fixtures["signatures"].as_object().unwrap();

    let server = served::Served::start(&bundle, &[]);
    let ns = format!("?ns={}", s.reg.addr);
    let reply = served::curl(
        "GET",
        &server.url(&format!("/v2/sample/hello/referrers/{hello}{ns}")),
        &[],
    );
    assert_eq!(reply.status, 200, "{}", server.log());
    let index: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert!(
        index["manifests"].as_array().unwrap().iter().any(
            |m| m["digest"] == sbom["manifest"] && m["artifactType"] == "application/spdx+json"
        ),
        "{index}"
    );
    for (name, digest) in signatures {
        let (repo, tag) = repo_and_tag(name, &s.reg.addr);
        let reply = served::curl(
            "GET",
            &server.url(&format!("/v2/{repo}/manifests/{tag}{ns}")),
            &[],
        );
        assert_eq!(reply.status, 200, "{name}");
        assert_eq!(sha256(&reply.body), digest.as_str().unwrap(), "{name}");
    }
    drop(server);

    let target = Registry::start();
    let (code, _, stderr) = ferry_out(&["push", bundle.to_str().unwrap(), &target.addr]);
    assert_eq!(code, 0, "{stderr}");
    for (name, digest) in signatures {
        let (repo, tag) = repo_and_tag(name, &s.reg.addr);
        let (bytes, _) = target.manifest(repo, tag);
        assert_eq!(sha256(&bytes), digest.as_str().unwrap(), "{name} pushed");
    }
    let sbom_tag = sbom["tag"].as_str().unwrap().rsplit_once(':').unwrap().1;
    let (bytes, _) = target.manifest("sample/hello", sbom_tag);
    assert_eq!(
        sha256(&bytes),
        sbom["index"].as_str().unwrap(),
        "SBOM index pushed"
    );
}

/// A reference on `registry` (`REGISTRY/REPO:TAG`) as its repository and tag.
fn repo_and_tag<'a>(name: &'a str, registry: &str) -> (&'a str, &'a str) {
    name.strip_prefix(&format!("{registry}/"))
        .unwrap()
        .rsplit_once(':')
        .unwrap()
}
