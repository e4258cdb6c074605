//! A bundle to read from, whatever holds it: a folder (also a read-only mount) or an
//! uncompressed oci-archive read in place. Serve reads through [`BundleSource`]; push and export
//! could too.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::digest::Digest;
use crate::store::{BlobFile, IndexEntry, Layout, StoreError, VerifiedReader};

/// Read access to a bundle: its index.json and its blobs.
pub trait BundleSource: Send + Sync {
    /// The bundle's path, for messages.
    fn path(&self) -> &Path;
    /// The entries of its index.json.
    fn index(&self) -> Result<Vec<IndexEntry>, StoreError>;
    /// Opens a blob: a regular file (never through a symlink) of `expected_size` when given.
    fn open_blob(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
    ) -> Result<OpenBlob, StoreError>;
}

/// Opens BUNDLE as a folder or an uncompressed `.tar`; refuses a compressed archive.
pub fn open(path: &Path) -> Result<Arc<dyn BundleSource>, StoreError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Err(StoreError::NotALayout {
            path: path.to_path_buf(),
            reason: "no such folder or archive".into(),
            hint: None,
        });
    }
    if path.is_dir() {
        return Ok(Arc::new(FolderSource {
            layout: Layout::open_read(path)?,
        }));
    }
    Ok(Arc::new(super::tar_source::TarSource::open(path)?))
}

/// A bundle folder, read through [`Layout::open_blob`].
#[derive(Debug)]
pub struct FolderSource {
    layout: Layout,
}

impl BundleSource for FolderSource {
    fn path(&self) -> &Path {
        self.layout.root()
    }

    fn index(&self) -> Result<Vec<IndexEntry>, StoreError> {
        // index.json must be a regular file too: a symlink could point anywhere.
        let path = self.layout.root().join("index.json");
        match path.symlink_metadata() {
            Ok(m) if !m.is_file() => {
                return Err(StoreError::NotARegularFile {
                    path,
                    what: "not a regular file",
                });
            }
            _ => {}
        }
        Ok(self.layout.read_index()?.entries())
    }

    fn open_blob(&self, digest: &Digest, size: Option<u64>) -> Result<OpenBlob, StoreError> {
        let blob = self.layout.open_blob(digest, size)?;
        Ok(OpenBlob {
            digest: digest.clone(),
            size: blob.size(),
            at: At::File(Arc::new(blob)),
        })
    }
}

/// Where an open blob's bytes are.
#[derive(Debug, Clone)]
enum At {
    /// Its own file.
    File(Arc<BlobFile>),
    /// A range of a shared archive file.
    Range {
        file: Arc<File>,
        path: PathBuf,
        offset: u64,
    },
}

/// An opened blob: positioned reads (for content already verified) and a verifying reader.
#[derive(Debug, Clone)]
pub struct OpenBlob {
    digest: Digest,
    size: u64,
    at: At,
}

impl OpenBlob {
    pub(super) fn in_archive(
        file: Arc<File>,
        path: PathBuf,
        offset: u64,
        digest: Digest,
        size: u64,
    ) -> OpenBlob {
        OpenBlob {
            digest,
            size,
            at: At::Range { file, path, offset },
        }
    }

    /// Its size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Reads at `offset` within the blob (no more than its end); 0 at the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let left = self.size.saturating_sub(offset);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        match &self.at {
            At::File(b) => b.file().read_at(&mut buf[..want], offset),
            At::Range {
                file, offset: base, ..
            } => file.read_at(&mut buf[..want], base + offset),
        }
    }

    /// A reader over the whole blob that hashes every byte and fails at the end
    /// (`InvalidData`) when it is not the digest.
    pub fn verified_reader(&self) -> VerifiedReader<BlobCursor> {
        VerifiedReader::new(
            BlobCursor {
                blob: self.clone(),
                offset: 0,
            },
            self.digest.clone(),
            self.size,
        )
    }

    /// Re-hashes the whole blob.
    pub fn verify(&self) -> Result<(), StoreError> {
        io::copy(&mut self.verified_reader(), &mut io::sink())
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// Reads and checks the whole blob, refusing one above `max` bytes.
    pub fn read_verified(&self, max: u64) -> Result<Vec<u8>, StoreError> {
        if self.size > max {
            return Err(StoreError::TooLarge {
                path: self.path(),
                size: self.size,
                max,
            });
        }
        let mut out = Vec::with_capacity(self.size as usize);
        self.verified_reader()
            .read_to_end(&mut out)
            .map_err(|e| self.error(e))?;
        Ok(out)
    }

    /// Where it is, for messages (`archive.tar:blobs/sha256/...` for an archive).
    pub fn path(&self) -> PathBuf {
        match &self.at {
            At::File(b) => b.path().to_path_buf(),
            At::Range { path, .. } => path.join(format!(
                "blobs/{}/{}",
                self.digest.algorithm().as_str(),
                self.digest.hex()
            )),
        }
    }

    fn error(&self, e: io::Error) -> StoreError {
        crate::store::blob_read_error(self.path(), self.digest.clone(), e)
    }
}

/// Sequential reads over an [`OpenBlob`] with positioned reads.
#[derive(Debug)]
pub struct BlobCursor {
    blob: OpenBlob,
    offset: u64,
}

impl Read for BlobCursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte more than the blob is never asked for here; a longer file cannot be seen
        // through a sized range, and the size was checked when the blob was opened.
        let n = self.blob.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}
