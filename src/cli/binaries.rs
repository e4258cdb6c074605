//! `ferry bundle --with-binary`: the node binaries placed into the bundle, and the platforms
//! left without one (a warning line each, and `binaries` in the JSON report).

use std::path::PathBuf;

use ferry::restore::binaries::{Binaries, Search, place};
use ferry::store::Layout;

use super::{Failure, output};

/// Places a static ferry for every Linux platform of the bundle; warns for each one missing.
pub fn with_binary(
    layout: &Layout,
    dir: Option<PathBuf>,
    quiet: bool,
) -> Result<Binaries, Failure> {
    let done = place(layout, &Search::new(dir))?;
    for p in &done.placed {
        if !quiet {
            eprintln!(
                "  node binary: {} for {} ({})",
                p.file,
                p.platform,
                output::bytes(p.bytes)
            );
        }
    }
    for m in &done.missing {
        output::warning(&format!(
            "no ferry binary for {} in the bundle: {}; restore.sh there imports with its plain-sh path",
            m.platform, m.reason
        ));
    }
    if !done.missing.is_empty() {
        output::hint(
            "build the static binaries with `cargo xtask dist` and pass --binaries target/dist",
        );
    }
    Ok(done)
}

/// The `binaries` object of `ferry bundle --json`.
pub fn json(done: &Binaries) -> serde_json::Value {
    serde_json::json!({
        "placed": done.placed.iter().map(|p| serde_json::json!({
            "platform": p.platform,
            "file": p.file,
            "source": p.source.display().to_string(),
            "bytes": p.bytes,
        })).collect::<Vec<_>>(),
        "missing": done.missing.iter().map(|m| serde_json::json!({
            "platform": m.platform,
            "reason": m.reason,
        })).collect::<Vec<_>>(),
    })
}
