//! Nodes as they are: the static arm64 binary `--with-binary` carries (run under qemu-user),
//! an arm64 node with no runnable binary (restore.sh imports at once), and upgrades with
//! `--replace` that unpin exactly what left, in containerd and in CRI-O's drop-in.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// The names pinned in namespace NS, each with its labels.
fn pinned_in(node: &Containerd, ns: &str) -> BTreeSet<String> {
    containerd_images_in(node, ns)
        .into_iter()
        .filter(|(_, _, labels)| {
            labels
                .split(',')
                .any(|l| l == "io.cri-containerd.pinned=pinned")
        })
        .map(|(name, _, _)| name)
        .collect()
}

/// The record label key restore writes for the bundle whose ferry.lock this is.
fn record_of(bundle: &Path) -> (String, String) {
    let id = sha256(&std::fs::read(bundle.join("ferry.lock")).unwrap());
    let key = format!(
        "io.ferry.pinned-by.sha256-{}",
        id.trim_start_matches("sha256:")
    );
    (id, key)
}

/// Both names of `tag` in `reg` (reference, repository@digest), the digest from the registry.
fn both_names(reg: &Registry, tag: &str) -> [String; 2] {
    let (repo, t) = tag.rsplit_once(':').unwrap();
    let digest = sha256(&reg.manifest(repo, t).0);
    [reg.image(tag), format!("{}/{repo}@{digest}", reg.addr)]
}

fn names_of(reg: &Registry, tags: &[&str]) -> BTreeSet<String> {
    tags.iter().flat_map(|t| both_names(reg, t)).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The arm64 build from scripts/dist.sh (its `dist-test` profile: the shipped build's static,
/// stripped form without optimisation, half the CPU of a cold build; cached under target/)
/// runs `ferry version` under qemu-user, static and stripped; `--with-binary` places it and
/// names the platform it has no binary for; an arm64 node whose bundle holds no binary that
/// runs there (a `uname` that says aarch64, a file that is no arm64 executable) gets the
/// plain-sh import at once, with a clear line, and never runs that file.
#[test]
fn the_arm64_binary_runs_and_an_arm64_node_without_one_imports_at_once() {
    require("qemu-aarch64-static", "qemu-user-static");
    require("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu");
    run(Command::new(root().join("scripts/dist.sh"))
        .arg("arm64")
        .env("FERRY_DIST_PROFILE", "dist-test"));
    let built = root().join("target/dist-test/ferry-linux-arm64");
    let out = run(Command::new("qemu-aarch64-static")
        .arg(&built)
        .args(["version", "--json"]));
    let version: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(version["arch"], "arm64");
    assert_eq!(version["ferry"], env!("CARGO_PKG_VERSION"));
    // binutils' own reading: no program interpreter (static), no symbol table (stripped).
    let headers = run(Command::new("aarch64-linux-gnu-readelf")
        .args(["-l", "-S", "-W"])
        .arg(&built));
    let headers = String::from_utf8_lossy(&headers.stdout);
    assert!(!headers.contains("INTERP"), "{headers}");
    assert!(!headers.contains(".symtab") && !headers.contains(".debug_info"));
    let bytes = std::fs::read(&built).unwrap();
    // Unoptimised; the shipped (opt-level "s") build is about 14 MB.
    assert!(bytes.len() < 48 << 20, "{} bytes", bytes.len());

    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let bins = dir.path().join("bins");
    std::fs::create_dir(&bins).unwrap();
    std::fs::copy(&built, bins.join("ferry-linux-arm64")).unwrap();
    let b = dir.path().join("b");
    let tags = ["sample/multi:1.0", "sample/arm-only:1.0"];
    let refs: Vec<String> = tags.iter().map(|t| reg.image(t)).collect();
    let mut args = vec![
        "bundle",
        "-o",
        b.to_str().unwrap(),
        "--json",
        "--with-binary",
    ];
    args.extend(["--binaries", bins.to_str().unwrap()]);
    args.extend(["--platform", "linux/amd64", "--platform", "linux/arm64"]);
    args.extend(refs.iter().map(String::as_str));
    let (code, stdout, err) = ferry_out(&args);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let placed = &report["binaries"]["placed"];
    assert_eq!(placed.as_array().unwrap().len(), 1, "{report}");
    assert_eq!(placed[0]["platform"], "linux/arm64");
    assert_eq!(placed[0]["file"], "ferry-linux-arm64");
    assert_eq!(placed[0]["bytes"], bytes.len());
    let missing = &report["binaries"]["missing"];
    assert_eq!(missing[0]["platform"], "linux/amd64", "{report}");
    assert!(
        missing[0]["reason"]
            .as_str()
            .unwrap()
            .contains("ferry-linux-amd64")
    );
    assert!(
        err.contains("warning: no ferry binary for linux/amd64"),
        "{err}"
    );
    assert_eq!(
        sha256(&std::fs::read(b.join("ferry-linux-arm64")).unwrap()),
        sha256(&bytes)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(b.join("ferry-linux-arm64")).unwrap();
    assert_eq!(mode.permissions().mode() & 0o777, 0o755);

    // The node: `uname -m` says aarch64; the bundle's arm64 file is not an arm64 executable
    // (text with an unclosed backquote: what sh choked on when it ran an amd64 binary).
    let fake = dir.path().join("fake-bin");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(
        fake.join("uname"),
        "#!/bin/sh\nif [ \"$1\" = -m ]; then echo aarch64; else exec /bin/uname \"$@\"; fi\n",
    )
    .unwrap();
    std::fs::set_permissions(fake.join("uname"), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(b.join("ferry-linux-arm64"), "echo `never closed\n").unwrap();
    let node = Containerd::start();
    let state = dir.path().join("state");
    let restore = || {
        Command::new(b.join("restore.sh"))
            .arg("--mirror")
            .env("PATH", path_with(&fake))
            .env("CONTAINERD_ADDRESS", &node.socket)
            .env("FERRY_SERVICE", "background")
            .env("FERRY_STATE_DIR", &state)
            .env("FERRY_HOSTS_DIR", dir.path().join("certs.d"))
            .output()
            .unwrap()
    };
    let out = restore();
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(
            "no ferry binary runs on this linux/arm64 node (ferry-linux-arm64 is not an executable \
             for linux/arm64; none on PATH): importing the images instead of serving them"
        ),
        "{log}"
    );
    assert!(!log.contains("Syntax error") && !state.join("serve.pid").exists());
    assert!(log.contains("for linux/arm64 into containerd"), "{log}");
    let listed = containerd_images(&node);
    for tag in tags {
        for name in both_names(&reg, tag) {
            assert!(listed.iter().any(|r| r.0 == name), "{name}: {listed:?}");
        }
    }
    // No binary at all for the node: the same, at once.
    std::fs::remove_file(b.join("ferry-linux-arm64")).unwrap();
    let out = restore();
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("(no ferry-linux-arm64 in the bundle; none on PATH): importing"),
        "{log}"
    );
}

/// The two bundles of an upgrade: v1 {hello, world, zstd, moving:1 = world} and v2 {hello,
/// multi, moving:1 = hello-docker}, v2 for amd64 and arm64 (multi has both). Returns them with the names only v1 has, those both have,
/// and v2's names.
struct Upgrade {
    reg: Registry,
    v1: PathBuf,
    v2: PathBuf,
    only_v1: BTreeSet<String>,
    shared: BTreeSet<String>,
    v2_names: BTreeSet<String>,
    _dir: tempfile::TempDir,
}

fn upgrade() -> Upgrade {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    reg.copy_within("sample/world:1.0", "sample/moving:1", &[]);
    let moving_v1 = both_names(&reg, "sample/moving:1");
    let v1_tags = ["sample/hello:1.0", "sample/world:1.0", "sample/zstd:1.0"];
    let mut all_v1 = v1_tags.to_vec();
    all_v1.push("sample/moving:1");
    let v1 = bundle_tags(&reg, &dir.path().join("v1"), &all_v1, &[]);
    reg.copy_within("sample/hello-docker:1.0", "sample/moving:1", &[]);
    let v2_tags = ["sample/hello:1.0", "sample/multi:1.0", "sample/moving:1"];
    let both = ["--platform", "linux/amd64", "--platform", "linux/arm64"];
    let v2 = bundle_tags(&reg, &dir.path().join("v2"), &v2_tags, &both);
    let mut v1_names = names_of(&reg, &v1_tags);
    v1_names.extend(moving_v1);
    let v2_names = names_of(&reg, &v2_tags);
    Upgrade {
        only_v1: v1_names.difference(&v2_names).cloned().collect(),
        shared: v1_names.intersection(&v2_names).cloned().collect(),
        v2_names,
        reg,
        v1,
        v2,
        _dir: dir,
    }
}

/// v1 restored pinned, then v2 with `--replace v1`: by ferry restore (namespace a) and by
/// restore.sh with `--remove` (namespace b, where a container uses one v1-only image).
#[test]
fn replace_unpins_what_left_keeps_what_both_have_and_removes_with_remove() {
    let u = upgrade();
    assert_eq!(u.only_v1.len(), 5, "{:?}", u.only_v1);
    assert_eq!(u.shared.len(), 3, "{:?}", u.shared);
    let (v1_id, v1_key) = record_of(&u.v1);
    let (v2_id, v2_key) = record_of(&u.v2);
    let node = Containerd::start();
    let ferry_in = |ns: &str, args: &[&str]| {
        let mut a = vec!["restore", "-n", ns, "--address", &node.socket];
        a.extend(args);
        ferry_out(&a)
    };
    let labels_of = |ns: &str, name: &str| -> String {
        let rows = containerd_images_in(&node, ns);
        let row = rows.iter().find(|r| r.0 == name);
        row.unwrap_or_else(|| panic!("{name} not in {ns}: {rows:?}"))
            .2
            .clone()
    };

    // --- ferry restore, namespace a ---
    let (code, _, err) = ferry_in(
        "a",
        &[u.v1.to_str().unwrap(), "--replace", u.v1.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("this bundle itself"), "{err}");
    assert!(
        containerd_images_in(&node, "a").is_empty(),
        "nothing imported"
    );
    let (code, _, err) = ferry_in("a", &[u.v1.to_str().unwrap(), "--pin"]);
    assert_eq!(code, 0, "{err}");
    for name in u.only_v1.iter().chain(&u.shared) {
        assert!(
            labels_of("a", name).contains(&format!("{v1_key}=")),
            "{name}"
        );
    }
    // Not all of v2 comes in (hello has no arm64 build): nothing is unpinned.
    let (code, _, err) = ferry_in(
        "a",
        &[
            u.v2.to_str().unwrap(),
            "--replace",
            u.v1.to_str().unwrap(),
            "--platform",
            "linux/arm64",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nothing unpinned"), "{err}");
    assert!(pinned_in(&node, "a").is_superset(&u.only_v1));

    let (code, stdout, err) = ferry_in(
        "a",
        &[
            u.v2.to_str().unwrap(),
            "--replace",
            u.v1.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["replaced"]["old"], v1_id.as_str());
    let unpinned: BTreeSet<String> =
        serde_json::from_value(report["replaced"]["unpinned"].clone()).unwrap();
    assert_eq!(unpinned, u.only_v1);
    assert_eq!(report["replaced"]["shared"], 3);
    assert_eq!(pinned_in(&node, "a"), u.v2_names, "v2 pinned, v1-only not");
    for (name, _, labels) in containerd_images_in(&node, "a") {
        assert!(!labels.contains(&v1_key), "{name}: {labels}");
        assert_eq!(
            u.v2_names.contains(&name),
            labels.contains(&v2_key),
            "{name}"
        );
    }
    for name in &u.only_v1 {
        labels_of("a", name); // unpinned, still there without --remove
    }
    let check = String::from_utf8(
        run(Command::new("ctr").args(["-a", &node.socket, "-n", "a", "images", "check"])).stdout,
    )
    .unwrap();
    for name in &u.v2_names {
        let row = check.lines().find(|l| l.starts_with(&format!("{name} ")));
        assert!(
            row.is_some_and(|r| r.contains("complete")),
            "{name}: {check}"
        );
    }
    let (code, stdout, err) = ferry_in("a", &["--list-pinned", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = listed["pinned"].as_array().unwrap();
    let names: BTreeSet<String> = rows
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, u.v2_names);
    for r in rows {
        assert_eq!(r["bundles"][0]["lock"], v2_id.as_str(), "{r}");
    }

    // --- restore.sh, namespace b, with a container on a v1-only image ---
    let sh = |script: &Path, args: &[&str]| {
        let out = Command::new(script)
            .args(args)
            .env("CONTAINERD_ADDRESS", &node.socket)
            .env("FERRY_NAMESPACE", "b")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    sh(&u.v1.join("restore.sh"), &["--pin"]);
    assert_eq!(
        pinned_in(&node, "b"),
        u.only_v1.union(&u.shared).cloned().collect()
    );
    let zstd = u.reg.image("sample/zstd:1.0");
    run(Command::new("ctr").args([
        "-a",
        &node.socket,
        "-n",
        "b",
        "containers",
        "create",
        &zstd,
        "uses-zstd",
    ]));
    let world = both_names(&u.reg, "sample/world:1.0");
    let v1_lock = u.v1.join("ferry.lock");
    let log = sh(
        &u.v2.join("restore.sh"),
        &["--replace", v1_lock.to_str().unwrap(), "--remove"],
    );
    assert!(
        log.contains(&format!("{} unpinned and removed", world[0])),
        "{log}"
    );
    assert!(
        log.contains(&format!("{zstd} unpinned, kept: a container uses it")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "replaced {v1_id}: 5 name(s) unpinned, 3 removed, 3 shared name(s) stay pinned"
        )),
        "{log}"
    );
    let now: BTreeSet<String> = containerd_images_in(&node, "b")
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert!(
        !now.contains(&world[0]) && !now.contains(&world[1]),
        "{now:?}"
    );
    assert!(now.contains(&zstd));
    assert_eq!(pinned_in(&node, "b"), u.v2_names);
    for (name, _, labels) in containerd_images_in(&node, "b") {
        assert!(!labels.contains(&v1_key), "{name}: {labels}");
    }
    let content = run(Command::new("ctr").args(["-a", &node.socket, "-n", "b", "content", "ls"]));
    let world_digest = world[1].rsplit_once('@').unwrap().1;
    assert!(
        !String::from_utf8_lossy(&content.stdout).contains(world_digest),
        "world's manifest is gone"
    );
}

/// CRI-O: restore.sh pins v1 into the drop-in with v1's record; ferry restore v2 --replace v1
/// --remove leaves v2's names with v2's record and deletes world from containers-storage;
/// restore.sh back to v1 with --replace v2/ferry.lock does the reverse; --list-pinned reads it.
#[test]
fn cri_o_drop_in_records_each_bundle_and_replace_follows_it() {
    require("skopeo", "skopeo");
    let u = upgrade();
    let (v1_id, _) = record_of(&u.v1);
    let (v2_id, _) = record_of(&u.v2);
    let dir = tempfile::tempdir().unwrap();
    let storage = format!(
        "[vfs@{}+{}]",
        dir.path().join("cs").display(),
        dir.path().join("csrun").display()
    );
    let conf = dir.path().join("crio.conf.d");
    let drop_in = || std::fs::read_to_string(conf.join("50-ferry-pinned.conf")).unwrap();
    let pins = |text: &str| -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix('"'))
            .map(|l| {
                let (name, rest) = l.split_once("\",").unwrap();
                (
                    name.to_owned(),
                    rest.trim().trim_start_matches("# ").to_owned(),
                )
            })
            .collect()
    };
    let sh = |script: &Path, args: &[&str]| {
        let out = Command::new(script)
            .args(["--runtime", "cri-o"])
            .args(args)
            .env("FERRY_CONTAINERS_STORAGE", &storage)
            .env("FERRY_CRIO_CONF_DIR", &conf)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let in_storage = |name: &str| {
        Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                &format!("containers-storage:{storage}{name}"),
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    sh(&u.v1.join("restore.sh"), &["--pin"]);
    let v1_pins = pins(&drop_in());
    assert_eq!(v1_pins.len(), 8, "{}", drop_in());
    assert!(
        v1_pins.iter().all(|(_, ids)| *ids == v1_id),
        "{}",
        drop_in()
    );

    let (code, _, err) = ferry_out(&[
        "restore",
        u.v2.to_str().unwrap(),
        "--runtime",
        "cri-o",
        "--storage",
        &storage,
        "--crio-conf-dir",
        conf.to_str().unwrap(),
        "--replace",
        u.v1.to_str().unwrap(),
        "--remove",
    ]);
    assert_eq!(code, 0, "{err}");
    let v2_pins = pins(&drop_in());
    let names: BTreeSet<String> = v2_pins.iter().map(|p| p.0.clone()).collect();
    assert_eq!(names, u.v2_names, "{}", drop_in());
    assert!(
        v2_pins.iter().all(|(_, ids)| *ids == v2_id),
        "{}",
        drop_in()
    );
    let world = u.reg.image("sample/world:1.0");
    assert!(!in_storage(&world), "--remove deleted world");
    assert!(in_storage(&u.reg.image("sample/hello:1.0")));
    assert!(
        err.contains(&format!("unpinned and removed {world}")),
        "{err}"
    );

    let (code, stdout, err) = ferry_out(&[
        "restore",
        "--list-pinned",
        "--json",
        "--runtime",
        "cri-o",
        "--crio-conf-dir",
        conf.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed["pinned"].as_array().unwrap().len(), 6, "{listed}");
    assert_eq!(listed["pinned"][0]["bundles"][0]["lock"], v2_id.as_str());

    // Back to v1 with restore.sh: multi leaves the list (and storage, with --remove).
    let v2_lock = u.v2.join("ferry.lock");
    let log = sh(
        &u.v1.join("restore.sh"),
        &["--replace", v2_lock.to_str().unwrap(), "--remove"],
    );
    let back = pins(&drop_in());
    assert_eq!(back, v1_pins, "{log}");
    let multi = u.reg.image("sample/multi:1.0");
    assert!(
        log.contains(&format!("{multi} unpinned (only {v2_id} had it)")),
        "{log}"
    );
    assert!(log.contains(&format!("{multi} removed")), "{log}");
    assert!(!in_storage(&multi));
}
