//! A reader that leaves before ferry writes its data (`ferry ls --json | head -c 10`): ferry
//! ends quietly with the exit code the command had, never with a panic.

use crate::common;

use std::process::Stdio;

use common::*;

/// Runs ferry with stdout a pipe nobody reads (its read end closed before ferry starts, so
/// every write fails with EPIPE); returns the exit code and stderr.
fn into_a_closed_pipe(args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = ferry()
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn data_into_a_closed_pipe_ends_quietly_with_the_commands_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = sample_bundle(dir.path(), "b");
    let b = bundle.to_str().unwrap();
    for args in [
        vec!["ls", "--json", b],
        vec!["ls", b],
        vec!["verify", "--json", b],
        vec!["version"],
        vec!["version", "--json"],
        vec!["completions", "bash"],
    ] {
        let (code, stderr) = into_a_closed_pipe(&args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert_eq!(code, 0, "{args:?}: {stderr}");
    }

    // A command that failed keeps its exit code (1: a damaged bundle), its JSON unread.
    let first = index_json(&bundle)["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(blob_path(&bundle, &first), b"not the manifest").unwrap();
    let (code, stderr) = into_a_closed_pipe(&["verify", "--json", b]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, 1, "{stderr}");
}
