//! ferry on a terminal (a pseudo-terminal made by util-linux's `script`): progress bars there
//! only, colours unless `NO_COLOR`, and no archive ever written to one.

use crate::common;

use std::process::Command;

use common::*;

/// Runs ferry with `args` on a pseudo-terminal (stdout and stderr both), with ferry's test
/// environment plus `env` (a `None` value removes the variable); returns the exit code and
/// everything the terminal showed.
fn on_terminal(args: &[&str], env: &[(&str, Option<&str>)]) -> (i32, String) {
    require("script", "util-linux");
    let ferry = ferry();
    let mut cmd = Command::new("script");
    for (k, v) in ferry.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    // Arguments here are temporary paths and registry names: no shell quoting needed beyond
    // single quotes.
    let line: Vec<String> = std::iter::once(ferry.get_program().to_string_lossy().into_owned())
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect();
    let out = cmd
        .args(["-qefc", &line.join(" "), "/dev/null"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// An SGR colour sequence (`ESC [ 3x m` and the like).
fn has_colour(text: &str) -> bool {
    regex::Regex::new(r"\x1b\[[0-9;]*3[0-9]m")
        .unwrap()
        .is_match(text)
}

#[test]
fn bars_on_a_terminal_only_and_no_colour_with_no_color() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let hello = reg.image("sample/hello:1.0");
    let out = |name: &str| dir.path().join(name).display().to_string();

    // A terminal: bars, redrawn in place (erase-line sequences); NO_COLOR (set by the test
    // harness) keeps them colourless.
    let (code, shown) = on_terminal(&["bundle", "-o", &out("a"), &hello], &[]);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("\x1b[2K"), "no bar was drawn: {shown:?}");
    assert!(!has_colour(&shown), "colours despite NO_COLOR: {shown:?}");
    assert!(shown.contains("bundled 1 of 1 images"), "{shown:?}");

    // Without NO_COLOR, colours.
    let (code, shown) = on_terminal(&["bundle", "-o", &out("b"), &hello], &[("NO_COLOR", None)]);
    assert_eq!(code, 0, "{shown}");
    assert!(has_colour(&shown), "no colour on a terminal: {shown:?}");

    // Not a terminal (pipes), even without NO_COLOR: line logs, no escape sequence at all.
    let (code, _, stderr) = ferry_env(&["bundle", "-o", &out("c"), &hello], &[("NO_COLOR", "")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    assert!(stderr.contains(&format!("done {hello}")), "{stderr}");
}

#[test]
fn an_archive_is_never_written_to_a_terminal() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle_tags(&reg, dir.path(), &["sample/hello:1.0"], &[]);
    for format in ["--oci-archive", "--docker-archive"] {
        let (code, shown) = on_terminal(&["export", b.to_str().unwrap(), format, "-"], &[]);
        assert_eq!(code, 2, "{format}: {shown:?}");
        assert!(
            shown.contains("refusing to write an archive to a terminal"),
            "{format}: {shown:?}"
        );
        assert!(
            shown.len() < 1000,
            "{format}: archive bytes reached the terminal"
        );
    }
}
