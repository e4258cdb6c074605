//! Ctrl-C while bars are drawn (#27): the bars leave the terminal before ferry says it is
//! stopping, so no half-drawn bar stays above or around the messages. Driven on a real
//! pseudo-terminal (python3's pty), SIGINT sent once a bar is on the screen: a bundle (its
//! layer held by a fake registry) and a restore (into a stalled ctr).

use crate::common;

use std::path::{Path, PathBuf};

use crate::copy_progress::{bar_lines, on_pty, on_pty_env, screen};
use common::fake::Fake;
use common::{path_with, sample_bundle};

#[test]
fn ctrl_c_leaves_no_bar_on_the_screen() {
    let registry = Fake::start();
    // The layer never comes while the test runs: the bars stay up until the Ctrl-C.
    let _held = registry.serve_held_image("team/held", "1", 43);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b");
    let reference = format!("{}/team/held:1", registry.addr);
    // Interrupted once the overall bar counts the images (with its ETA: one template).
    let (code, raw) = on_pty(
        &["bundle", "-o", out.to_str().unwrap(), &reference],
        Some("0 of 1 images, 1 blobs"),
    );
    let shown = screen(&raw);
    assert!(raw.contains(" ETA "), "{raw:?}");
    assert_eq!(code, 130, "{shown:#?}");
    assert!(bar_lines(&shown).is_empty(), "{shown:#?}\n{raw:?}");
    // The messages, each on a line of its own.
    assert!(
        shown.iter().any(|l| l.starts_with("warning: stopping:")),
        "{shown:#?}"
    );
    assert!(
        shown.iter().any(|l| l.starts_with("warning: interrupted:")),
        "{shown:#?}"
    );
}

/// A `ctr` whose import takes 64 KiB of the stream, then waits until the test ends (the file
/// `gate` appears): a stalled import, which a real containerd does not do on demand. It lists
/// no image, so restore imports everything.
fn stalled_ctr(dir: &Path, gate: &Path) {
    let script = format!(
        "#!/bin/sh\ncase \" $* \" in\n  *\" import \"*) head -c 65536 >/dev/null\n    \
         while [ ! -e '{}' ]; do sleep 0.05; done\n    cat >/dev/null ;;\nesac\nexit 0\n",
        gate.display()
    );
    let ctr = dir.join("ctr");
    std::fs::write(&ctr, script).unwrap();
    std::fs::set_permissions(&ctr, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// Opens the gate of [`stalled_ctr`] however the test ends: no ctr is left waiting.
struct Gate(PathBuf);

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

#[test]
fn ctrl_c_during_a_restore_takes_the_bars_away_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = sample_bundle(dir.path(), "b");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let gate = Gate(dir.path().join("gate"));
    stalled_ctr(&bin, &gate.0);
    let socket = dir.path().join("containerd.sock");
    let (code, raw) = on_pty_env(
        &[
            "restore",
            bundle.to_str().unwrap(),
            "--runtime",
            "containerd",
            "--address",
            socket.to_str().unwrap(),
            "--platform",
            "linux/amd64",
        ],
        Some(" images"),
        &[("PATH", &path_with(&bin))],
    );
    drop(gate);
    let shown = screen(&raw);
    assert_eq!(code, 130, "{shown:#?}\n{raw:?}");
    assert!(raw.contains(" ETA "), "{raw:?}");
    assert!(bar_lines(&shown).is_empty(), "{shown:#?}\n{raw:?}");
    assert!(
        shown
            .iter()
            .any(|l| l.starts_with("warning: interrupted: run the same command again")),
        "{shown:#?}"
    );
}
