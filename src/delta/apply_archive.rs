//! `ferry apply DELTA BASE.tar.zst -o NEW.tar.zst`: for sites that keep only archives, the new
//! bundle written straight as an archive, from the delta's blobs and the base archive's, both
//! read in place. The result is byte for byte what `ferry export --oci-archive` writes for the
//! new bundle: the same files (index.json, the lock and restore.sh as `apply` would publish
//! them) and every blob the new index reaches, each re-hashed as it is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::apply::{ApplyError, Delta, check_base, check_base_lock, check_complete, sound_delta};
use crate::digest::Digest;
use crate::export::tarball::TarPlan;
use crate::export::{Target, write_oci_tar};
use crate::store::lockfile::LOCK_FILE_NAME;
use crate::store::source::SCRIPT_FILE;
use crate::store::{Blob, BlobStat, BundleSource, OCI_LAYOUT, SourceKind, StoreError};

/// What an archive-to-archive apply wrote.
#[derive(Debug, Clone, Default)]
pub struct ArchiveApplied {
    /// Images in the new archive.
    pub images: usize,
    /// Blobs it holds, and how many of them came from the delta.
    pub blobs: usize,
    /// Blobs taken from the delta.
    pub from_delta: usize,
}

/// Writes the bundle DELTA describes, made from DELTA and BASE (an archive or a folder, left
/// unchanged), as an oci-archive at `out`.
pub fn apply_to_archive(
    delta_path: &Path,
    base_path: &Path,
    out: &Target,
    cancel: &CancellationToken,
    reporter: &dyn crate::report::Reporter,
) -> Result<ArchiveApplied, ApplyError> {
    let delta = Delta::open(delta_path)?;
    if !delta.marker.patched.is_empty() {
        return Err(ApplyError::PatchedToArchive { delta: delta.name });
    }
    let base = crate::store::source::open(base_path)?;
    check_base_lock(
        &delta,
        &base_path.display().to_string(),
        base.lock_digest()?,
    )?;
    let new_index = delta.source.index()?;
    let new_lock = delta.source.lock()?.unwrap_or_default();
    let needed = sound_delta(&delta)?;
    let from_delta = check_base(&*delta.source, &*base, &new_lock, &needed)?;
    let layered = Layered {
        top: delta.source.clone(),
        base,
        path: delta_path.to_path_buf(),
    };
    check_complete(&layered, &new_index, delta.name.clone())?;
    let (index, blobs) = crate::export::complete_images(&layered)?;
    let mut plan = TarPlan::default();
    for (digest, size) in &blobs {
        plan.add_blob(digest.clone(), *size)?;
    }
    let script = crate::store::script::render(&index);
    plan.files = vec![
        ("oci-layout".into(), OCI_LAYOUT.as_bytes().to_vec()),
        ("index.json".into(), index.to_json()),
        (LOCK_FILE_NAME.into(), new_lock.to_json()),
        (SCRIPT_FILE.into(), script.into_bytes()),
    ];
    write_oci_tar(&layered, &plan, out, cancel, reporter)?;
    Ok(ArchiveApplied {
        images: index.len(),
        blobs: plan.sizes.len(),
        from_delta: from_delta.len(),
    })
}

/// The delta over its base: a blob is read from the delta when it has it, else from the base.
#[derive(Debug)]
struct Layered {
    top: Arc<dyn BundleSource>,
    base: Arc<dyn BundleSource>,
    path: PathBuf,
}

impl Layered {
    fn holder(&self, digest: &Digest) -> &dyn BundleSource {
        match self.top.blob_stat(digest) {
            BlobStat::Missing => &*self.base,
            _ => &*self.top,
        }
    }
}

impl BundleSource for Layered {
    fn path(&self) -> &Path {
        &self.path
    }

    fn kind(&self) -> SourceKind {
        self.top.kind()
    }

    fn root_file(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.top.root_file(name, max)
    }

    fn blob_stat(&self, digest: &Digest) -> BlobStat {
        self.holder(digest).blob_stat(digest)
    }

    fn open_blob(&self, digest: &Digest, expected_size: Option<u64>) -> Result<Blob, StoreError> {
        self.holder(digest).open_blob(digest, expected_size)
    }

    fn blobs(&self) -> Result<Vec<(Digest, u64)>, StoreError> {
        let mut all = self.top.blobs()?;
        all.extend(self.base.blobs()?);
        Ok(all)
    }
}

/// Removes the temp folders (`ferry-delta-PID-N`) that an apply of an archive by an older
/// ferry unpacked under the system's temp folder and left when it was killed (this ferry reads
/// archives in place and makes none). Only folders whose process is gone; links are removed,
/// never followed.
pub(super) fn remove_stale_temp_folders() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("ferry-delta-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 sends nothing; it only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if gone && is_dir {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
