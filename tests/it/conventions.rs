//! What shells, packagers and scripts expect of a command-line tool: completions, a man page,
//! a version command.

use crate::common;

use common::*;

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    for (shell, marker) in [
        ("bash", "_ferry()"),
        ("zsh", "#compdef ferry"),
        ("fish", "complete -c ferry"),
    ] {
        let (code, stdout, stderr) = ferry_out(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(stdout.contains(marker), "{shell}: {stdout}");
        for sub in ["bundle", "restore", "snapshot", "verify"] {
            assert!(stdout.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let (code, _, stderr) = ferry_out(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn version_plain_and_json() {
    let (code, stdout, _) = ferry_out(&["version"]);
    assert_eq!(code, 0);
    assert_eq!(stdout, format!("ferry {}\n", env!("CARGO_PKG_VERSION")));
    let (code, stdout, _) = ferry_out(&["version", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["ferry"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn man_pages_for_the_command_and_each_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man");
    let (code, _, stderr) = ferry_out(&["man", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let top = std::fs::read_to_string(out.join("ferry.1")).unwrap();
    assert!(top.starts_with(".ie") || top.contains(".TH ferry"), "{top}");
    let bundle = std::fs::read_to_string(out.join("ferry-bundle.1")).unwrap();
    assert!(
        bundle.contains("platform"),
        "the bundle page documents its options"
    );
}
