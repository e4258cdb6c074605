//! `ferry serve` against real clients: skopeo copies every image byte-exact from a folder and
//! from its oci-archive .tar; the API's details (HEAD, Range, tags/list, ns, referrers, uploads)
//! through curl; bad bundles are refused; memory stays flat; HTTPS.

use crate::common;
use crate::served;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use served::*;

/// skopeo inspects and copies every image from the server: every manifest has the digest the
/// source registry gives it, every blob the bundle's bytes.
fn skopeo_reads_every_image(served: &Served, b: &Path, reg: &Registry) {
    let dir = tempfile::tempdir().unwrap();
    for tag in SAMPLES {
        let raw = run(Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/{tag}", served.addr),
        ]));
        assert_eq!(sha256(&raw.stdout), reg.digest(tag), "{tag}");
        let out = dir.path().join(tag.replace(['/', ':'], "_"));
        // dir: keeps every media type (Docker's too) and names blobs by their digest.
        run(Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            &format!("docker://{}/{tag}", served.addr),
            &format!("dir:{}", out.display()),
        ]));
        let top = std::fs::read(out.join("manifest.json")).unwrap();
        assert_eq!(sha256(&top), reg.digest(tag), "{tag}");
        let mut blobs = 0;
        for f in std::fs::read_dir(&out).unwrap() {
            let f = f.unwrap();
            let file = f.file_name().into_string().unwrap();
            let hex = file.trim_end_matches(".manifest.json");
            if hex.len() != 64 {
                continue;
            }
            let name = format!("sha256:{hex}");
            let bytes = std::fs::read(f.path()).unwrap();
            assert_eq!(sha256(&bytes), name);
            assert_eq!(bytes, std::fs::read(blob_path(b, &name)).unwrap(), "{name}");
            blobs += 1;
        }
        assert!(blobs >= 2, "{tag}: {blobs} blobs copied");
    }
}

#[test]
fn skopeo_copies_every_image_byte_exact_from_a_folder_and_from_its_tar() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), SAMPLES, &["--all-platforms"]);
    let tar = dir.path().join("b.tar");
    export_tar(&b, &tar);
    for source in [&b, &tar] {
        let mut served = Served::start(source, &[]);
        skopeo_reads_every_image(&served, &b, &reg);
        // An upload is refused with the spec's error.
        let up = curl("POST", &served.url("/v2/sample/hello/blobs/uploads/"), &[]);
        assert_eq!(up.status, 405);
        assert_eq!(error_code(&up), "UNSUPPORTED");
        let del = curl("DELETE", &served.url("/v2/sample/hello/manifests/1.0"), &[]);
        assert_eq!(del.status, 405);
        let log = served.log();
        assert!(
            log.contains("GET /v2/sample/hello/manifests/1.0 200"),
            "{log}"
        );
        assert_eq!(
            served.stop(),
            0,
            "SIGTERM stops it cleanly: {}",
            served.log()
        );
    }
}

#[test]
fn head_range_tags_ns_and_ambiguous_names() {
    let reg = Registry::seeded();
    let other = Registry::start();
    skopeo_push(&other.addr, "sample/hello:1.0", None, None);
    let dir = tempfile::tempdir().unwrap();
    let tags = ["sample/hello:1.0", "sample/multi:1.0"];
    let mut refs: Vec<String> = tags.iter().map(|t| reg.image(t)).collect();
    refs.push(other.image("sample/hello:1.0"));
    let b = dir.path().join("b");
    let mut args = vec!["bundle", "-o", b.to_str().unwrap()];
    args.extend(refs.iter().map(String::as_str));
    let (code, _, stderr) = ferry_out(&args);
    assert_eq!(code, 0, "{stderr}");
    let served = Served::start(&b, &[]);

    // HEAD of a manifest: stored type, digest, length, no body.
    let digest = bundled_digest(&b, &reg.image("sample/multi:1.0"));
    let head = curl("HEAD", &served.url("/v2/sample/multi/manifests/1.0"), &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["docker-content-digest"], digest);
    assert_eq!(
        head.headers["content-type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let size = std::fs::metadata(blob_path(&b, &digest)).unwrap().len();
    assert_eq!(head.headers["content-length"], size.to_string());
    let by_digest = curl(
        "GET",
        &served.url(&format!("/v2/sample/multi/manifests/{digest}")),
        &[],
    );
    assert_eq!(sha256(&by_digest.body), digest);

    // tags/list and _catalog.
    let tags = curl("GET", &served.url("/v2/sample/multi/tags/list"), &[]);
    let v: serde_json::Value = serde_json::from_slice(&tags.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["1.0"]));
    let unknown = curl("GET", &served.url("/v2/sample/nothing/tags/list"), &[]);
    assert_eq!(
        (unknown.status, error_code(&unknown).as_str()),
        (404, "NAME_UNKNOWN")
    );
    let missing = curl("GET", &served.url("/v2/sample/multi/manifests/2.0"), &[]);
    assert_eq!(error_code(&missing), "MANIFEST_UNKNOWN");

    // sample/hello is held from two registries: the bare name is ambiguous; ns or the host
    // form selects one.
    let bare = curl("GET", &served.url("/v2/sample/hello/manifests/1.0"), &[]);
    assert_eq!(bare.status, 404);
    assert!(String::from_utf8_lossy(&bare.body).contains("several registries"));
    for (registry, path) in [
        (
            &reg,
            format!("/v2/sample/hello/manifests/1.0?ns={}", reg.addr),
        ),
        (
            &other,
            format!("/v2/sample/hello/manifests/1.0?ns={}", other.addr),
        ),
        (&reg, format!("/v2/{}/sample/hello/manifests/1.0", reg.addr)),
        (
            &other,
            format!(
                "/v2/{}/sample/hello/manifests/1.0",
                other.addr.replace(':', "_")
            ),
        ),
    ] {
        let r = curl("GET", &served.url(&path), &[]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.headers["docker-content-digest"],
            bundled_digest(&b, &registry.image("sample/hello:1.0")),
            "{path}"
        );
    }

    // Range requests on a layer: 206 with Content-Range, 416 past the end.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob_path(
            &b,
            &bundled_digest(&b, &reg.image("sample/hello:1.0")),
        ))
        .unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let lsize = manifest["layers"][0]["size"].as_u64().unwrap();
    let bytes = std::fs::read(blob_path(&b, layer)).unwrap();
    let url = served.url(&format!("/v2/sample/hello/blobs/{layer}?ns={}", reg.addr));
    let part = curl("GET", &url, &["Range: bytes=10-19"]);
    assert_eq!(part.status, 206);
    assert_eq!(
        part.headers["content-range"],
        format!("bytes 10-19/{lsize}")
    );
    assert_eq!(part.body, bytes[10..20]);
    let tail = curl("GET", &url, &["Range: bytes=-5"]);
    assert_eq!(tail.body, bytes[bytes.len() - 5..]);
    let past = curl("GET", &url, &[&format!("Range: bytes={lsize}-")]);
    assert_eq!(past.status, 416);
    assert_eq!(past.headers["content-range"], format!("bytes */{lsize}"));
    let whole = curl("GET", &url, &[]);
    assert_eq!((whole.status, whole.body.len() as u64), (200, lsize));
    let head = curl("HEAD", &url, &[]);
    assert_eq!(head.headers["content-length"], lsize.to_string());
    assert_eq!(head.headers["docker-content-digest"], layer);
    // A blob of another repository is not served under this one.
    let multi: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob_path(
            &b,
            &bundled_digest(&b, &reg.image("sample/multi:1.0")),
        ))
        .unwrap(),
    )
    .unwrap();
    let child = multi["manifests"][0]["digest"].as_str().unwrap();
    let elsewhere = curl(
        "GET",
        &served.url(&format!("/v2/sample/hello/blobs/{child}?ns={}", reg.addr)),
        &[],
    );
    assert_eq!(
        (elsewhere.status, error_code(&elsewhere).as_str()),
        (404, "BLOB_UNKNOWN")
    );

    // Referrers: an empty index for a digest nothing refers to.
    let refs = curl(
        "GET",
        &served.url(&format!("/v2/sample/multi/referrers/{digest}")),
        &[],
    );
    assert_eq!(refs.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&refs.body).unwrap();
    assert_eq!(v["manifests"], serde_json::json!([]));
}

/// The first layer of sample/hello in a bundle: (digest, path).
fn hello_layer(b: &Path, reg: &Registry) -> (String, PathBuf) {
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob_path(
            b,
            &bundled_digest(b, &reg.image("sample/hello:1.0")),
        ))
        .unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][1]["digest"].as_str().unwrap().to_owned();
    let path = blob_path(b, &layer);
    (layer, path)
}

#[test]
fn symlinked_tampered_and_compressed_bundles_are_refused() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(
        &reg,
        &dir.path().join("b"),
        &["sample/hello:1.0", "sample/world:1.0"],
        &[],
    );
    // gzip cannot be read at an offset: refused with a hint (a .tar.zst is served).
    let tar = dir.path().join("b.tar");
    export_tar(&b, &tar);
    run(Command::new("gzip").arg("-k").arg(&tar));
    let gz = dir.path().join("b.tar.gz");
    let (code, _, stderr) = ferry_out(&["serve", gz.to_str().unwrap(), "--addr", "127.0.0.1:0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("gzip") && stderr.contains("hint:"),
        "{stderr}"
    );

    // A layer replaced by a symlink to the same bytes elsewhere: not served.
    let (layer, path) = hello_layer(&b, &reg);
    let outside = dir.path().join("outside");
    std::fs::copy(&path, &outside).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&outside, &path).unwrap();
    let served = Served::start(&b, &[]);
    let r = curl(
        "GET",
        &served.url(&format!("/v2/sample/hello/blobs/{layer}")),
        &[],
    );
    assert_eq!((r.status, error_code(&r).as_str()), (404, "BLOB_UNKNOWN"));
    assert!(served.log().contains("symlink"), "{}", served.log());
    drop(served);

    // A layer with one byte changed (same size): a whole GET is cut before its end, then the
    // blob is refused; a Range request is never served from it.
    std::fs::remove_file(&path).unwrap();
    let mut bytes = std::fs::read(&outside).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let served = Served::start(&b, &[]);
    let url = served.url(&format!("/v2/sample/hello/blobs/{layer}"));
    let ranged = curl("GET", &url, &["Range: bytes=0-9"]);
    assert_eq!(ranged.status, 404);
    let served = {
        drop(served);
        Served::start(&b, &[])
    };
    let url = served.url(&format!("/v2/sample/hello/blobs/{layer}"));
    let cut = curl("GET", &url, &[]);
    assert_ne!(cut.curl_exit, 0, "the transfer must not complete");
    assert!((cut.body.len()) < bytes.len());
    let again = curl("GET", &url, &[]);
    assert_eq!(again.status, 404);
    assert!(served.log().contains("digest mismatch"), "{}", served.log());
}

/// Peak resident memory of a process, in MiB (VmHWM).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib / 1024
}

#[test]
fn memory_stays_flat_under_100_concurrent_pulls_of_a_large_layer() {
    let (reg, image) = big_image_registry(16);
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), &[&image], &[]);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob_path(&b, &bundled_digest(&b, &reg.image(&image)))).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|l| l["size"].as_u64())
        .unwrap();
    let (digest, size) = (
        layer["digest"].as_str().unwrap(),
        layer["size"].as_u64().unwrap(),
    );
    assert!(size >= 7 << 20, "a large layer: {size}");
    let served = Served::start(&b, &[]);
    let repo = image.split(':').next().unwrap();
    let url = served.url(&format!("/v2/{repo}/blobs/{digest}"));
    // Clients at 2 MiB/s each: every pull lasts seconds, so they overlap whatever the speed
    // of the machine or of ferry's hashing; the test waits until most are in flight at once.
    let pulls: Vec<_> = (0..100)
        .map(|_| {
            Command::new("curl")
                .args(["-sf", "--limit-rate", "2M", "-o", "/dev/null"])
                .args(["-w", "%{size_download}", &url])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let sockets = || {
        std::fs::read_dir(format!("/proc/{}/fd", served.child.id()))
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            })
            .count()
    };
    wait_for(60, "80 pulls in flight at once", || sockets() > 80);
    for p in pulls {
        let out = p.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), size.to_string());
    }
    // 100 copies of the layer would be 800 MiB; streaming keeps a few chunks per transfer.
    let peak = peak_rss_mib(served.child.id());
    assert!(peak < 150, "ferry serve peaked at {peak} MiB");
}

#[test]
fn https_with_tls_cert_and_key() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), &["sample/hello:1.0"], &[]);
    let tls = Tls::new();
    let hosts = dir.path().join("certs.d");
    let served = Served::start(
        &b,
        &[
            "--tls-cert",
            &tls.path("server.crt"),
            "--tls-key",
            &tls.path("server.key"),
            "--hosts-dir",
            hosts.to_str().unwrap(),
        ],
    );
    let out = run(Command::new("curl").args([
        "-sf",
        "--cacert",
        &tls.path("ca.crt"),
        "-w",
        " %{http_version}",
        &format!("https://{}/v2/sample/hello/tags/list", served.addr),
    ]));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\"1.0\""), "{text}");
    assert!(text.ends_with(" 2"), "HTTP/2 over TLS: {text}");
    let toml = std::fs::read_to_string(hosts.join(&reg.addr).join("hosts.toml")).unwrap();
    assert!(toml.contains(&format!("https://{}", served.addr)), "{toml}");
    assert!(toml.contains("server.crt"), "{toml}");
    // A key that is not a key is refused before anything is served.
    let (code, _, stderr) = ferry_out(&[
        "serve",
        b.to_str().unwrap(),
        "--tls-cert",
        &tls.path("server.crt"),
        "--tls-key",
        &tls.path("ca.crt"),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("ca.crt"), "{stderr}");
}

/// Writes a blob into an OCI layout folder; returns its descriptor.
fn put_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let digest = sha256(bytes);
    let path = blob_path(layout, &digest);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
}

#[test]
fn referrers_lists_what_the_bundle_holds_about_a_manifest() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    // A signature-like artifact whose subject is sample/hello:1.0, pushed byte for byte.
    let (hello, hello_type) = reg.manifest("sample/hello", "1.0");
    let subject = serde_json::json!({
        "mediaType": hello_type, "digest": sha256(&hello), "size": hello.len()
    });
    let layout = dir.path().join("artifact");
    let config = put_blob(&layout, "application/vnd.oci.empty.v1+json", b"{}");
    let layer = put_blob(&layout, "text/plain", b"signed by the tests");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": config,
        "layers": [layer],
        "subject": subject,
    });
    let mut desc = put_blob(
        &layout,
        "application/vnd.oci.image.manifest.v1+json",
        manifest.to_string().as_bytes(),
    );
    desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "sig"});
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [desc]}).to_string(),
    )
    .unwrap();
    run(Command::new("python3")
        .arg(root().join("testdata/push_oci.py"))
        .arg(&layout)
        .arg("sig")
        .arg(format!("http://{}/sample/hello:sig", reg.addr)));
    let b = bundle(
        &reg,
        &dir.path().join("b"),
        &["sample/hello:1.0", "sample/hello:sig"],
        &[],
    );
    let served = Served::start(&b, &[]);
    let url = served.url(&format!("/v2/sample/hello/referrers/{}", sha256(&hello)));
    let r = curl("GET", &url, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["content-type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let found = v["manifests"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{v}");
    assert_eq!(found[0]["digest"], desc["digest"]);
    assert_eq!(
        found[0]["artifactType"],
        "application/vnd.example.signature"
    );
    let filtered = curl(
        "GET",
        &format!("{url}?artifactType=application/vnd.other"),
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&filtered.body).unwrap();
    assert_eq!(v["manifests"], serde_json::json!([]));
    assert_eq!(filtered.headers["oci-filters-applied"], "artifactType");
}
