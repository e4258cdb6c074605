//! Writing one blob: bytes are hashed as they are written; only content whose digest and size
//! match is fsynced and renamed into `blobs/`, one at a time ([`BlobWriter::commit`]) or as a
//! batch that shares its syncs ([`BlobWriter::stage`], then [`land`]).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use super::{Layout, StoreError};
use crate::digest::{self, Digest, Hasher};

/// Buffer between the network and the file: large enough to keep syscalls rare.
const WRITE_BUFFER: usize = 256 << 10;

/// The write buffer for a blob of `size` bytes: never larger than the blob. A 1 KiB config
/// needs no 256 KiB buffer, which malloc maps and unmaps (and the kernel zeroes) per blob.
fn buffer_for(size: Option<u64>) -> usize {
    size.map_or(WRITE_BUFFER, |s| {
        usize::try_from(s).map_or(WRITE_BUFFER, |s| s.clamp(1, WRITE_BUFFER))
    })
}

/// A blob being written to a throwaway temp file (removed if dropped before `commit`).
/// Downloads, which outlive an attempt or a run, are a [`super::PartialDownload`].
#[derive(Debug)]
pub struct BlobWriter {
    file: BufWriter<File>,
    path: PathBuf,
    dest: PathBuf,
    hasher: Hasher,
    digest: Digest,
    size: Option<u64>,
    done: bool,
}

impl BlobWriter {
    /// Starts a fresh temp file for `digest`.
    pub fn create(
        layout: &Layout,
        digest: Digest,
        size: Option<u64>,
    ) -> Result<BlobWriter, StoreError> {
        let name = format!(
            "{}-{}.{}.{}",
            digest.algorithm().as_str(),
            digest.hex(),
            std::process::id(),
            fastrand::u32(..)
        );
        let path = layout.tmp_dir().join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(StoreError::io("create", &path))?;
        Ok(BlobWriter {
            file: BufWriter::with_capacity(buffer_for(size), file),
            path,
            dest: layout.blob_path(&digest),
            hasher: Hasher::new(digest.algorithm()),
            digest,
            size,
            done: false,
        })
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.hasher.len()
    }

    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Hashes and writes bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(StoreError::io("write", &self.path))
    }

    /// Pushes buffered bytes to the file.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.file
            .flush()
            .map_err(StoreError::io("write", &self.path))
    }

    /// Checks digest and size, fsyncs and renames into `blobs/`. On a mismatch the file is
    /// deleted (its content is wrong, not merely incomplete) and the mismatch returned.
    pub fn commit(self) -> Result<(), StoreError> {
        self.stage()?.commit()
    }

    /// Checks digest and size and hands the file over for [`land`], which makes a whole batch
    /// durable with a few syncs instead of one per blob (for small blobs: a large one's own
    /// fsync is cheap next to its download). On a mismatch the file is deleted and the
    /// mismatch returned.
    pub fn stage(mut self) -> Result<StagedBlob, StoreError> {
        self.flush()?;
        let hasher = std::mem::replace(&mut self.hasher, Hasher::new(self.digest.algorithm()));
        if let Err(source) = digest::check(hasher, &self.digest, self.size) {
            return Err(StoreError::Mismatch {
                digest: self.digest.clone(),
                source,
            });
        }
        let file = self
            .file
            .get_ref()
            .try_clone()
            .map_err(StoreError::io("open", &self.path))?;
        self.done = true;
        Ok(StagedBlob {
            file,
            path: std::mem::take(&mut self.path),
            dest: std::mem::take(&mut self.dest),
            digest: self.digest.clone(),
            keep_on_drop: false,
            done: false,
        })
    }
}

/// A blob whose content matches its digest, waiting in ferry's work folder to be made durable
/// and renamed into `blobs/` by [`land`]. Dropped unlanded, a temp file is removed and a
/// partial download kept (the next run re-hashes and lands it without fetching a byte).
#[derive(Debug)]
pub struct StagedBlob {
    file: File,
    path: PathBuf,
    dest: PathBuf,
    digest: Digest,
    keep_on_drop: bool,
    done: bool,
}

impl StagedBlob {
    /// A verified partial download, kept in the partial area if dropped before it lands (the
    /// next run re-hashes and lands it without fetching a byte).
    pub(super) fn kept(file: File, path: PathBuf, dest: PathBuf, digest: Digest) -> StagedBlob {
        StagedBlob {
            file,
            path,
            dest,
            digest,
            keep_on_drop: true,
            done: false,
        }
    }

    /// Syncs the file and renames it into `blobs/`: one blob landed on its own.
    pub(super) fn commit(self) -> Result<(), StoreError> {
        self.file
            .sync_all()
            .map_err(StoreError::io("sync", &self.path))?;
        self.rename_into_place()
    }

    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Renames the (synced) file into `blobs/`.
    fn rename_into_place(mut self) -> Result<(), StoreError> {
        let dir = self.dest.parent().expect("a blob path has a folder");
        // A rename follows links in the folders above: blobs/ and blobs/<alg> must be folders
        // of the bundle, not links out of it.
        for d in [dir, dir.parent().expect("blobs/ has a parent")] {
            if d.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                return Err(StoreError::NotARegularFile {
                    path: d.to_path_buf(),
                    what: "a symlink or file where a folder belongs",
                });
            }
        }
        if let Err(e) = fs::rename(&self.path, &self.dest) {
            // blobs/<algorithm> is made when its first blob lands (blobs/sha512 is rare).
            if e.kind() != std::io::ErrorKind::NotFound || dir.is_dir() {
                return Err(StoreError::io("rename into", &self.dest)(e));
            }
            fs::create_dir_all(dir).map_err(StoreError::io("create", dir))?;
            fs::rename(&self.path, &self.dest)
                .map_err(StoreError::io("rename into", &self.dest))?;
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        if !self.done && !self.keep_on_drop {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Threads that sync a batch: concurrent fsyncs share the filesystem's journal commits, where
/// one after another each would wait for its own.
const SYNC_THREADS: usize = 8;

/// Makes staged blobs durable, then renames them into `blobs/` (a blob is never named by its
/// digest before every byte of it is on disk). The caller syncs the blob folders before
/// index.json names any of them ([`Layout::land`] does both).
pub(super) fn land(blobs: Vec<StagedBlob>) -> Result<(), StoreError> {
    sync_batch(&blobs)?;
    for b in blobs {
        b.rename_into_place()?;
    }
    Ok(())
}

/// Makes every staged file durable: fsyncs on a few threads at once, which the filesystem
/// folds into a few journal commits. (One `syncfs(2)` would be fewer calls, but it also waits
/// for whatever else the filesystem holds dirty: measured at 0.47 s beside busy builds.)
fn sync_batch(blobs: &[StagedBlob]) -> Result<(), StoreError> {
    on_threads(blobs, |b| {
        b.file.sync_all().map_err(StoreError::io("sync", &b.path))
    })
}

/// Runs `f` over `items` on up to [`SYNC_THREADS`] threads; the first error wins.
pub(super) fn on_threads<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> Result<(), StoreError> + Sync,
) -> Result<(), StoreError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failure = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..items.len().min(SYNC_THREADS) {
            s.spawn(|| {
                while let Some(item) =
                    items.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    if let Err(e) = f(item) {
                        failure.lock().expect("not poisoned").get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match failure.into_inner().expect("not poisoned") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_blobs_are_named_only_once_landed() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_for_write(dir.path()).unwrap();
        let many: Vec<_> = (0..40u32)
            .map(|i| {
                let bytes = format!("small blob {i}").into_bytes();
                (Digest::sha256_of(&bytes), bytes)
            })
            .collect();
        let staged = layout.stage_blobs(&many).unwrap();
        assert!(
            many.iter()
                .all(|(d, b)| !layout.has_blob(d, b.len() as u64))
        );
        // Two batches, each landing all of its blobs.
        let (a, b): (Vec<_>, Vec<_>) = staged
            .into_iter()
            .partition(|s| many[..35].iter().any(|(d, _)| d == s.digest()));
        layout.land(a).unwrap();
        layout.land(b).unwrap();
        for (d, bytes) in &many {
            assert_eq!(&layout.read_blob(d).unwrap(), bytes);
        }
        // Dropped before landing: a temp file is removed.
        let temp = layout
            .stage_blobs(&[(Digest::sha256_of(b"t"), b"t".to_vec())])
            .unwrap();
        drop(temp);
        assert_eq!(fs::read_dir(layout.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn wrong_content_never_lands() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_for_write(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"right");
        let mut w = BlobWriter::create(&layout, digest.clone(), Some(5)).unwrap();
        w.write(b"wrong").unwrap();
        assert!(matches!(w.commit(), Err(StoreError::Mismatch { .. })));
        assert!(!layout.blob_path(&digest).exists());
        assert_eq!(fs::read_dir(layout.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn a_symlinked_blob_folder_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open_for_write(&dir.path().join("b")).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, layout.blob_dir(digest::Algorithm::Sha512)).unwrap();
        let content = b"sha512 content";
        let digest = Digest::of(digest::Algorithm::Sha512, content);
        assert!(matches!(
            layout.put_blob(&digest, content),
            Err(StoreError::NotARegularFile { .. })
        ));
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        fs::remove_file(layout.blob_dir(digest::Algorithm::Sha512)).unwrap();
        layout.put_blob(&digest, content).unwrap();
        assert_eq!(layout.read_blob(&digest).unwrap(), content);
    }
}
