//! Which bundle pinned what on a node, and upgrades (`ferry restore NEW --replace OLD`): once
//! NEW is in, the names OLD had and NEW has not are unpinned, and with `--remove` deleted when
//! no container uses them; names both have, or that another bundle pinned too, stay pinned.
//!
//! A bundle is known by its ferry.lock's sha256. containerd: each name it pins carries the
//! label `io.ferry.pinned-by.sha256-<hex>=<time>` beside `io.cri-containerd.pinned=pinned`;
//! CRI-O: the digest follows the name in the pinned_images drop-in ([`super::crio_pins`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::containerd::{ctr, output, present_images, run};
use super::crio_pins::PinList;
use super::present::{PIN_KEY, PresentImage};
use super::{RestoreError, RestoreOptions, Runtime, repository};
use crate::digest::Digest;

/// The start of the containerd label key that records a bundle's pin.
pub const RECORD_PREFIX: &str = "io.ferry.pinned-by.sha256-";

/// The label key recording that the bundle `id` pinned a name.
pub fn record_key(id: &Digest) -> String {
    format!("{RECORD_PREFIX}{}", id.hex())
}

/// That label, set to the time of the pin (RFC 3339, UTC).
pub fn record_label(id: &Digest) -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    format!("{}={now}", record_key(id))
}

/// A bundle's identity: the sha256 of its ferry.lock (of no bytes when it has none).
pub fn bundle_id(bundle: &dyn crate::store::BundleSource) -> Result<Digest, RestoreError> {
    Ok(bundle.lock_digest()?)
}

/// The bundle being replaced: its identity and images.
#[derive(Debug, Clone)]
pub struct OldBundle {
    /// What the user named (a bundle folder or a lock file).
    pub path: PathBuf,
    /// Its ferry.lock's sha256.
    pub id: Digest,
    /// Reference -> manifest (or index) digest.
    pub images: BTreeMap<String, Digest>,
}

impl OldBundle {
    /// Reads a bundle folder or archive (its index.json and lock) or a ferry.lock.
    pub fn load(path: &Path) -> Result<OldBundle, RestoreError> {
        let refuse = |reason: String, hint: Option<String>| RestoreError::OldBundle {
            path: path.display().to_string(),
            reason,
            hint,
        };
        let side = crate::delta::load_side(path).map_err(|e| {
            use crate::error::Diagnostic;
            refuse(e.to_string(), e.hint())
        })?;
        Ok(OldBundle {
            path: path.to_path_buf(),
            id: side.lock_digest,
            images: side.refs,
        })
    }
}

/// Both names of each image (its reference and `repository@digest`).
pub fn names<'a>(images: impl IntoIterator<Item = (&'a str, &'a str)>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (reference, digest) in images {
        out.insert(reference.to_owned());
        out.insert(format!("{}@{digest}", repository(reference)));
    }
    out
}

/// A name that OLD had and that was not unpinned or not removed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The name.
    pub name: String,
    /// Why it stays.
    pub why: String,
}

/// What `--replace` did.
#[derive(Debug, Clone, Default)]
pub struct Replaced {
    /// The replaced bundle's identity.
    pub old: Option<Digest>,
    /// Names unpinned (OLD alone had them).
    pub unpinned: Vec<String>,
    /// Names deleted from the runtime (`--remove`).
    pub removed: Vec<String>,
    /// Names of OLD kept pinned, or unpinned but not removed, with why.
    pub kept: Vec<Kept>,
    /// Names both bundles have: they stay pinned.
    pub shared: usize,
    /// Names the runtime refused to unpin or remove, with its error.
    pub failed: Vec<Kept>,
}

/// Unpins what `old` alone had, once `new` (reference -> digest: every image of the new
/// bundle) is in; with `remove`, deletes it where no container uses it.
pub fn replace(
    options: &RestoreOptions,
    old: &OldBundle,
    new: &BTreeMap<String, String>,
    remove: bool,
) -> Result<Replaced, RestoreError> {
    let old_digests: Vec<(&str, String)> = old
        .images
        .iter()
        .map(|(r, d)| (r.as_str(), d.to_string()))
        .collect();
    let old_names = names(old_digests.iter().map(|(r, d)| (*r, d.as_str())));
    let new_names = names(new.iter().map(|(r, d)| (r.as_str(), d.as_str())));
    let gone: BTreeSet<String> = old_names.difference(&new_names).cloned().collect();
    let mut out = Replaced {
        old: Some(old.id.clone()),
        shared: old_names.intersection(&new_names).count(),
        ..Replaced::default()
    };
    match options.runtime {
        Runtime::Containerd => containerd_replace(options, &old.id, &gone, remove, &mut out),
        Runtime::CriO => {
            let mut list = PinList::read(&options.crio_conf_dir);
            let (dropped, kept) = list.forget(&old.id, &gone);
            list.write(&options.crio_conf_dir)?;
            out.kept.extend(kept.into_iter().map(|(name, ids)| Kept {
                name,
                why: format!("pinned for {} too", join(&ids)),
            }));
            if remove {
                let new_digests: BTreeSet<&str> = new.values().map(String::as_str).collect();
                crio_remove(options, old, &dropped, &new_digests, &mut out);
            }
            out.unpinned = dropped;
        }
    }
    Ok(out)
}

fn join(ids: &[Digest]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The bundles a containerd name's labels record as pinning it.
fn recorded(image: &PresentImage) -> Vec<Digest> {
    image
        .labels
        .keys()
        .filter_map(|k| k.strip_prefix(RECORD_PREFIX))
        .filter_map(|hex| format!("sha256:{hex}").parse().ok())
        .collect()
}

/// The digests containerd's containers use, through whatever name.
fn used_digests(options: &RestoreOptions, now: &HashMap<String, PresentImage>) -> BTreeSet<String> {
    let mut ls = ctr(options);
    ls.args(["containers", "ls"]);
    output(ls)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|name| now.get(name).map(|p| p.digest.clone()))
        .collect()
}

fn containerd_replace(
    options: &RestoreOptions,
    old: &Digest,
    gone: &BTreeSet<String>,
    remove: bool,
    out: &mut Replaced,
) {
    let now = present_images(options);
    let used = used_digests(options, &now);
    let key = record_key(old);
    let label = |name: &str, keys: &[&str]| {
        let mut c = ctr(options);
        c.args(["images", "label", name]);
        c.args(keys.iter().map(|k| format!("{k}=")));
        run(c)
    };
    let fail = |out: &mut Replaced, name: &str, e: String| {
        out.failed.push(Kept {
            name: name.to_owned(),
            why: e,
        })
    };
    for name in gone {
        let Some(image) = now.get(name) else { continue };
        let others: Vec<Digest> = recorded(image).into_iter().filter(|d| d != old).collect();
        if !others.is_empty() {
            match label(name, &[&key]) {
                Ok(()) => out.kept.push(Kept {
                    name: name.clone(),
                    why: format!("pinned for {} too", join(&others)),
                }),
                Err(e) => fail(out, name, e),
            }
            continue;
        }
        if let Err(e) = label(name, &[PIN_KEY, &key]) {
            fail(out, name, e);
            continue;
        }
        out.unpinned.push(name.clone());
        if !remove {
            continue;
        }
        if used.contains(&image.digest) {
            out.kept.push(Kept {
                name: name.clone(),
                why: "a container uses it".into(),
            });
            continue;
        }
        let mut rm = ctr(options);
        rm.args(["images", "rm", "--sync", name]);
        match run(rm) {
            Ok(()) => out.removed.push(name.clone()),
            Err(e) => fail(out, name, e),
        }
    }
    // OLD's record leaves the names both bundles have (NEW recorded its own when it pinned).
    for (name, image) in &now {
        if image.labels.contains_key(&key)
            && !gone.contains(name)
            && let Err(e) = label(name, &[&key])
        {
            fail(out, name, e);
        }
    }
}

/// Deletes from containers-storage each image whose reference left the pin list, unless NEW
/// has the same image (containers-storage deletes an image with all its names) or a
/// container uses it (containers-storage refuses; its word is reported).
fn crio_remove(
    options: &RestoreOptions,
    old: &OldBundle,
    dropped: &[String],
    new_digests: &BTreeSet<&str>,
    out: &mut Replaced,
) {
    for (reference, digest) in &old.images {
        if !dropped.contains(reference) {
            continue;
        }
        if new_digests.contains(digest.to_string().as_str()) {
            out.kept.push(Kept {
                name: reference.clone(),
                why: "the new bundle has the same image".into(),
            });
            continue;
        }
        let mut delete = Command::new("skopeo");
        delete
            .arg("delete")
            .arg(format!("containers-storage:{}{reference}", options.storage));
        match run(delete) {
            Ok(()) => out.removed.push(reference.clone()),
            Err(e) => out.kept.push(Kept {
                name: reference.clone(),
                why: format!("skopeo delete: {}", e.lines().last().unwrap_or_default()),
            }),
        }
    }
}

/// A name ferry's records (or the pin label alone) keep from kubelet's image GC.
#[derive(Debug, Clone)]
pub struct PinnedName {
    /// The name.
    pub name: String,
    /// What it points at (containerd), when known.
    pub digest: Option<String>,
    /// The bundles recorded as pinning it, with when (containerd), empty when unrecorded.
    pub bundles: Vec<(Digest, Option<String>)>,
}

/// Every pinned name of the runtime, with the bundles that pinned it.
pub fn list(options: &RestoreOptions) -> Result<Vec<PinnedName>, RestoreError> {
    match options.runtime {
        Runtime::CriO => Ok(PinList::read(&options.crio_conf_dir)
            .0
            .into_iter()
            .map(|(name, ids)| PinnedName {
                name,
                digest: None,
                bundles: ids.into_iter().map(|d| (d, None)).collect(),
            })
            .collect()),
        Runtime::Containerd => {
            let mut ls = ctr(options);
            ls.args(["images", "ls"]);
            let listed = output(ls).map_err(|e| {
                RestoreError::runtime_hint(
                    format!("ctr images ls: {e}"),
                    "is containerd running? (--address or CONTAINERD_ADDRESS)",
                )
            })?;
            let mut out: Vec<PinnedName> = super::present::parse(&listed, "")
                .into_iter()
                .filter(|(_, p)| p.pinned())
                .map(|(name, p)| PinnedName {
                    bundles: recorded(&p)
                        .into_iter()
                        .map(|d| {
                            let at = p.labels.get(&record_key(&d)).cloned();
                            (d, at)
                        })
                        .collect(),
                    digest: Some(p.digest),
                    name,
                })
                .collect();
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_reference_and_the_digest_name() {
        let d = format!("sha256:{}", "a".repeat(64));
        let by_digest = format!("quay.io/o/b@{d}");
        let n = names([("docker.io/library/a:1", d.as_str()), (&by_digest, &d)]);
        assert_eq!(
            n.into_iter().collect::<Vec<_>>(),
            [
                "docker.io/library/a:1".to_owned(),
                format!("docker.io/library/a@{d}"),
                by_digest
            ]
        );
    }
}
