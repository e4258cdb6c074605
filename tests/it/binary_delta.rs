//! `bundle --since BASE --binary-deltas` and `apply` of its patches, against the real
//! docker-registry: images of a real Debian rootfs (this machine's /usr/bin programs and dpkg's
//! status), v2 a security update of v1. gzip layers made by zlib (python) and by Go's
//! compressor (buildah) are patched; zstd layers made by skopeo (klauspost's encoder) cannot be
//! remade exactly here and ship whole. Expected digests and sizes come from sha256sum, the
//! registry and the files themselves, not from ferry.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

use common::*;

use crate::delta::snapshot;

/// Bytes of /usr/bin programs in each image.
const ROOTFS_BYTES: &str = "20000000";

fn script() -> PathBuf {
    root().join("tests/it/data/rootfs_image.py")
}

/// Pushes v1 and v2 of the python-made image (gzip by zlib) as `repo:1` and `repo:2`, with
/// skopeo, which copies the layers unchanged.
fn push_zlib_images(reg: &Registry, work: &Path, repo: &str) {
    require("python3", "python3");
    require("skopeo", "skopeo");
    for v in ["1", "2"] {
        let dir = work.join(format!("oci{v}"));
        run(Command::new("python3")
            .arg(script())
            .arg(&dir)
            .args([v, ROOTFS_BYTES]));
        run(Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:{v}", dir.display()))
            .arg(format!("docker://{}:{v}", reg.image(repo))));
    }
}

/// Bundles `refs` into `dir` with extra arguments; returns stderr, panics on failure.
fn bundle(dir: &Path, refs: &[String], extra: &[&str]) -> String {
    let mut args = vec!["bundle", "-o", dir.to_str().unwrap()];
    args.extend(extra);
    args.extend(refs.iter().map(String::as_str));
    let (code, stdout, stderr) = ferry_out(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    stderr
}

/// The blob files of a bundle folder: digest -> bytes.
fn blob_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_str().unwrap().to_owned();
        out.insert(format!("sha256:{name}"), std::fs::read(e.path()).unwrap());
    }
    out
}

/// `got` (BASE after apply) is the full bundle `want` (as a plain delta's apply must leave it,
/// verify passing), and each blob rebuilt from a patch is the full bundle's byte for byte.
fn assert_same_bundle(got: &Path, want: &Path) {
    crate::delta::assert_same_bundle(got, want);
    let want_blobs = blob_files(want);
    for (digest, bytes) in &blob_files(got) {
        assert!(bytes == &want_blobs[digest], "{digest} differs");
        assert_eq!(&sha256(bytes), digest, "{digest} hashes to its name");
    }
}

/// The layer digests of `repo:tag`, by the registry's manifest.
fn layers(reg: &Registry, repo: &str, tag: &str) -> Vec<(String, u64)> {
    let (bytes, _) = reg.manifest(repo, tag);
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_owned(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn marker(delta: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(delta.join("ferry-delta.json")).unwrap()).unwrap()
}

/// v1 and v2 of the zlib image in a registry, bundled: BASE (v1), the full v2 bundle, and the
/// delta of v2 since BASE with --binary-deltas. Shared: a test copies what it changes.
struct Made {
    work: tempfile::TempDir,
    reg: Registry,
    base: PathBuf,
    full: PathBuf,
    delta: PathBuf,
    /// What `bundle` said while making the delta.
    stderr: String,
}

/// The one [`Made`] of the tests running now (about 40 s of building and bundling each).
fn made() -> Arc<Made> {
    static NOW: Mutex<Weak<Made>> = Mutex::new(Weak::new());
    shared_while_used(&NOW, make)
}

fn make() -> Made {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let reg = Registry::start();
    push_zlib_images(&reg, w, "deb/zlib");
    let (v1, v2) = (vec![reg.image("deb/zlib:1")], vec![reg.image("deb/zlib:2")]);
    let (base, full, delta) = (w.join("base"), w.join("full"), w.join("delta"));
    bundle(&base, &v1, &[]);
    bundle(&full, &v2, &[]);
    let stderr = bundle(&delta, &v2, &since(&base));
    Made {
        work,
        reg,
        base,
        full,
        delta,
        stderr,
    }
}

fn since(base: &Path) -> [&str; 3] {
    ["--since", base.to_str().unwrap(), "--binary-deltas"]
}

/// A copy of folder `from` at `to` (cp -a), returned.
fn copy_of(from: &Path, to: &Path) -> PathBuf {
    run(Command::new("cp").arg("-a").arg(from).arg(to));
    to.to_owned()
}

/// Applies `delta` onto a copy of `base` at `to`; it must then be `full`.
fn apply_onto_copy(base: &Path, delta: &Path, to: &Path, full: &Path) -> String {
    run(Command::new("cp").arg("-a").arg(base).arg(to));
    let (code, _, stderr) = ferry_out(&["apply", delta.to_str().unwrap(), to.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_same_bundle(to, full);
    stderr
}

#[test]
fn a_patched_gzip_layer_applies_to_the_full_bundle_byte_for_byte() {
    let m = made();
    let (reg, stderr, base, full) = (&m.reg, &m.stderr, &m.base, &m.full);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // Its own copy: a re-run of bundle writes into it.
    let delta = &copy_of(&m.delta, &w.join("delta"));

    let (layer, layer_size) = layers(reg, "deb/zlib", "2").remove(0);
    let (old_layer, _) = layers(reg, "deb/zlib", "1").remove(0);
    assert!(stderr.contains(&format!("layer {layer}")), "{stderr}");
    assert!(stderr.contains("patched against"), "{stderr}");
    let delta_blobs = blob_files(delta);
    assert!(
        !delta_blobs.contains_key(&layer),
        "the layer is not shipped whole"
    );
    let m = marker(delta);
    assert_eq!(m["deltaVersion"], 2);
    let p = &m["patched"][&layer];
    assert_eq!(p["base"], old_layer.as_str(), "patched against v1's layer");
    assert_eq!(p["size"], layer_size);
    let patch = p["patch"].as_str().unwrap();
    let patch_bytes = &delta_blobs[patch];
    assert_eq!(&sha256(patch_bytes), patch);
    // 12 programs changed in 20 bytes each: the patch is a sliver of the layer.
    assert!(
        (patch_bytes.len() as u64) * 20 < layer_size,
        "patch {} bytes for a layer of {layer_size}",
        patch_bytes.len()
    );
    let (code, stdout, stderr) = ferry_out(&["verify", delta.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("1 layer(s) as binary patches"), "{stdout}");

    // ls and diff show the layer as patched, with the bytes each way.
    let (code, _, stderr) = ferry_out(&["ls", delta.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let shown = format!("layer {layer}: patched");
    assert!(stderr.contains(&shown), "{stderr}");
    let (_, stdout, _) = ferry_out(&["ls", "--json", delta.to_str().unwrap()]);
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed["patched"][0]["layer"], layer.as_str());
    assert_eq!(listed["patched"][0]["patchSize"], patch_bytes.len());
    assert_eq!(listed["patched"][0]["size"], layer_size);
    let (code, stdout, stderr) =
        ferry_out(&["diff", base.to_str().unwrap(), delta.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&shown), "{stdout}");
    assert!(stdout.contains("1 layer(s) as binary patches"), "{stdout}");

    // A re-run of the same command fetches nothing and keeps the patch.
    let again = bundle(delta, &[reg.image("deb/zlib:2")], &since(base));
    assert!(again.contains("0 fetched"), "{again}");
    assert_eq!(blob_files(delta), delta_blobs);

    let applied = w.join("applied");
    let stderr = apply_onto_copy(base, delta, &applied, full);
    assert!(
        stderr.contains("1 layer(s) rebuilt from binary patches"),
        "{stderr}"
    );
    // The delta as the archive it travels as: the patch goes with it and applies the same.
    let archive = w.join("delta.tar.zst");
    let (code, _, stderr) = ferry_out(&[
        "export",
        delta.to_str().unwrap(),
        "--oci-archive",
        archive.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let from_archive = w.join("from-archive");
    run(Command::new("cp").arg("-a").arg(base).arg(&from_archive));
    let (code, _, stderr) = ferry_out(&[
        "apply",
        archive.to_str().unwrap(),
        from_archive.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_same_bundle(&from_archive, full);
    // Into a new archive (-o), patches are not rebuilt: refused, saying what to do instead.
    let out = w.join("new.tar.zst");
    let (code, _, stderr) = ferry_out(&[
        "apply",
        archive.to_str().unwrap(),
        base.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("binary patches"), "{stderr}");
    assert!(!out.exists());
    // Applying again is a no-op.
    let (code, _, stderr) =
        ferry_out(&["apply", delta.to_str().unwrap(), applied.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_same_bundle(&applied, full);
}

#[test]
fn a_tampered_patch_is_refused_naming_the_layer_and_base_is_unchanged() {
    let m = made();
    let work = tempfile::tempdir().unwrap();
    let base = &copy_of(&m.base, &work.path().join("base"));
    let delta = &copy_of(&m.delta, &work.path().join("delta"));
    let (layer, _) = layers(&m.reg, "deb/zlib", "2").remove(0);
    let m = marker(delta);
    let patch = m["patched"][&layer]["patch"].as_str().unwrap().to_owned();
    let patch_path = delta
        .join("blobs/sha256")
        .join(patch.strip_prefix("sha256:").unwrap());

    let before = snapshot(base);
    // A byte changed in the middle of the patch (its frames), then one in its header.
    for at in [0.6, 0.1] {
        let mut bytes = std::fs::read(&patch_path).unwrap();
        let i = (bytes.len() as f64 * at) as usize;
        let original = bytes.clone();
        bytes[i] ^= 0x55;
        std::fs::write(&patch_path, &bytes).unwrap();
        let (code, stdout, stderr) =
            ferry_out(&["apply", delta.to_str().unwrap(), base.to_str().unwrap()]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(
            stderr.contains(&layer),
            "the refusal names the layer: {stderr}"
        );
        assert!(stderr.contains("nothing was changed"), "{stderr}");
        assert_eq!(snapshot(base), before, "BASE unchanged (at {at})");
        std::fs::write(&patch_path, &original).unwrap();
    }
    // verify of the delta finds the tampered patch too (its digest).
    let mut bytes = std::fs::read(&patch_path).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&patch_path, &bytes).unwrap();
    let (code, stdout, stderr) = ferry_out(&["verify", delta.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}{stderr}");
}

/// buildah as a real build: an image of `rootfs` pushed as `image` (gzip by Go's compressor).
fn buildah_push(work: &Path, rootfs: &Path, image: &str) {
    require("buildah", "buildah");
    let b = |args: &[&str]| {
        let out = run(Command::new("buildah")
            .arg("--root")
            .arg(work.join("buildah-root"))
            .arg("--runroot")
            .arg(work.join("buildah-run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("TMPDIR", work));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let ctr = b(&["from", "scratch"]);
    b(&["copy", &ctr, rootfs.to_str().unwrap(), "/"]);
    b(&["commit", "-q", &ctr, "built"]);
    b(&[
        "push",
        "-q",
        "--tls-verify=false",
        "built",
        &format!("docker://{image}"),
    ]);
    b(&["rm", &ctr]);
}

/// The python-made image's layer unpacked into a folder (a rootfs for buildah).
fn rootfs_of(oci: &Path, into: &Path) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        oci.join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
    };
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(into).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(blob(manifest["layers"][0]["digest"].as_str().unwrap()))
        .arg("-C")
        .arg(into));
}

/// buildah's layers (gzip by Go's compressor: single-code Huffman trees, table-based matches)
/// are patched; skopeo's zstd layers, which no libzstd setting remakes, ship whole.
#[test]
fn a_buildah_layer_is_patched_and_a_zstd_layer_not_remade_ships_whole() {
    let m = made();
    let reg = &m.reg;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    for v in ["1", "2"] {
        let rootfs = w.join(format!("rootfs{v}"));
        rootfs_of(&m.work.path().join(format!("oci{v}")), &rootfs);
        buildah_push(w, &rootfs, &reg.image(&format!("deb/built:{v}")));
        // zstd layers as skopeo writes them (klauspost's encoder, not libzstd), pushed byte
        // for byte (skopeo would recompress them on the way to the registry).
        let zoci = w.join("zoci");
        run(Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .args(["--dest-compress-format", "zstd", "--dest-compress"])
            .arg(format!("docker://{}", reg.image(&format!("deb/built:{v}"))))
            .arg(format!("oci:{}:{v}", zoci.display()))
            .env("TMPDIR", w));
        run(Command::new("python3")
            .arg(root().join("testdata/push_oci.py"))
            .arg(&zoci)
            .arg(v)
            .arg(format!("http://{}/deb/zstd:{v}", reg.addr)));
    }
    let refs = |v: &str| {
        vec![
            reg.image(&format!("deb/built:{v}")),
            reg.image(&format!("deb/zstd:{v}")),
        ]
    };
    let (base, full, delta) = (w.join("base"), w.join("full"), w.join("delta"));
    bundle(&base, &refs("1"), &[]);
    bundle(&full, &refs("2"), &[]);
    let stderr = bundle(&delta, &refs("2"), &since(&base));

    let (built, built_size) = layers(reg, "deb/built", "2").remove(0);
    let (old_built, _) = layers(reg, "deb/built", "1").remove(0);
    let (zstd, _) = layers(reg, "deb/zstd", "2").remove(0);
    assert!(
        String::from_utf8(reg.manifest("deb/zstd", "2").0)
            .unwrap()
            .contains("tar+zstd")
    );
    let delta_blobs = blob_files(&delta);
    assert!(!delta_blobs.contains_key(&built), "the Go layer is patched");
    let patched = &marker(&delta)["patched"];
    assert_eq!(patched[&built]["base"], old_built.as_str(), "{stderr}");
    let patch = patched[&built]["patch"].as_str().unwrap();
    let patch_size = delta_blobs[patch].len() as u64;
    // preflate's correction for Go's matcher is about 7.5% of the layer (zlib's: under 1%).
    assert!(
        patch_size * 5 < built_size,
        "patch {patch_size} bytes for a layer of {built_size}"
    );
    assert!(delta_blobs.contains_key(&zstd), "{zstd} ships whole");
    assert!(patched.get(&zstd).is_none());
    assert!(
        stderr.contains(&format!("layer {zstd}")) && stderr.contains("whole"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no libzstd"),
        "why the zstd layer ships whole: {stderr}"
    );
    let applied = apply_onto_copy(&base, &delta, &w.join("applied"), &full);
    assert!(
        applied.contains("1 layer(s) rebuilt from binary patches"),
        "{applied}"
    );
}

#[test]
fn an_apply_killed_midway_finishes_on_a_re_run_with_the_rebuilt_layer() {
    let m = made();
    let (base, full, delta) = (&m.base, &m.full, &m.delta);
    let work = tempfile::tempdir().unwrap();
    for point in ["after-blob", "after-publish"] {
        let target = work.path().join(point);
        run(Command::new("cp").arg("-a").arg(base).arg(&target));
        let killed = ferry()
            .env("FERRY_TEST_CRASH_AT", point)
            .args(["apply", delta.to_str().unwrap(), target.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(killed.status.code(), None, "{point}: killed by SIGKILL");
        let (code, _, stderr) =
            ferry_out(&["apply", delta.to_str().unwrap(), target.to_str().unwrap()]);
        assert_eq!(code, 0, "{point}: {stderr}");
        assert!(stderr.contains("finished an interrupted apply"), "{stderr}");
        assert_same_bundle(&target, full);
    }
}
