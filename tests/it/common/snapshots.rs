//! insta settings shared by the snapshot tests (cli_output, error_output): filters for what
//! differs run to run.

use std::path::Path;

use super::Registry;

/// Filters for what changes run to run; `paths` are replaced by their label.
pub fn settings(reg: Option<&Registry>, paths: &[(&Path, &str)]) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    for (path, label) in paths {
        s.add_filter(&regex_escape(&path.display().to_string()), *label);
    }
    if let Some(reg) = reg {
        // Ports are 5 digits (the ephemeral range): a 5-letter stand-in keeps tables aligned.
        s.add_filter(&regex_escape(&reg.addr), "127.0.0.1:PORTS");
    }
    s.add_filter(r#""seconds": [0-9.]+"#, r#""seconds": "[SECONDS]""#);
    // A base lock's digest covers its references, so the registry's port.
    s.add_filter(
        r#""(deltaOf|baseLock)": "sha256:[0-9a-f]{64}""#,
        r#""$1": "[BASE-LOCK-DIGEST]""#,
    );
    s.add_filter(r#""ferry": "[^"]+""#, r#""ferry": "[VERSION]""#);
    s.add_filter(r#""arch": "[^"]+""#, r#""arch": "[ARCH]""#);
    s
}

pub fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}
