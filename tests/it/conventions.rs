//! What shells, packagers and scripts expect of a command-line tool: completions, a man page,
//! a version command.

use crate::common;

use common::*;

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    // Each shell's own form of a subcommand entry (a word in a description would not do).
    type Entry = fn(&str) -> String;
    let shells: [(&str, &str, Entry); 3] = [
        ("bash", "_ferry()", |sub| format!("ferry,{sub})")),
        ("zsh", "#compdef ferry", |sub| format!("'{sub}:")),
        ("fish", "complete -c ferry", |sub| format!("-a \"{sub}\"")),
    ];
    for (shell, marker, entry) in shells {
        let (code, stdout, stderr) = ferry_out(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(stdout.contains(marker), "{shell}: {stdout}");
        for sub in ["bundle", "restore", "snapshot", "verify"] {
            assert!(
                stdout.contains(&entry(sub)),
                "{shell} completion lacks {sub}"
            );
        }
    }
    // bash itself completes a subcommand and its options with the script.
    let (_, script, _) = ferry_out(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferry.bash");
    std::fs::write(&file, script).unwrap();
    let complete = |words: &str, current: usize| {
        let out = run(std::process::Command::new("bash").arg("-c").arg(format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={current}; \
             _ferry ferry \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; \
             echo \"${{COMPREPLY[@]}}\"",
            file.display()
        )));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(complete("ferry sn", 1), "snapshot");
    assert_eq!(complete("ferry snapshot --p", 2), "--pvc");
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
    // The sections a man page has that clap knows nothing of: each command's examples, what
    // its exit codes mean, the environment it reads (restore.sh's too, on restore's page).
    for section in [".SH EXAMPLES", ".SH \"EXIT STATUS\"", ".SH ENVIRONMENT"] {
        assert!(bundle.contains(section), "{section}: {bundle}");
    }
    assert!(bundle.contains(r"ferry bundle \-f images.txt"), "{bundle}");
    assert!(bundle.contains("REGISTRY_AUTH_FILE") && !bundle.contains("FERRY_CONTAINERS_STORAGE"));
    let restore = std::fs::read_to_string(out.join("ferry-restore.1")).unwrap();
    assert!(restore.contains("FERRY_CONTAINERS_STORAGE") && restore.contains("FERRY_PIN"));
    assert!(restore.contains("130"), "{restore}");
}
