//! The floors of the house, read from the source: the store (the bundle on disk) and the
//! registry (the distribution API) are two peers that know no command, and the filesystem
//! primitives under them know neither. A module a floor may not see, named by a `crate::`
//! path anywhere in its files (test modules aside), fails here with the file that names it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What each foundation may use: everything else (every command, and the other peer) is
/// above it or beside it.
const FLOORS: &[(&str, &[&str])] = &[
    ("fsutil", &["error"]),
    (
        "store",
        &[
            "digest",
            "docker_hub",
            "error",
            "fsutil",
            "manifest",
            "platform",
            "redact",
            "reference",
            "report",
            "untrusted",
        ],
    ),
    (
        "registry",
        &[
            "credentials",
            "digest",
            "docker_hub",
            "error",
            "fsutil",
            "manifest",
            "redact",
            "reference",
            "report",
            "untrusted",
        ],
    ),
    (
        "credentials",
        &["docker_hub", "error", "fsutil", "redact", "reference"],
    ),
    (
        "reference",
        &["digest", "docker_hub", "error", "redact", "untrusted"],
    ),
];

#[test]
fn store_and_registry_import_no_command_and_not_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (floor, allowed) in FLOORS {
        let files = module_files(&src, floor);
        assert!(!files.is_empty(), "no source found for {floor}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for used in crate_modules(&without_tests(&text)) {
                if used != *floor && !allowed.contains(&used.as_str()) {
                    wrong.push(format!("{} uses crate::{used}", file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that run up a floor:\n{}",
        wrong.join("\n")
    );
}

/// The reader itself finds what it must: every form a `crate::` path takes.
#[test]
fn the_import_reader_sees_grouped_and_inline_paths() {
    let text = "use crate::{digest::Digest, store::{Layout, lockfile}};\n\
                use crate::bundle as b;\n\
                fn f() { crate::push::run(); } // crate::serve in a comment\n\
                #[cfg(test)]\nmod tests {\n    use crate::delta;\n}\n";
    let found = crate_modules(&without_tests(text));
    let want: BTreeSet<String> = ["bundle", "digest", "push", "store"]
        .map(String::from)
        .into();
    assert_eq!(found, want);
}

/// `src/NAME.rs` and every file under `src/NAME/`.
fn module_files(src: &Path, name: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    let single = src.join(format!("{name}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let mut stack = vec![src.join(name)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The text before a `#[cfg(test)] mod tests` block (test code may use anything), with line
/// comments removed.
fn without_tests(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    code.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules named by `crate::NAME` and `crate::{NAME, NAME::...}` paths.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: the first word after `{` or a depth-1 comma.
            let mut depth = 1;
            let mut expect_name = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect_name = true,
                    c if expect_name && depth == 1 && (c.is_alphanumeric() || c == '_') => {
                        expect_name = false;
                        found.insert(word(&group[i..]));
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(word(rest));
        }
    }
    found.retain(|w| !w.is_empty());
    found
}

fn word(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}
