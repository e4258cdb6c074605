//! `ferry push` into the real docker-registry (htpasswd + TLS, a prefix), read back with skopeo,
//! pulled by a private containerd and by skopeo through the written mirror configs, and
//! through the fault proxy cutting uploads mid-body.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use common::*;

pub(crate) const USER: &str = "pusher";
pub(crate) const PASS: &str = "pu5h-Secret-42";

const SAMPLES: &[&str] = &[
    "sample/hello:1.0",
    "sample/world:1.0",
    "sample/multi:1.0",
    "sample/zstd:1.0",
    "sample/raw:1.0",
    "sample/hello-docker:1.0",
    "sample/multi-docker:1.0",
];

/// Bundles made by ferry from a seeded registry (stopped afterwards): every sample with all
/// platforms, and a linux/amd64-only one (indexes with absent children).
pub(crate) struct Bundles {
    pub(crate) full: PathBuf,
    amd64: PathBuf,
    /// The source registry's name in the bundles' references.
    pub(crate) source: String,
    /// sha256sum of the manifest bytes the source registry served for each sample (by its
    /// full reference): what a byte-exact push must reproduce, known without ferry.
    source_digests: BTreeMap<String, String>,
}

pub(crate) fn bundles() -> &'static Bundles {
    static B: OnceLock<Bundles> = OnceLock::new();
    B.get_or_init(|| {
        let reg = Registry::seeded();
        let dir = run_dir().join("push-bundles");
        let refs: Vec<String> = SAMPLES.iter().map(|t| reg.image(t)).collect();
        let make = |name: &str, platform: &[&str], refs: &[String]| {
            let out = dir.join(name);
            let mut args = vec!["bundle", "-q", "-o", out.to_str().unwrap()];
            args.extend(platform);
            args.extend(refs.iter().map(String::as_str));
            let (code, _, stderr) = ferry_out(&args);
            assert_eq!(code, 0, "{stderr}");
            out
        };
        let full = make("full", &["--all-platforms"], &refs);
        let amd64 = make(
            "amd64",
            &["--platform", "linux/amd64"],
            &[reg.image("sample/hello:1.0"), reg.image("sample/multi:1.0")],
        );
        let source_digests = SAMPLES
            .iter()
            .map(|tag| {
                let (repo, reference) = tag.rsplit_once(':').unwrap();
                (reg.image(tag), sha256(&reg.manifest(repo, reference).0))
            })
            .collect();
        Bundles {
            full,
            amd64,
            source: reg.addr.clone(),
            source_digests,
        }
    })
}

/// (reference, digest) of every image of a bundle, from its index.json.
fn bundle_images(bundle: &Path) -> Vec<(String, String)> {
    index_json(bundle)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A TLS registry with htpasswd auth and an access log, plus what clients need for it.
pub(crate) struct Target {
    pub(crate) reg: Registry,
    tls: Tls,
    pub(crate) dir: tempfile::TempDir,
}

impl Target {
    pub(crate) fn start() -> Target {
        let tls = Tls::new();
        let dir = tempfile::tempdir().unwrap();
        let hp = htpasswd(dir.path(), USER, PASS);
        let (cert, key) = (tls.path("server.crt"), tls.path("server.key"));
        let reg = Registry::start_with(&[
            "--htpasswd",
            hp.to_str().unwrap(),
            "--tls",
            &cert,
            &key,
            "--accesslog",
        ]);
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::copy(tls.path("ca.crt"), certs.join("ca.crt")).unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
        std::fs::write(
            dir.path().join("auth.json"),
            format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr),
        )
        .unwrap();
        Target { reg, tls, dir }
    }

    pub(crate) fn authfile(&self) -> String {
        self.dir
            .path()
            .join("auth.json")
            .to_str()
            .unwrap()
            .to_owned()
    }

    pub(crate) fn ca(&self) -> String {
        self.tls.path("ca.crt")
    }

    /// `skopeo inspect --raw` of an image on the target: the manifest bytes.
    fn raw(&self, image: &str) -> Result<Vec<u8>, String> {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--creds", &format!("{USER}:{PASS}")])
            .arg("--cert-dir")
            .arg(self.dir.path().join("certs"))
            .arg(format!("docker://{image}"))
            .output()
            .unwrap();
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Blob upload requests (session POSTs and body PUT/PATCHes) in the access log.
    fn upload_requests(&self) -> usize {
        self.reg
            .log()
            .lines()
            .filter(|l| {
                (l.contains("\"POST /v2/")
                    || l.contains("\"PUT /v2/")
                    || l.contains("\"PATCH /v2/"))
                    && l.contains("/blobs/uploads/")
            })
            .count()
    }
}

/// ferry push with the target's credentials and CA; returns (code, JSON report, stderr).
pub(crate) fn push(
    target: &Target,
    bundle: &Path,
    dest: &str,
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    let mut args = vec![
        "push",
        bundle.to_str().unwrap(),
        dest,
        "--json",
        "--authfile",
    ];
    let authfile = target.authfile();
    let ca = target.ca();
    args.extend([authfile.as_str(), "--ca-file", ca.as_str()]);
    args.extend(extra);
    let (code, stdout, stderr) = ferry_out(&args);
    let report = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (code, report, stderr)
}

fn image_report<'a>(report: &'a serde_json::Value, source: &str) -> &'a serde_json::Value {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"] == source)
        .unwrap_or_else(|| panic!("{source} not in {report}"))
}

#[test]
fn pushes_every_sample_byte_exact_and_a_second_push_uploads_nothing() {
    let b = bundles();
    let t = Target::start();
    let dest = format!("{}/airgap/team", t.reg.addr);
    let (code, report, stderr) = push(&t, &b.full, &dest, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["version"], 1);
    assert!(stderr.contains("pushed 7 of 7 images"), "{stderr}");

    // skopeo reads every image back, by the mapped name, with the digest the source registry
    // served it under; every child of an index too.
    assert_eq!(bundle_images(&b.full).len(), SAMPLES.len());
    for (source, digest) in bundle_images(&b.full) {
        assert_eq!(digest, b.source_digests[&source], "{source}");
        let tail = source.strip_prefix(&format!("{}/", b.source)).unwrap();
        let name = format!("{dest}/{tail}");
        let i = image_report(&report, &source);
        assert_eq!(i["target"], name);
        // One line per image on stderr when no bars are drawn.
        assert!(
            stderr.contains(&format!("pushed {source} -> {name}: ")),
            "{stderr}"
        );
        assert_eq!(i["status"], "ok");
        assert_eq!(i["digest"], digest);
        let raw = t.raw(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sha256(&raw), digest, "{name}");
        let doc: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let repo = name.rsplit_once(':').unwrap().0;
        for child in doc["manifests"].as_array().into_iter().flatten() {
            let d = child["digest"].as_str().unwrap();
            assert_eq!(sha256(&t.raw(&format!("{repo}@{d}")).unwrap()), d);
        }
    }
    let first = t.upload_requests();
    let totals = &report["totals"];
    assert!(first > 0 && totals["blobsUploaded"].as_u64().unwrap() > 0);
    // The shared base layer went up once and was mounted into the other repositories: the
    // registry saw mount requests it answered 201 (created, no body sent).
    assert!(totals["blobsMounted"].as_u64().unwrap() > 0, "{totals}");
    let log = t.reg.log();
    let mounts = log
        .lines()
        .filter(|l| {
            l.contains("\"POST /v2/") && l.contains("mount=sha256") && l.contains("\" 201 ")
        })
        .count();
    assert_eq!(
        mounts as u64,
        totals["blobsMounted"].as_u64().unwrap(),
        "{log}"
    );

    // Again: every blob is there; not one upload request reaches the registry.
    let (code, report, stderr) = push(&t, &b.full, &dest, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(t.upload_requests(), first, "a second push sent blobs");
    assert_eq!(report["totals"]["blobsUploaded"], 0);
    assert_eq!(report["totals"]["bytesUploaded"], 0);
}

#[test]
fn an_index_with_absent_platforms_is_pushed_by_digest_and_not_tagged() {
    let b = bundles();
    let t = Target::start();
    let dest = t.reg.addr.clone();
    let multi = format!("{}/sample/multi:1.0", b.source);
    let hello = format!("{}/sample/hello:1.0", b.source);
    let (code, report, stderr) = push(&t, &b.amd64, &dest, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(image_report(&report, &hello)["status"], "ok");
    let m = image_report(&report, &multi);
    assert_eq!(m["status"], "partial", "{m}");
    assert_eq!(m["platforms"], serde_json::json!(["linux/amd64"]));
    assert!(m["absent"].to_string().contains("linux/arm64"), "{m}");
    assert!(stderr.contains("the tag was not set"), "{stderr}");
    // No tag; the amd64 manifest is there by digest, byte-exact.
    assert!(t.raw(&format!("{dest}/sample/multi:1.0")).is_err());
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob_path(&b.amd64, m["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let amd64 = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"]["architecture"] == "amd64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let raw = t.raw(&format!("{dest}/sample/multi@{amd64}")).unwrap();
    assert_eq!(sha256(&raw), amd64);

    // Asked to: the tag names the one platform's manifest, and the report says so.
    let (code, report, stderr) = push(&t, &b.amd64, &dest, &["--tag-single-platform"]);
    assert_eq!(code, 0, "{stderr}");
    let m = image_report(&report, &multi);
    assert_eq!(m["status"], "ok");
    assert!(m["note"].as_str().unwrap().contains(&amd64), "{m}");
    assert_eq!(
        sha256(&t.raw(&format!("{dest}/sample/multi:1.0")).unwrap()),
        amd64
    );
}

#[test]
fn refusals_name_the_cause() {
    let b = bundles();
    let t = Target::start();
    // Wrong password: the registry's own code, a hint, exit 1, nothing tagged.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:wrong"));
    std::fs::write(
        &bad,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, t.reg.addr),
    )
    .unwrap();
    let hello = format!("{}/sample/hello:1.0", b.source);
    let (code, _, stderr) = ferry_out(&[
        "push",
        b.full.to_str().unwrap(),
        &t.reg.addr,
        "--ref",
        &hello,
        "--authfile",
        bad.to_str().unwrap(),
        "--ca-file",
        &t.ca(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("UNAUTHORIZED"), "{stderr}");
    assert!(
        stderr.contains("hint:") && stderr.contains("may push"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong"), "{stderr}");
    assert!(t.raw(&format!("{}/sample/hello:1.0", t.reg.addr)).is_err());

    // A read-only registry (distribution's maintenance mode) refuses with 405.
    let ro = Registry::start_with(&["--readonly"]);
    let (code, _, stderr) =
        ferry_out(&["push", b.full.to_str().unwrap(), &ro.addr, "--ref", &hello]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("HTTP 405") && stderr.contains("Method not allowed"),
        "{stderr}"
    );
    assert!(stderr.contains("does not accept pushes"), "{stderr}");

    // An unknown --ref and a bad target are usage errors.
    let (code, _, stderr) = ferry_out(&[
        "push",
        b.full.to_str().unwrap(),
        &t.reg.addr,
        "--ref",
        "quay.io/x/y:1",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no image quay.io/x/y:1"), "{stderr}");
    let (code, _, _) = ferry_out(&["push", b.full.to_str().unwrap(), "https://x.example/a"]);
    assert_eq!(code, 2);

    // Two source registries with one repository: refused up front naming both, unless
    // --keep-registry, which pushes each under its own registry's name.
    let two = dir.path().join("two");
    copy_dir(&b.full, &two);
    let mut index = index_json(&two);
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == hello)
        .unwrap()
        .clone();
    let mut other = entry.clone();
    let other_name = "other.example:5000/sample/hello:1.0";
    other["annotations"]["org.opencontainers.image.ref.name"] = other_name.into();
    other["annotations"]["io.containerd.image.name"] = other_name.into();
    index["manifests"] = serde_json::json!([entry, other]);
    std::fs::write(two.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let before = t.upload_requests();
    let (code, _, stderr) = ferry_out(&["push", two.to_str().unwrap(), &t.reg.addr]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{}/sample/hello", b.source))
            && stderr.contains("other.example:5000/sample/hello")
            && stderr.contains("--keep-registry"),
        "{stderr}"
    );
    assert_eq!(
        t.upload_requests(),
        before,
        "nothing is sent before the refusal"
    );
    let (code, report, stderr) = push(
        &t,
        &two,
        &format!("{}/keep", t.reg.addr),
        &["--keep-registry"],
    );
    assert_eq!(code, 0, "{stderr}");
    let kept = b.source.replace(':', "_");
    for name in [
        format!("{}/keep/{kept}/sample/hello:1.0", t.reg.addr),
        format!("{}/keep/other.example_5000/sample/hello:1.0", t.reg.addr),
    ] {
        assert_eq!(
            sha256(&t.raw(&name).unwrap()),
            entry["digest"].as_str().unwrap(),
            "{name}"
        );
    }
    // The second repository's blobs were mounted from the first, not sent again.
    assert_eq!(
        report["totals"]["blobsMounted"], report["totals"]["blobsUploaded"],
        "{report}"
    );
}

#[test]
fn a_corrupt_blob_in_the_bundle_is_never_sent() {
    let b = bundles();
    let t = Target::start();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("b");
    copy_dir(&b.full, &copy);
    let hello = format!("{}/sample/hello:1.0", b.source);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob_path(
            &copy,
            index_entry(&copy, &hello).unwrap()["digest"]
                .as_str()
                .unwrap(),
        ))
        .unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let path = blob_path(&copy, &layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let (code, report, stderr) = push(&t, &copy, &t.reg.addr, &["--ref", &hello]);
    assert_eq!(code, 1, "{stderr}");
    let i = image_report(&report, &hello);
    assert_eq!(i["status"], "failed");
    assert!(
        i["error"]["message"].as_str().unwrap().contains(&layer),
        "{i}"
    );
    // Neither the blob nor the tag reached the registry.
    let ok = Command::new("curl")
        .args([
            "-sf",
            "-I",
            "--cacert",
            &t.ca(),
            "-u",
            &format!("{USER}:{PASS}"),
        ])
        .arg(format!(
            "https://{}/v2/sample/hello/blobs/{layer}",
            t.reg.addr
        ))
        .status()
        .unwrap()
        .success();
    assert!(!ok, "the corrupt blob was stored");
    assert!(t.raw(&format!("{}/sample/hello:1.0", t.reg.addr)).is_err());
}

#[test]
fn uploads_cut_mid_body_restart_and_the_push_completes_byte_exact() {
    let b = bundles();
    let reg = Registry::start();
    // The first connections die after 200 KB sent: the 1 MB layer's upload is cut mid-body.
    let proxy = proxy::Proxy::start(
        &reg.addr,
        proxy::Faults {
            cut_up_after: Some(200_000),
            reset: true,
            first_connections: Some(6),
            ..proxy::Faults::default()
        },
    );
    let (code, stdout, stderr) = ferry_out(&[
        "push",
        b.full.to_str().unwrap(),
        &proxy.addr,
        "--json",
        "--jobs-per-registry",
        "2",
        "--retries",
        "10",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(proxy.cuts() > 0, "no upload was cut");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        report["totals"]["retries"].as_u64().unwrap() > 0,
        "{report}"
    );
    for (source, digest) in &b.source_digests {
        let tail = source.strip_prefix(&format!("{}/", b.source)).unwrap();
        let (repo, tag) = tail.rsplit_once(':').unwrap();
        assert_eq!(&sha256(&reg.manifest(repo, tag).0), digest, "{tail}");
    }
    // Every blob of every platform reads back whole: skopeo checks each digest as it copies.
    let copy = tempfile::tempdir().unwrap();
    for tag in SAMPLES {
        run(Command::new("skopeo")
            .args(["copy", "--quiet", "--all", "--src-tls-verify=false"])
            .arg(format!("docker://{}", reg.image(tag)))
            .arg(format!(
                "dir:{}",
                copy.path().join(tag.replace(['/', ':'], "-")).display()
            )));
    }
}
