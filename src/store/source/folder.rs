//! A bundle folder as a source: [`Layout`] itself (also a read-only mount).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::blob::{At, FileSpace};
use super::{Blob, BlobStat, BundleSource, SourceKind, not_found, open_nofollow};
use crate::digest::Digest;
use crate::store::{Layout, StoreError};

impl BundleSource for Layout {
    fn path(&self) -> &Path {
        self.root()
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Folder
    }

    fn root_file(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.root().join(name);
        let file = match open_nofollow(&path) {
            Ok(f) => f,
            Err(e) if super::is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = file.metadata().map_err(StoreError::io("stat", &path))?;
        if !meta.is_file() {
            return Err(StoreError::NotARegularFile {
                path,
                what: "not a regular file",
            });
        }
        if meta.len() > max {
            return Err(StoreError::TooLarge {
                path,
                size: meta.len(),
                max,
            });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(StoreError::io("read", &path))?;
        if bytes.len() as u64 > max {
            return Err(StoreError::TooLarge {
                path,
                size: bytes.len() as u64,
                max,
            });
        }
        Ok(Some(bytes))
    }

    fn blob_stat(&self, digest: &Digest) -> BlobStat {
        for dir in [self.root().join("blobs"), self.blob_dir(digest.algorithm())] {
            match dir.symlink_metadata() {
                Ok(m) if !m.is_dir() => return BlobStat::NotAFile("under a symlink or file"),
                Ok(_) => {}
                Err(_) => return BlobStat::Missing,
            }
        }
        match self.blob_path(digest).symlink_metadata() {
            Ok(m) if m.is_symlink() => BlobStat::NotAFile("a symlink"),
            Ok(m) if !m.is_file() => BlobStat::NotAFile("not a regular file"),
            Ok(m) => BlobStat::File(m.len()),
            Err(_) => BlobStat::Missing,
        }
    }

    fn open_blob(&self, digest: &Digest, expected_size: Option<u64>) -> Result<Blob, StoreError> {
        let file = match Layout::open_blob(self, digest, expected_size) {
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_found("open", &self.blob_path(digest)));
            }
            other => other?,
        };
        let size = file.size();
        let (file, path) = file.into_parts();
        let at = At {
            space: Arc::new(FileSpace(Arc::new(file))),
            offset: 0,
            own_file: true,
        };
        Ok(Blob::new(
            digest.clone(),
            size,
            at,
            path,
            self.verified.clone(),
        ))
    }

    fn blobs(&self) -> Result<Vec<(Digest, u64)>, StoreError> {
        Ok(self
            .list_blobs()?
            .into_iter()
            .map(|(d, p)| {
                let size = p.symlink_metadata().map_or(0, |m| m.len());
                (d, size)
            })
            .collect())
    }
}
