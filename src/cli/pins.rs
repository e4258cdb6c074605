//! `ferry restore --replace OLD` (what was unpinned and removed) and `--list-pinned`.

use std::collections::BTreeMap;

use ferry::restore::pins::{self, OldBundle, Replaced};
use ferry::restore::{RestoreError, RestoreOptions, Restored};

use super::stdout::outln;
use super::{Exit, Failure, output};

/// Unpins what OLD alone had, once every image of the new bundle is in; when one is not,
/// nothing is unpinned (the node keeps both sets pinned) and the result says so.
pub fn replace(
    options: &RestoreOptions,
    old: &OldBundle,
    outcomes: &[Restored],
    remove: bool,
) -> Result<Replaced, RestoreError> {
    if outcomes.iter().any(|o| o.error.is_some()) {
        return Ok(Replaced {
            old: None,
            ..Replaced::default()
        });
    }
    let new: BTreeMap<String, String> = outcomes
        .iter()
        .map(|o| (o.reference.clone(), o.digest.clone()))
        .collect();
    pins::replace(options, old, &new, remove)
}

/// The `replaced` object of `ferry restore --json`: `old` is null when nothing was unpinned
/// because the new bundle is not all in.
pub fn replaced_json(r: &Replaced) -> serde_json::Value {
    let kept = |list: &[pins::Kept]| {
        list.iter()
            .map(|k| serde_json::json!({"name": k.name, "why": k.why}))
            .collect::<Vec<_>>()
    };
    serde_json::json!({
        "old": r.old.as_ref().map(ToString::to_string),
        "unpinned": r.unpinned,
        "removed": r.removed,
        "kept": kept(&r.kept),
        "shared": r.shared,
        "failed": kept(&r.failed),
    })
}

/// One line per name unpinned, removed, kept or failed; then the totals.
pub fn print_replaced(r: &Replaced) {
    let Some(old) = &r.old else {
        output::warning("nothing unpinned: not every image of this bundle was restored");
        return;
    };
    for name in &r.unpinned {
        if r.removed.contains(name) {
            eprintln!("unpinned and removed {name}");
        } else {
            eprintln!("unpinned {name} (only {old} had it)");
        }
    }
    for k in &r.kept {
        eprintln!("kept {}: {}", k.name, k.why);
    }
    for k in &r.failed {
        output::error(&format!("{}: {}", k.name, k.why));
    }
    eprintln!(
        "replaced {old}: {} name(s) unpinned, {} removed, {} shared name(s) stay pinned",
        r.unpinned.len(),
        r.removed.len(),
        r.shared
    );
}

/// `--list-pinned`: `NAME DIGEST BUNDLE[@TIME],...` a line on stdout (`-` for what is not
/// known), or JSON.
pub fn list(options: &RestoreOptions, json: bool) -> Result<Exit, Failure> {
    let pinned = pins::list(options)?;
    if json {
        output::json(&serde_json::json!({
            "version": 1,
            "pinned": pinned.iter().map(|p| serde_json::json!({
                "name": p.name,
                "digest": p.digest,
                "bundles": p.bundles.iter().map(|(lock, at)| serde_json::json!({
                    "lock": lock.to_string(),
                    "pinnedAt": at,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }));
        return Ok(Exit::Ok);
    }
    for p in &pinned {
        let bundles: Vec<String> = p
            .bundles
            .iter()
            .map(|(lock, at)| match at {
                Some(at) => format!("{lock}@{at}"),
                None => lock.to_string(),
            })
            .collect();
        outln!(
            "{} {} {}",
            plain(&p.name),
            p.digest.as_deref().unwrap_or("-"),
            if bundles.is_empty() {
                "-".to_owned()
            } else {
                plain(&bundles.join(","))
            }
        );
    }
    Ok(Exit::Ok)
}

/// What the runtime says, safe on a terminal: control characters become `?`.
fn plain(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
