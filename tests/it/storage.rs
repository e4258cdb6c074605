//! Trusting nothing on disk: export re-hashes what it copies and never follows a link, outputs
//! replace only regular files (`-` is stdout), temp files never outlive a failed or interrupted
//! export, declared sizes are checked against free
//! space before writing, and sha512 blobs are stored, verified and exported.
//! Fixtures come from testdata/make_fixtures.py, hand-written layouts and curl uploads to the
//! real docker-registry; a fake registry only for the manifest that lies about a size.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::fake::{Fake, TestImage};
use common::*;

/// Where [`sample_copy`] says the sample images come from.
const SOURCE: &str = "registry.example";

/// A copy of the sample layout (made by make_fixtures.py) to damage at will, its short names
/// (`sample/hello:1.0`) made full (`registry.example/sample/hello:1.0`), as a bundle has them.
fn sample_copy(dir: &Path, name: &str) -> PathBuf {
    sample_bundle(dir, name)
}

/// The first layer of `reference` in a layout, found by reading its JSON by hand.
fn first_layer(bundle: &Path, reference: &str) -> String {
    let entry = index_entry(bundle, reference).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob_path(bundle, entry["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    manifest["layers"][0]["digest"].as_str().unwrap().to_owned()
}

/// Names in a folder.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn export(bundle: &Path, flag: &str, out: &Path) -> (i32, String) {
    let (code, _, stderr) = ferry_out(&[
        "export",
        bundle.to_str().unwrap(),
        flag,
        out.to_str().unwrap(),
    ]);
    (code, stderr)
}

const FORMATS: [&str; 3] = ["--oci-archive", "--docker-archive", "--ext4"];

#[test]
fn a_damaged_bundle_exports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for damage in ["flipped", "truncated", "missing", "symlinked"] {
        let b = sample_copy(dir.path(), damage);
        let layer = blob_path(&b, &first_layer(&b, &format!("{SOURCE}/sample/hello:1.0")));
        let good = std::fs::read(&layer).unwrap();
        match damage {
            "flipped" => {
                let mut bad = good.clone();
                bad[good.len() / 2] ^= 1;
                std::fs::write(&layer, bad).unwrap();
            }
            "truncated" => std::fs::write(&layer, &good[..good.len() / 2]).unwrap(),
            "missing" => std::fs::remove_file(&layer).unwrap(),
            _ => {
                // The right bytes, outside the bundle: only the no-link rule can refuse it
                // (a link to /etc/shadow would otherwise land in a world-readable tar).
                let outside = dir.path().join("outside");
                std::fs::write(&outside, &good).unwrap();
                std::fs::remove_file(&layer).unwrap();
                std::os::unix::fs::symlink(&outside, &layer).unwrap();
            }
        }
        for flag in FORMATS {
            let (code, stderr) = export(&b, flag, &out.join("x"));
            assert_eq!(code, 1, "{damage} {flag}: {stderr}");
            assert!(
                stderr.contains(&layer.file_name().unwrap().to_string_lossy()[..12]),
                "{damage} {flag}: names the blob: {stderr}"
            );
            assert!(
                names(&out).is_empty(),
                "{damage} {flag}: no output and no temp file: {:?}",
                names(&out)
            );
        }
    }
}

/// blobs/ or blobs/sha256/ moved out of the bundle and linked back (the right bytes, outside):
/// every export format refuses to follow the link and writes nothing.
#[test]
fn a_symlinked_blobs_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for folder in ["blobs", "blobs/sha256"] {
        let b = sample_copy(dir.path(), &folder.replace('/', "-"));
        let outside = dir
            .path()
            .join(format!("outside-{}", folder.replace('/', "-")));
        std::fs::rename(b.join(folder), &outside).unwrap();
        std::os::unix::fs::symlink(&outside, b.join(folder)).unwrap();
        for flag in FORMATS {
            let (code, stderr) = export(&b, flag, &out.join("x"));
            assert_eq!(code, 1, "{folder} {flag}: {stderr}");
            assert!(stderr.contains("symlink"), "{folder} {flag}: {stderr}");
            assert!(names(&out).is_empty(), "{folder} {flag}: {:?}", names(&out));
        }
    }
}

#[test]
fn outputs_that_are_not_regular_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = sample_copy(dir.path(), "b");
    let d = dir.path();
    let elsewhere = d.join("elsewhere");
    std::fs::write(&elsewhere, "precious").unwrap();
    std::os::unix::fs::symlink(&elsewhere, d.join("link")).unwrap();
    std::fs::create_dir(d.join("folder")).unwrap();
    run(Command::new("mkfifo").arg(d.join("fifo")));
    // A /dev/null of our own (tests run as root): the real one must not be put at risk.
    run(Command::new("mknod")
        .arg(d.join("null"))
        .args(["c", "1", "3"]));
    let kind = |name: &str| {
        let t = std::fs::symlink_metadata(d.join(name)).unwrap().file_type();
        use std::os::unix::fs::FileTypeExt;
        (t.is_symlink(), t.is_dir(), t.is_fifo(), t.is_char_device())
    };
    let before: Vec<_> = ["link", "folder", "fifo", "null"]
        .iter()
        .map(|n| kind(n))
        .collect();
    for name in ["link", "folder", "fifo", "null"] {
        for flag in FORMATS {
            let (code, stderr) = export(&b, flag, &d.join(name));
            assert_eq!(code, 2, "{name} {flag}: {stderr}");
            assert!(stderr.contains("refusing to replace"), "{stderr}");
        }
    }
    let after: Vec<_> = ["link", "folder", "fifo", "null"]
        .iter()
        .map(|n| kind(n))
        .collect();
    assert_eq!(before, after, "nothing was replaced");
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "precious");
    let (code, stderr) = export(&b, "--ext4", Path::new("-"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot write to stdout"), "{stderr}");
}

#[test]
fn a_dash_streams_the_archive_to_stdout() {
    require("skopeo", "skopeo");
    let dir = tempfile::tempdir().unwrap();
    let b = sample_copy(dir.path(), "b");
    for flag in ["--oci-archive", "--docker-archive"] {
        let out = ferry()
            .args(["export", b.to_str().unwrap(), flag, "-"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let saved = dir.path().join("saved.tar");
        std::fs::write(&saved, &out.stdout).unwrap();
        let file = dir.path().join("file.tar");
        assert_eq!(export(&b, flag, &file).0, 0);
        assert_eq!(
            out.stdout,
            std::fs::read(&file).unwrap(),
            "{flag}: the same bytes as the file"
        );
        let listed =
            String::from_utf8(run(Command::new("tar").arg("-tf").arg(&saved)).stdout).unwrap();
        let expected = if flag == "--oci-archive" {
            "index.json"
        } else {
            "manifest.json"
        };
        assert!(listed.lines().any(|l| l == expected), "{listed}");
    }
    // skopeo reads what went through stdout.
    let out = ferry()
        .args(["export", b.to_str().unwrap(), "--oci-archive", "-"])
        .output()
        .unwrap();
    let saved = dir.path().join("oci.tar");
    std::fs::write(&saved, &out.stdout).unwrap();
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci-archive:{}:{SOURCE}/sample/hello:1.0", saved.display()),
    ]));
    let entry = index_entry(&b, &format!("{SOURCE}/sample/hello:1.0")).unwrap();
    assert_eq!(sha256(&raw.stdout), entry["digest"].as_str().unwrap());
}

/// A layout written by hand: one image whose layer is `mib` MiB of zeros (sparse, so cheap to
/// make; re-hashing it still reads every byte).
fn big_layout(dir: &Path, mib: u64) -> PathBuf {
    let b = dir.join("big");
    let blobs = b.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let layer = blobs.join("layer");
    std::fs::File::create(&layer)
        .unwrap()
        .set_len(mib << 20)
        .unwrap();
    let out = run(Command::new("sha256sum").arg(&layer));
    let hex = String::from_utf8(out.stdout).unwrap()[..64].to_owned();
    std::fs::rename(&layer, blobs.join(&hex)).unwrap();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        std::fs::write(blob_path(&b, &d), bytes).unwrap();
        d
    };
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{hex}"), "size": mib << 20}],
    }))
    .unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": put(&manifest), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "example.com/big:1"},
    }]});
    std::fs::write(b.join("index.json"), index.to_string()).unwrap();
    std::fs::write(b.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    b
}

#[test]
fn an_interrupted_export_removes_its_temp_file_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let b = big_layout(dir.path(), 256);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for (signal, flag) in [("-TERM", "--oci-archive"), ("-INT", "--docker-archive")] {
        let mut child = ferry()
            .args(["export", b.to_str().unwrap(), flag])
            .arg(out.join("x.tar"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(60, "the temp file", || !names(&out).is_empty());
        run(Command::new("kill").args([signal, &child.id().to_string()]));
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{signal} {flag}");
        assert!(names(&out).is_empty(), "{signal}: {:?}", names(&out));
    }
}

#[test]
fn a_layer_declared_as_1_tb_is_refused_up_front_and_alone() {
    let fake = Fake::start();
    let small = TestImage::random(11, &[20_000]);
    fake.serve_image("app", "1", &small);
    // A manifest that declares its layer as 1 TiB; the layer itself is never served.
    let big = TestImage::random(12, &[1000]);
    let mut manifest: serde_json::Value = serde_json::from_slice(&big.manifest).unwrap();
    manifest["layers"][0]["size"] = serde_json::json!(1u64 << 40);
    let lying = TestImage {
        manifest: serde_json::to_vec(&manifest).unwrap(),
        digest: String::new(),
        config: big.config.clone(),
        layers: vec![],
    };
    fake.serve_image("big", "1", &lying);
    let layer = big.layer_digest(0);
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    // What a run before the check left of it (the volume filled up): junk to remove.
    let junk = b
        .join(".ferry/partial")
        .join(format!("sha256-{}", &layer[7..]));
    std::fs::create_dir_all(junk.parent().unwrap()).unwrap();
    std::fs::write(&junk, vec![0u8; 4096]).unwrap();
    let (app, huge) = (
        format!("{}/app:1", fake.addr),
        format!("{}/big:1", fake.addr),
    );
    let (code, _, stderr) = ferry_out(&["bundle", "-o", b.to_str().unwrap(), &app, &huge]);
    assert_eq!(code, 1, "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:") && l.contains(&huge))
        .unwrap_or_else(|| panic!("names the image: {stderr}"));
    assert!(line.contains(&layer), "names the blob: {line}");
    assert!(line.contains("1099511627776 bytes"), "declared: {line}");
    assert!(line.contains("free"), "free space: {line}");
    assert!(fake.seen(&format!("/v2/big/blobs/{layer}")).is_empty());
    assert_eq!(partial_bytes(&b), 0, "no partial kept");
    assert!(
        index_entry(&b, &app).is_some(),
        "the other image is bundled"
    );
    assert!(index_entry(&b, &huge).is_none());
    assert_eq!(ferry_out(&["verify", b.to_str().unwrap()]).0, 0);
}

/// A tmpfs of `size`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&at).unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at));
        Tmpfs(at)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_bundle_that_cannot_fit_is_refused_before_writing() {
    let (reg, image) = big_image_registry(16);
    let dir = tempfile::tempdir().unwrap();
    // Each 8 MiB layer would fit alone; together they do not.
    let mnt = Tmpfs::mount(dir.path().join("small"), "14m");
    let b = mnt.0.join("b");
    let (code, _, stderr) = ferry_out(&["bundle", "-o", b.to_str().unwrap(), &reg.image(&image)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("more on the bundle's filesystem") && stderr.contains("free"),
        "{stderr}"
    );
    // Both figures, exact in bytes: what the images need (with margin) is more than is free.
    let line = stderr
        .lines()
        .find(|l| l.contains("more on the bundle's filesystem"))
        .unwrap();
    let figures: Vec<u64> = regex::Regex::new(r"(\d+) bytes \(")
        .unwrap()
        .captures_iter(line)
        .map(|c| c[1].parse().unwrap())
        .collect();
    let [need, free] = figures[..] else {
        panic!("two figures: {line}")
    };
    assert!(need > 16 << 20 && free > 0 && need > free, "{line}");
    let written = if b.join("blobs").exists() {
        blob_files(&b).0
    } else {
        0
    };
    assert_eq!(written, 0, "no blob written");
    assert_eq!(partial_bytes(&b), 0, "no partial written");
}

fn sha512_hex(path: &Path) -> String {
    let out = run(Command::new("sha512sum").arg(path));
    String::from_utf8(out.stdout).unwrap()[..128].to_owned()
}

/// Uploads a blob with curl (monolithic: POST then PUT ?digest=).
fn upload(reg: &Registry, repo: &str, file: &Path, digest: &str) {
    let out = run(Command::new("curl").args([
        "-sf",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-X",
        "POST",
        &format!("http://{}/v2/{repo}/blobs/uploads/", reg.addr),
    ]));
    let headers = String::from_utf8(out.stdout).unwrap();
    let location = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or(l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_owned();
    run(Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(format!("{location}&digest={digest}")));
}

#[test]
fn sha512_layers_are_stored_verified_exported_and_kept() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer");
    std::fs::write(&layer, b"a layer named by its sha512 digest\n".repeat(100)).unwrap();
    let layer_digest = format!("sha512:{}", sha512_hex(&layer));
    let config = dir.path().join("config");
    let config_bytes =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    std::fs::write(&config, config_bytes).unwrap();
    let config_digest = sha256(config_bytes);
    upload(&reg, "s512/app", &layer, &layer_digest);
    upload(&reg, "s512/app", &config, &config_digest);
    let manifest = dir.path().join("manifest");
    std::fs::write(
        &manifest,
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_bytes.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": std::fs::metadata(&layer).unwrap().len()}],
        })
        .to_string(),
    )
    .unwrap();
    run(Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.manifest.v1+json",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", manifest.display()))
        .arg(format!("http://{}/v2/s512/app/manifests/1.0", reg.addr)));

    let b = dir.path().join("b");
    let image = reg.image("s512/app:1.0");
    let bundle = || {
        let (code, stdout, stderr) =
            ferry_out(&["bundle", "--json", "-o", b.to_str().unwrap(), &image]);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
    };
    assert_eq!(bundle()["totals"]["blobsFetched"], 2);
    let stored = blob_path(&b, &layer_digest);
    assert_eq!(sha512_hex(&stored), layer_digest[7..]);
    let (code, stdout, stderr) = ferry_out(&["verify", b.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(bundle()["totals"]["blobsFetched"], 0, "not fetched again");

    let tar = dir.path().join("a.tar");
    assert_eq!(export(&b, "--oci-archive", &tar).0, 0);
    let member = format!("blobs/sha512/{}", &layer_digest[7..]);
    let content = run(Command::new("tar").arg("-xOf").arg(&tar).arg(&member)).stdout;
    assert_eq!(content, std::fs::read(&layer).unwrap());
    assert_eq!(export(&b, "--ext4", &dir.path().join("a.img")).0, 0);

    // A flipped sha512 blob is caught like any other.
    let mut bad = std::fs::read(&stored).unwrap();
    bad[0] ^= 1;
    std::fs::write(&stored, bad).unwrap();
    assert_eq!(ferry_out(&["verify", b.to_str().unwrap()]).0, 1);
    assert_eq!(export(&b, "--oci-archive", &dir.path().join("c.tar")).0, 1);
    assert!(!dir.path().join("c.tar").exists());
}

#[test]
fn an_ext4_image_carries_regular_files_and_checked_blobs_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let unreferenced = "0".repeat(64);
    type Damage<'a> = &'a dyn Fn(&Path);
    let special = "a device node, FIFO or socket; refusing to read it";
    let cases: [(&str, Damage, &str); 7] = [
        (
            "a stray file in blobs/sha256",
            &|b| std::fs::write(b.join("blobs/sha256/README"), "hi").unwrap(),
            "blobs/sha256/README: not a blob",
        ),
        (
            "an unknown folder in blobs",
            &|b| std::fs::create_dir(b.join("blobs/md5")).unwrap(),
            "blobs/md5: not a blob",
        ),
        (
            "a FIFO at the root",
            &|b| {
                run(Command::new("mkfifo").arg(b.join("pipe")));
            },
            special,
        ),
        (
            "a device node at the root",
            &|b| {
                run(Command::new("mknod")
                    .arg(b.join("null"))
                    .args(["c", "1", "3"]));
            },
            special,
        ),
        (
            "a socket at the root",
            &|b| {
                std::os::unix::net::UnixListener::bind(b.join("sock")).unwrap();
            },
            special,
        ),
        (
            "a symlink at the root",
            &|b| std::os::unix::fs::symlink("/etc/passwd", b.join("passwd")).unwrap(),
            "passwd: a symlink; refusing to read it",
        ),
        (
            "an unreferenced blob that is not its digest",
            &|b| std::fs::write(b.join("blobs/sha256").join(&unreferenced), "junk").unwrap(),
            "digest mismatch",
        ),
    ];
    for (i, (what, damage, reason)) in cases.iter().enumerate() {
        let b = sample_copy(dir.path(), &format!("b{i}"));
        damage(&b);
        let (code, stderr) = export(&b, "--ext4", &out.join("x.img"));
        assert_eq!(code, 1, "{what}: {stderr}");
        assert!(stderr.contains(reason), "{what}: {stderr}");
        assert!(names(&out).is_empty(), "{what}: {:?}", names(&out));
    }
    // mkfs.ext4 failing (an image too small) leaves no temp image behind either.
    let b = sample_copy(dir.path(), "good");
    let (code, _, stderr) = ferry_out(&[
        "export",
        b.to_str().unwrap(),
        "--ext4",
        out.join("x.img").to_str().unwrap(),
        "--size",
        "1M",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("mkfs.ext4 failed"), "{stderr}");
    assert!(names(&out).is_empty(), "{:?}", names(&out));
}
