//! The files derived from index.json: ferry.lock and restore.sh. index.json is the bundle's
//! truth (it is written first, so a crash never loses the name of an image whose blobs are
//! stored); the others are made to agree with it by every command that writes a bundle
//! (`bundle`, `rm`, `gc`; `apply` writes all three from its delta), and `ferry verify` reports
//! where they do not. (A `rm` killed between the renames of index.json and restore.sh left a
//! restore.sh naming the removed images; `gc` then removed their blobs, `verify` passed, and
//! nodes imported nothing.)

use std::collections::BTreeSet;
use std::str::FromStr;

use oci_spec::image::{Descriptor, MediaType};

use crate::digest::Digest;
use crate::store::lockfile::{LOCK_FILE_NAME, LockFile, LockedImage, LockedPlatform};
use crate::store::publish::publish_derived;
use crate::store::script::{LIST_END, SCRIPT_NAME, render};
use crate::store::{
    BundleIndex, BundleSource, IndexEntry, Layout, MAX_INDEX_BYTES, StoreError, inspect_entry,
};

/// The most of restore.sh ferry reads: its template and one line per image of the largest
/// index.json ferry reads.
const MAX_SCRIPT_BYTES: u64 = MAX_INDEX_BYTES + (1 << 20);

/// What [`reconcile`] changed.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Lock entries dropped: index.json does not name them (or names other content).
    pub dropped: Vec<String>,
    /// Lock entries made from the bundle's content: index.json names them, the lock did not.
    pub added: Vec<String>,
    /// Files rewritten (ferry.lock, restore.sh).
    pub written: usize,
}

/// Makes ferry.lock and restore.sh agree with index.json, rewriting only what differs (never
/// index.json itself), and returns index.json and the lock as they now are. `layout` must be
/// open for writing.
pub fn reconcile(layout: &Layout) -> Result<(BundleIndex, LockFile, Reconciled), StoreError> {
    let index = layout.read_index()?;
    let (lock, mut done) = agreeing_lock(layout, &index, layout.read_lock()?);
    done.written = publish_derived(layout, &index, &lock)?;
    if done.written > 0 {
        tracing::debug!(
            dropped = ?done.dropped,
            added = ?done.added,
            "rewrote {} file(s) derived from index.json",
            done.written
        );
    }
    Ok((index, lock, done))
}

/// Whether the layout has a ferry.lock or a restore.sh (an OCI layout another tool made has
/// neither: there is nothing to make agree, and ferry adds none unless it bundles into it).
pub fn has_derived_files(layout: &Layout) -> bool {
    [LOCK_FILE_NAME, SCRIPT_NAME]
        .iter()
        .any(|name| layout.root().join(name).symlink_metadata().is_ok())
}

/// `lock` made to agree with `index`: entries index.json does not name (or names with another
/// digest) dropped, entries it names and the lock lacks made from what the bundle holds.
pub fn agreeing_lock(
    layout: &Layout,
    index: &BundleIndex,
    mut lock: LockFile,
) -> (LockFile, Reconciled) {
    let mut done = Reconciled::default();
    lock.images.retain(|l| {
        let agrees = index
            .get(&l.reference)
            .is_some_and(|d| d.digest().to_string() == l.digest.to_string());
        if !agrees {
            done.dropped.push(l.reference.clone());
        }
        agrees
    });
    for entry in index.entries() {
        let Some(name) = &entry.name else { continue };
        if lock.get(name).is_none()
            && let Some(image) = locked_from_bundle(layout, &entry)
        {
            done.added.push(name.clone());
            lock.upsert(image);
        }
    }
    (lock, done)
}

/// A lock entry for an index.json entry, from the manifests and blobs the bundle holds (its
/// runnable platforms; attestation manifests ride along in `blobs`).
fn locked_from_bundle(layout: &Layout, entry: &IndexEntry) -> Option<LockedImage> {
    let d = &entry.descriptor;
    let contents = inspect_entry(layout, entry);
    let platforms = contents
        .manifests
        .iter()
        .map(|m| LockedPlatform {
            platform: m.platform.clone(),
            digest: m.digest.clone(),
            size: contents.blobs.get(&m.digest).copied().unwrap_or(0),
        })
        .collect();
    Some(LockedImage {
        reference: entry.name.clone()?,
        digest: crate::manifest::descriptor_digest(d).ok()?,
        media_type: d.media_type().to_string(),
        size: d.size(),
        platforms,
        total_size: contents.total_size(),
        blobs: contents.blobs,
        source: None,
    })
}

/// Images that ferry.lock or restore.sh name and index.json does not (what an interrupted
/// `rm` leaves), as index entries whose content can still be walked.
pub fn stale_entries(
    layout: &Layout,
    index: &BundleIndex,
    lock: &LockFile,
) -> Result<Vec<IndexEntry>, StoreError> {
    let mut out: Vec<IndexEntry> = Vec::new();
    let mut add = |name: &str, digest: &Digest, media_type: &str, size: u64| {
        if index.get(name).is_some() || out.iter().any(|e| e.name.as_deref() == Some(name)) {
            return;
        }
        let Ok(oci_digest) = oci_spec::image::Digest::from_str(&digest.to_string()) else {
            return;
        };
        out.push(IndexEntry {
            name: Some(name.to_owned()),
            descriptor: Descriptor::new(MediaType::from(media_type), size, oci_digest),
        });
    };
    for l in &lock.images {
        add(&l.reference, &l.digest, &l.media_type, l.size);
    }
    if let Some(script) = read_script(layout)? {
        for line in list_lines(&script).unwrap_or_default() {
            if let Some((name, digest, media_type, size)) = parse_line(&line) {
                add(name, &digest, media_type, size);
            }
        }
    }
    Ok(out)
}

/// Where ferry.lock and restore.sh disagree with index.json, one line each (`ferry verify`
/// reports them as problems). A layout with neither file (made by another tool) has nothing
/// to agree with; an index.json or lock that does not read is reported by `verify` itself.
pub fn disagreements(source: &dyn BundleSource) -> Result<Vec<String>, StoreError> {
    let script = read_script(source)?;
    let (Ok(index), Ok(lock)) = (source.index(), source.lock()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    // No lock: `verify` says so once; there is nothing to compare it with.
    if let Some(lock) = &lock {
        out.extend(lock_disagreements(&index, lock));
    }
    if lock.is_some() || script.is_some() {
        out.extend(script_disagreements(script, &index));
    }
    Ok(out)
}

const REWRITE: &str =
    "`ferry gc` (or any command that writes the bundle) rewrites it from index.json";

fn lock_disagreements(index: &BundleIndex, lock: &LockFile) -> Vec<String> {
    let mut out = Vec::new();
    for entry in index.entries() {
        let Some(name) = &entry.name else { continue };
        match lock.get(name) {
            None => out.push(format!("ferry.lock has no entry for {name}; {REWRITE}")),
            Some(l) if l.digest.to_string() != entry.descriptor.digest().to_string() => {
                out.push(format!(
                    "ferry.lock says {name} is {}, index.json says {}; {REWRITE}",
                    l.digest,
                    entry.descriptor.digest()
                ));
            }
            Some(_) => {}
        }
    }
    for l in lock
        .images
        .iter()
        .filter(|l| index.get(&l.reference).is_none())
    {
        out.push(format!(
            "ferry.lock names {}, which index.json does not; {REWRITE}",
            l.reference
        ));
    }
    out
}

fn script_disagreements(script: Option<String>, index: &BundleIndex) -> Vec<String> {
    let Some(script) = script else {
        return vec![format!(
            "{SCRIPT_NAME} is missing (nodes restore with it); {REWRITE}"
        )];
    };
    let Some(have) = list_lines(&script) else {
        return vec![format!(
            "{SCRIPT_NAME} holds no image list ferry wrote; {REWRITE}"
        )];
    };
    let want = list_lines(&render(index)).expect("the template holds the list");
    let (have, want): (BTreeSet<String>, BTreeSet<String>) =
        (have.into_iter().collect(), want.into_iter().collect());
    let image = |line: &str| line.split(' ').take(2).collect::<Vec<_>>().join(" ");
    let mut out: Vec<String> = have
        .difference(&want)
        .map(|l| {
            format!(
                "{SCRIPT_NAME} names {}, which index.json does not: a node would import what \
                 the bundle does not hold; {REWRITE}",
                crate::untrusted::shown(&image(l))
            )
        })
        .collect();
    out.extend(want.difference(&have).map(|l| {
        format!(
            "{SCRIPT_NAME} lacks {}, which index.json names; {REWRITE}",
            image(l)
        )
    }));
    out
}

/// restore.sh's text, `None` when absent (no link followed, at most [`MAX_SCRIPT_BYTES`]).
fn read_script(source: &dyn BundleSource) -> Result<Option<String>, StoreError> {
    Ok(source
        .root_file(SCRIPT_NAME, MAX_SCRIPT_BYTES)?
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

/// The image lines of a restore.sh: its quoted here-document `<<'FERRY%IMAGES'`.
fn list_lines(script: &str) -> Option<Vec<String>> {
    let start = format!("<<'{LIST_END}'");
    let mut lines = script.lines();
    lines.by_ref().find(|l| l.trim_end().ends_with(&start))?;
    let mut out = Vec::new();
    for line in lines {
        if line == LIST_END {
            return Some(out);
        }
        if !line.is_empty() {
            out.push(line.to_owned());
        }
    }
    None
}

/// `REFERENCE DIGEST MEDIA-TYPE SIZE PLATFORMS`, each field checked; `None` when any fails.
fn parse_line(line: &str) -> Option<(&str, Digest, &str, u64)> {
    let mut f = line.split(' ');
    let (name, digest, media_type, size) = (f.next()?, f.next()?, f.next()?, f.next()?);
    crate::untrusted::check_reference_name(name).ok()?;
    crate::untrusted::check_media_type(media_type).ok()?;
    Some((name, digest.parse().ok()?, media_type, size.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_list_is_read_back_from_the_template() {
        let index = BundleIndex::default();
        assert_eq!(list_lines(&render(&index)), Some(Vec::new()));
        assert_eq!(list_lines("#!/bin/sh\necho hi\n"), None);
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let line =
            format!("docker.io/library/a:1 {d} application/vnd.oci.image.manifest.v1+json 5 -");
        let (name, digest, mt, size) = parse_line(&line).unwrap();
        assert_eq!(
            (name, digest.to_string().as_str(), size),
            ("docker.io/library/a:1", d, 5)
        );
        assert!(mt.ends_with("+json"));
        assert!(parse_line(&line.replace("docker.io/library/a:1", "a:1")).is_none());
    }
}
