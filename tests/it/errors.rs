//! Bad input: clear messages naming the image, the registry and what to do; non-zero exits;
//! nothing already in the bundle lost.

use crate::common;

use common::*;
use std::time::Duration;

#[test]
fn a_typo_fails_that_image_only() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let typo = reg.image("sample/helo:1.0");
    let (code, stdout, stderr) = ferry_out(&[
        "bundle",
        "--json",
        "-o",
        b.to_str().unwrap(),
        &typo,
        &reg.image("sample/hello:1.0"),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {typo}: repository sample/helo not found at {}",
            reg.addr
        )),
        "{stderr}"
    );
    assert!(stderr.contains("NAME_UNKNOWN"), "{stderr}");
    assert!(!stderr.contains("retry"), "a 404 is not retried: {stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["totals"]["ok"], 1);
    assert_eq!(report["totals"]["failed"], 1);
    assert!(
        index_entry(&b, &reg.image("sample/hello:1.0")).is_some(),
        "the other image is bundled"
    );
    assert_eq!(ferry_out(&["verify", b.to_str().unwrap()]).0, 0);
}

#[test]
fn an_unreachable_registry_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // A loopback port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let image = format!("127.0.0.1:{port}/app:1");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--retries",
        "1",
        "-o",
        dir.path().join("b").to_str().unwrap(),
        &image,
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{image}: cannot reach 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("hint: is a registry running at 127.0.0.1:{port}?")),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, stderr) = ferry_out(&["bundle", "alpine"]);
    assert_eq!(code, 2, "missing -o: {stderr}");
    let (code, _, stderr) = ferry_out(&["bundle", "-o", "/tmp/x", "--platform", "linux", "alpine"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("os/arch"), "{stderr}");
    let (code, _, _) = ferry_out(&[
        "bundle",
        "-o",
        "/tmp/x",
        "--all-platforms",
        "--platform",
        "linux/amd64",
        "alpine",
    ]);
    assert_eq!(code, 2);
    let (code, _, _) = ferry_out(&["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn bad_references_are_refused_before_anything_is_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        b.to_str().unwrap(),
        "docker.io/Library/Alpine:3",
    ]);
    assert_eq!(code, 2, "bad input is a usage error");
    assert!(
        stderr.contains("argument 1") && stderr.contains("lowercase"),
        "{stderr}"
    );
    assert!(
        !b.exists(),
        "nothing created for a command that could not start"
    );
}

#[test]
fn a_folder_that_is_not_a_bundle_is_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        dir.path().to_str().unwrap(),
        "127.0.0.1:1/app:1",
    ]);
    assert_eq!(
        code, 2,
        "the wrong -o folder is the user's to fix: {stderr}"
    );
    assert!(
        stderr.contains("has other files and no oci-layout"),
        "{stderr}"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
}

#[test]
fn two_writers_on_one_bundle_are_refused() {
    let (reg, image) = big_image_registry(16);
    let proxy = common::proxy::Proxy::start(
        &reg.addr,
        common::proxy::Faults {
            throttle: Some(1 << 20),
            ..Default::default()
        },
    );
    let name = format!("{}/{image}", proxy.addr);
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let mut first = ferry()
        .args(["bundle", "-q", "-o", b.to_str().unwrap(), &name])
        .spawn()
        .unwrap();
    wait_for(30, "the first writer to start", || partial_bytes(&b) > 0);
    let (code, _, stderr) = ferry_out(&["bundle", "-o", b.to_str().unwrap(), &name]);
    let running = first.try_wait().unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(code, 2, "first writer: {running:?}; {stderr}");
    assert!(
        stderr.contains("in use by another ferry process"),
        "{stderr}"
    );
}

#[test]
fn plain_http_only_for_loopback_unless_insecure_registry() {
    let ip = non_loopback_ip();
    let reg = Registry::start_with(&["--addr", &ip]);
    run(
        std::process::Command::new(root().join("scripts/seed-registry.sh"))
            .arg(&reg.addr)
            .arg(sample_layout()),
    );
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let image = reg.image("sample/hello:1.0");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--retries",
        "0",
        "-o",
        b.to_str().unwrap(),
        &image,
    ]);
    assert_eq!(code, 1, "HTTPS is required off loopback: {stderr}");
    assert!(
        stderr.contains(&format!("pass --insecure-registry {}", reg.addr)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("https://{}/v2/", reg.addr)),
        "only https was tried: {stderr}"
    );

    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--insecure-registry",
        &reg.addr,
        "-o",
        b.to_str().unwrap(),
        &image,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(index_entry(&b, &image).is_some());
}

#[test]
fn output_paths_users_really_give() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        file.to_str().unwrap(),
        &reg.image("sample/hello:1.0"),
    ]);
    assert_eq!(code, 2, "-o naming a file is the user's to fix: {stderr}");
    assert!(
        stderr.contains("afile is not an OCI image layout: it exists and is not a folder"),
        "{stderr}"
    );
    // The root of a fresh filesystem (a new PVC) holds lost+found: that is still empty.
    let volume = dir.path().join("pvc");
    std::fs::create_dir_all(volume.join("lost+found")).unwrap();
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        volume.to_str().unwrap(),
        &reg.image("sample/hello:1.0"),
    ]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_full_disk_stops_the_run_and_says_so() {
    // The bundle fits when the run starts (it is refused up front otherwise, see
    // storage.rs); the disk fills up during the download, as when something else writes.
    let (reg, image) = big_image_registry(16);
    let proxy = common::proxy::Proxy::start(
        &reg.addr,
        common::proxy::Faults {
            throttle: Some(1 << 20),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    run(std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
        .arg(&mnt));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let b = mnt.join("b");
    let child = ferry()
        .args(["bundle", "--json", "-o", b.to_str().unwrap()])
        .arg(format!("{}/{image}", proxy.addr))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(30, "a partial download", || partial_bytes(&b) > 0);
    // Fill what is left (dd stops on ENOSPC).
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=1M"])
        .arg(format!("of={}", mnt.join("filler").display()))
        .stderr(std::process::Stdio::null())
        .status();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is full") && stderr.contains("free space"),
        "{stderr}"
    );
    assert!(!stderr.contains("interrupted"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["success"], false);
    assert_eq!(
        ferry_out(&["verify", b.to_str().unwrap()]).0,
        0,
        "still a valid bundle"
    );
}

/// The second Ctrl-C ends the run while the clean stop of the first cannot finish: the clean
/// stop writes a JSON report larger than a pipe holds (measured by a run with one Ctrl-C) to a
/// stdout nobody reads. Ferry resolves against a registry that never answers, so every image is
/// in that report; without the second Ctrl-C's exit the run would wait for ever.
#[test]
fn a_second_ctrl_c_exits_at_once() {
    let silent = Silent::start();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("images.txt");
    let tag = "t".repeat(100);
    let refs: Vec<String> = (0..1000)
        .map(|i| format!("{}/app/image-{i:04}:{tag}", silent.addr))
        .collect();
    std::fs::write(&list, refs.join("\n")).unwrap();
    let interrupted = |name: &str, second: bool| {
        let mut child = Reaped(
            ferry()
                .args(["bundle", "--json", "-f", list.to_str().unwrap(), "-o"])
                .arg(dir.path().join(name))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let asked = silent.connections();
        wait_for(60, "ferry to ask the silent registry", || {
            silent.connections() > asked
        });
        let stderr = std::io::BufReader::new(child.0.stderr.take().unwrap());
        let (lines, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let pid = child.0.id().to_string();
        run(std::process::Command::new("kill").args(["-INT", &pid]));
        let mut stdout = child.0.stdout.take().unwrap();
        let mut report = String::new();
        if second {
            // Once the first was taken: two at once may arrive as one signal.
            let stopping = std::iter::from_fn(|| seen.recv_timeout(Duration::from_secs(60)).ok())
                .find(|l| l.contains("stopping"));
            assert!(stopping.is_some(), "the first Ctrl-C was not taken");
            run(std::process::Command::new("kill").args(["-INT", &pid]));
        } else {
            std::io::Read::read_to_string(&mut stdout, &mut report).unwrap();
        }
        let mut code = None;
        wait_for(60, "ferry to end", || {
            code = child.0.try_wait().unwrap().map(|s| s.code());
            code.is_some()
        });
        std::io::Read::read_to_string(&mut stdout, &mut report).unwrap();
        (code.unwrap(), report)
    };
    let (code, full) = interrupted("once", false);
    assert_eq!(code, Some(130));
    let report: serde_json::Value = serde_json::from_str(&full).unwrap();
    assert_eq!(report["images"].as_array().unwrap().len(), 1000);
    let pipe_capacity = 1 << 16;
    assert!(full.len() > 2 * pipe_capacity, "{} bytes", full.len());

    let (code, cut) = interrupted("twice", true);
    assert_eq!(code, Some(130));
    assert!(cut.len() < full.len(), "the clean stop finished its report");
}

/// The error lines of stderr: `error:`, `caused by:` and `hint:` (progress lines aside).
fn hint_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("hint: ")).collect()
}

#[test]
fn a_missing_repository_and_a_missing_tag_are_told_apart() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let (no_repo, no_tag) = (reg.image("sample/nope:1.0"), reg.image("sample/hello:9.9"));
    let (code, stdout, stderr) = ferry_out(&[
        "bundle",
        "--json",
        "--no-progress",
        "-o",
        b.to_str().unwrap(),
        &no_repo,
        &no_tag,
    ]);
    assert_eq!(code, 1, "{stderr}");
    let addr = &reg.addr;
    assert!(
        stderr.contains(&format!(
            "error: {no_repo}: repository sample/nope not found at {addr}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "error: {no_tag}: tag 9.9 not found in sample/hello at {addr}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "hint: check the tag; list those that exist with `skopeo list-tags docker://{addr}/sample/hello`"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: check the repository name"),
        "{stderr}"
    );
    // The two failures' hints, each once, and each on its own line.
    assert_eq!(hint_lines(&stderr).len(), 2, "{stderr}");
    assert!(!stderr.contains("\\nhint"), "{stderr}");

    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let error_of = |reference: &str| {
        report["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["reference"] == reference)
            .unwrap_or_else(|| panic!("{reference} in {report}"))["error"]
            .clone()
    };
    let e = error_of(&no_repo);
    assert_eq!(e["kind"], "repository_not_found", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("NAME_UNKNOWN"),
        "{e}"
    );
    assert!(
        e["hint"]
            .as_str()
            .unwrap()
            .starts_with("check the repository name"),
        "{e}"
    );
    let e = error_of(&no_tag);
    assert_eq!(e["kind"], "tag_not_found", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("MANIFEST_UNKNOWN"),
        "{e}"
    );
    assert!(
        e["hint"].as_str().unwrap().contains("skopeo list-tags"),
        "{e}"
    );
    assert!(!e["message"].as_str().unwrap().contains("hint"), "{e}");
    assert_eq!(report["error"], serde_json::Value::Null);
}

/// Runs `ferry bundle` with `flags` into a new folder that must not be created; returns stderr.
fn refused_locally(flags: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let mut args = vec!["bundle", "-o", b.to_str().unwrap(), "127.0.0.1:1/app:1"];
    args.extend_from_slice(flags);
    let (code, _, stderr) = ferry_out(&args);
    assert_eq!(code, 2, "{flags:?}: local configuration exits 2: {stderr}");
    assert!(!b.exists(), "{flags:?}: no output folder left behind");
    assert!(
        !stderr.contains("sent a bad response") && !stderr.contains("(-)"),
        "{stderr}"
    );
    stderr
}

#[test]
fn local_configuration_errors_exit_2_name_the_file_and_leave_no_folder() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let stderr = refused_locally(&["--ca-file", missing]);
    assert!(
        stderr.contains(&format!("error: cannot read --ca-file {missing}")),
        "{stderr}"
    );

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let stderr = refused_locally(&["--ca-file", not_pem.to_str().unwrap()]);
    assert!(stderr.contains("no certificate in it"), "{stderr}");

    let authfile = dir.path().join("auth.json");
    let stderr = refused_locally(&["--authfile", authfile.to_str().unwrap()]);
    assert!(stderr.contains(&authfile.display().to_string()), "{stderr}");

    let conf = dir.path().join("registries.conf");
    std::fs::write(&conf, "[[registry]\nprefix = ").unwrap();
    let stderr = refused_locally(&["--registries-conf", conf.to_str().unwrap()]);
    assert!(stderr.contains(&conf.display().to_string()), "{stderr}");

    let gone = dir.path().join("gone.conf");
    let stderr = refused_locally(&["--registries-conf", gone.to_str().unwrap()]);
    assert!(stderr.contains(&gone.display().to_string()), "{stderr}");

    let no_dir = dir.path().join("certs.d");
    let stderr = refused_locally(&["--cert-dir", no_dir.to_str().unwrap()]);
    assert!(stderr.contains(&no_dir.display().to_string()), "{stderr}");

    let lock = dir.path().join("ferry.lock");
    let dir2 = tempfile::tempdir().unwrap();
    let b = dir2.path().join("b");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "-o",
        b.to_str().unwrap(),
        "--lock",
        lock.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&lock.display().to_string()), "{stderr}");
    assert!(!b.exists());

    let base = dir.path().join("no-base");
    let stderr = refused_locally(&["--since", base.to_str().unwrap()]);
    assert!(stderr.contains(&base.display().to_string()), "{stderr}");
}

#[test]
fn the_cause_chain_is_rendered_and_the_hint_is_on_its_own_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let stderr = refused_locally(&["--ca-file", missing.to_str().unwrap()]);
    let lines: Vec<&str> = stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("error: cannot read --ca-file"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(
        lines.get(at + 1).copied(),
        Some("  caused by: No such file or directory (os error 2)"),
        "{stderr}"
    );
    assert_eq!(hint_lines(&stderr).len(), 1, "{stderr}");
    assert!(
        lines.get(at + 2).is_some_and(|l| l.starts_with("hint: ")),
        "the hint follows the chain: {stderr}"
    );
    assert_eq!(stderr.matches("hint:").count(), 1, "{stderr}");
}

#[test]
fn a_run_refused_as_a_whole_carries_the_error_object_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let missing = dir.path().join("missing.pem");
    let (code, stdout, _) = ferry_out(&[
        "bundle",
        "--json",
        "-o",
        b.to_str().unwrap(),
        "--ca-file",
        missing.to_str().unwrap(),
        "127.0.0.1:1/app:1",
    ]);
    assert_eq!(code, 2);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let e = &report["error"];
    assert_eq!(e["kind"], "configuration", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("No such file"),
        "the causes are in the message: {e}"
    );
    assert!(e["hint"].is_string(), "{e}");
    assert_eq!(report["success"], false);
}
