//! oci-archive and docker-archive files of a bundle. Both are deterministic: the same bundle
//! gives the same bytes.

use tokio_util::sync::CancellationToken;

use super::tarball::{TarPlan, write_tar_checked as write_tar};
use super::{ExportError, Target};
use crate::digest::Digest;
use crate::platform::Platform;
use crate::report::{Counting, Event, Reporter};
use crate::store::lockfile::LOCK_FILE_NAME;
use crate::store::select::{Offer, offer};
use crate::store::source::{SCRIPT_FILE, SeekableWriter};
use crate::store::{BundleIndex, BundleSource, MAX_INDEX_BYTES, OCI_LAYOUT, inspect_entry};

/// The index, and every blob its images reach with its declared size; an image with missing
/// or unreadable content is an error.
pub(crate) fn complete_images(
    layout: &dyn BundleSource,
) -> Result<(BundleIndex, Vec<(Digest, u64)>), ExportError> {
    let index = layout.index()?;
    let mut blobs = Vec::new();
    for entry in index.entries() {
        let contents = inspect_entry(layout, &entry);
        if let Some((digest, why)) = contents.problems.first() {
            return Err(ExportError::Incomplete(format!(
                "{}: {digest}: {why}",
                entry.name.unwrap_or_default()
            ))
            .with_hint(
                "`ferry verify` lists what is wrong; the ferry bundle command that made the \
                 bundle fetches what is missing",
            ));
        }
        blobs.extend(contents.blobs);
    }
    Ok((index, blobs))
}

/// Writes an oci-archive (`.tar`, or a seekable `.tar.zst`; an uncompressed tar to stdout):
/// a bundle in one file. oci-layout, index.json, ferry.lock and restore.sh (when the bundle
/// has them, byte for byte), then every blob the index reaches, each re-hashed.
pub fn oci_archive(
    layout: &dyn BundleSource,
    out: &Target,
    cancel: &CancellationToken,
    reporter: &dyn Reporter,
) -> Result<(), ExportError> {
    let (index, blobs) = complete_images(layout)?;
    let mut plan = TarPlan::default();
    for (digest, size) in blobs {
        plan.add_blob(digest, size)?;
    }
    plan.files.push(("index.json".into(), index.to_json()));
    add_root_files(layout, &mut plan, &[LOCK_FILE_NAME, SCRIPT_FILE])?;
    write_oci_tar(layout, &plan, out, cancel, reporter)
}

/// Adds oci-layout, and the named root files the bundle has (verbatim: a delta names its base
/// by its lock's digest), to `plan`.
pub(crate) fn add_root_files(
    layout: &dyn BundleSource,
    plan: &mut TarPlan,
    names: &[&str],
) -> Result<(), ExportError> {
    plan.files
        .push(("oci-layout".into(), OCI_LAYOUT.as_bytes().to_vec()));
    for name in names {
        if let Some(bytes) = layout.root_file(name, MAX_INDEX_BYTES)? {
            plan.files.push(((*name).to_owned(), bytes));
        }
    }
    Ok(())
}

/// How an oci-archive's name says to compress it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// A plain tar (`.tar`, any other name, stdout).
    Tar,
    /// The zstd seekable format (`.zst`, `.tzst`).
    SeekableZst,
}

impl ArchiveFormat {
    /// The format for an output; refuses a name that promises a compression ferry does not
    /// write (`.gz`, `.xz`, `.bz2`...), rather than writing a plain tar under it.
    pub fn of(out: &Target) -> Result<ArchiveFormat, ExportError> {
        let Some(ext) = out
            .path()
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
        else {
            return Ok(ArchiveFormat::Tar);
        };
        match ext.to_ascii_lowercase().as_str() {
            "zst" | "tzst" | "zstd" => Ok(ArchiveFormat::SeekableZst),
            "gz" | "tgz" | "xz" | "txz" | "bz2" | "tbz2" | "lz4" | "lzma" | "z" => {
                Err(ExportError::Usage(format!(
                    "{out}: ferry writes oci-archives as .tar or .tar.zst, not .{ext}"
                ))
                .with_hint(
                    "name it OUT.tar.zst (zstd, readable by `zstd -d` and `tar --zstd`) or \
                     OUT.tar, or pipe `--oci-archive -` into the compressor you need",
                ))
            }
            _ => Ok(ArchiveFormat::Tar),
        }
    }
}

/// Writes a planned layout tar to `out`: in the zstd seekable format when its name ends in
/// `.zst` (every member starts a frame; frames are compressed on every core, the bytes do not
/// depend on how many), plain otherwise. Bundles and deltas share it. The tar's bytes (before
/// compression) are reported as [`Event::CopyStarted`] and [`Event::Copied`].
pub(crate) fn write_oci_tar(
    layout: &dyn BundleSource,
    plan: &TarPlan,
    out: &Target,
    cancel: &CancellationToken,
    reporter: &dyn Reporter,
) -> Result<(), ExportError> {
    let format = ArchiveFormat::of(out)?;
    let name = out.to_string();
    reporter.event(&Event::CopyStarted {
        images: 0,
        bytes: plan.tar_size(),
    });
    out.write_with(|f| match format {
        ArchiveFormat::SeekableZst => {
            let io = |e| ExportError::Io(name.clone(), e);
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            let mut enc = SeekableWriter::new(f, threads);
            write_tar(
                layout,
                plan,
                &mut Counting::new(&mut enc, reporter),
                &name,
                cancel,
            )?;
            enc.finish().and_then(|w| w.flush()).map_err(io)
        }
        ArchiveFormat::Tar => {
            write_tar(layout, plan, &mut Counting::new(f, reporter), &name, cancel)
        }
    })
}

/// Writes a docker-archive (`docker save` format, loadable by `docker load` and `podman load`):
/// one image per reference, for `platform`, with its tag in `RepoTags`. Layers keep their
/// compression. Returns notes for the user: images left out (no build for the platform) or
/// written without a name (references pinned by digest only). Every blob is re-hashed.
pub fn docker_archive(
    layout: &dyn BundleSource,
    out: &Target,
    platform: &Platform,
    cancel: &CancellationToken,
    reporter: &dyn Reporter,
) -> Result<Vec<String>, ExportError> {
    let index = layout.index()?;
    let mut plan = TarPlan::default();
    let mut manifest = Vec::new();
    let mut skipped = Vec::new();
    let path = crate::store::source::blob_member;
    let mut dropped = 0;
    for entry in index.entries() {
        if entry
            .name
            .as_deref()
            .is_some_and(crate::supply::is_referrer_name)
        {
            dropped += 1;
            continue;
        }
        let image = match offer(layout, &entry, platform)? {
            Offer::Serves(image) => image,
            Offer::Lacks { name, has } => {
                skipped.push(format!(
                    "left out {name}: no {platform} image (it has {})",
                    has.join(", ")
                ));
                continue;
            }
        };
        let digest = |d: &oci_spec::image::Descriptor| -> Result<(Digest, u64), ExportError> {
            crate::manifest::descriptor_digest(d)
                .map(|digest| (digest, d.size()))
                .map_err(|e| ExportError::Incomplete(e.to_string()))
        };
        let config = digest(&image.config)?;
        let layers: Vec<(Digest, u64)> =
            image.layers.iter().map(digest).collect::<Result<_, _>>()?;
        // docker load wants name:tag; a reference pinned by digest only has no tag to give.
        let reference: Option<crate::reference::ImageRef> = image.name.parse().ok();
        let repo_tags: Vec<String> = reference
            .as_ref()
            .and_then(|r| r.tag().map(|t| format!("{}:{t}", r.name())))
            .into_iter()
            .collect();
        if repo_tags.is_empty() {
            skipped.push(format!("{}: no tag to name it by; docker load and podman load will list it by image ID only", image.name));
        }
        manifest.push(serde_json::json!({
            "Config": path(&config.0),
            "RepoTags": repo_tags,
            "Layers": layers.iter().map(|l| path(&l.0)).collect::<Vec<_>>(),
        }));
        for (digest, size) in std::iter::once(config).chain(layers) {
            plan.add_blob(digest, size)?;
        }
    }
    if dropped > 0 {
        skipped.push(format!(
            "dropped {dropped} signature/SBOM/referrer entr{}: a docker-archive cannot hold them; export an oci-archive to keep them",
            if dropped == 1 { "y" } else { "ies" }
        ));
    }
    if manifest.is_empty() {
        return Err(ExportError::Incomplete(format!(
            "no image of the bundle is for {platform}: {}",
            skipped.join("; ")
        )));
    }
    plan.files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).expect("JSON serializes"),
    ));
    let name = out.to_string();
    reporter.event(&Event::CopyStarted {
        images: 0,
        bytes: plan.tar_size(),
    });
    out.write_with(|f| {
        write_tar(
            layout,
            &plan,
            &mut Counting::new(f, reporter),
            &name,
            cancel,
        )
    })?;
    Ok(skipped)
}
