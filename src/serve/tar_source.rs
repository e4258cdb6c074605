//! An uncompressed oci-archive (`ferry export --oci-archive OUT.tar`) read in place: the
//! headers are read once to index where each regular file's bytes start, then blobs are read
//! with positioned reads. Nothing is extracted.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::source::{BundleSource, OpenBlob};
use crate::digest::{self, Digest};
use crate::store::{ANNOTATION_REF_NAME, IndexEntry, StoreError};

/// Where one regular file's bytes are in the archive.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    size: u64,
}

/// An oci-archive tar served in place.
#[derive(Debug)]
pub struct TarSource {
    path: PathBuf,
    file: Arc<File>,
    files: HashMap<String, Entry>,
    /// Entries that are links, devices or folders: named so a request for one is refused
    /// clearly rather than reported absent.
    others: HashMap<String, &'static str>,
}

/// Magic numbers of the compressions an archive may come in.
const COMPRESSED: &[(&[u8], &str, &str)] = &[
    (b"\x28\xb5\x2f\xfd", "zstd", "zstd -d"),
    (b"\x1f\x8b", "gzip", "gunzip -k"),
    (b"\xfd7zXZ\x00", "xz", "unxz -k"),
    (b"BZh", "bzip2", "bunzip2 -k"),
];

impl TarSource {
    /// Opens and indexes an archive; refuses a compressed one with a hint.
    pub fn open(path: &Path) -> Result<TarSource, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => StoreError::NotARegularFile {
                    path: path.to_path_buf(),
                    what: "a symlink",
                },
                _ => StoreError::io("open", path)(e),
            })?;
        let meta = file.metadata().map_err(StoreError::io("stat", path))?;
        if !meta.is_file() {
            return Err(StoreError::NotALayout {
                path: path.to_path_buf(),
                reason: "neither a folder nor an archive file".into(),
                hint: None,
            });
        }
        refuse_compressed(&file, path)?;
        let (files, others) = index_entries(&file, path)?;
        if !files.contains_key("oci-layout") {
            return Err(StoreError::NotALayout {
                path: path.to_path_buf(),
                reason: "the archive has no oci-layout file (not an oci-archive)".into(),
                hint: None,
            });
        }
        Ok(TarSource {
            path: path.to_path_buf(),
            file: Arc::new(file),
            files,
            others,
        })
    }

    /// A small regular file of the archive, whole.
    fn read_small(&self, name: &str, max: u64) -> Result<Vec<u8>, StoreError> {
        let what = self.path.join(name);
        let e = self
            .files
            .get(name)
            .ok_or_else(|| StoreError::io("read", &what)(io::ErrorKind::NotFound.into()))?;
        if e.size > max {
            return Err(StoreError::TooLarge {
                path: what,
                size: e.size,
                max,
            });
        }
        let mut out = vec![0; e.size as usize];
        std::os::unix::fs::FileExt::read_exact_at(&*self.file, &mut out, e.offset)
            .map_err(StoreError::io("read", &what))?;
        Ok(out)
    }
}

fn refuse_compressed(file: &File, path: &Path) -> Result<(), StoreError> {
    let mut head = [0u8; 6];
    let n = std::os::unix::fs::FileExt::read_at(file, &mut head, 0)
        .map_err(StoreError::io("read", path))?;
    for (magic, name, tool) in COMPRESSED {
        if head[..n].starts_with(magic) {
            return Err(StoreError::NotALayout {
                path: path.to_path_buf(),
                reason: format!(
                    "it is {name}-compressed; ferry serves an uncompressed .tar in place \
                     (compressed data cannot be read at an offset)"
                ),
                hint: Some(format!(
                    "decompress it once ({tool} {}), or export with --oci-archive OUT.tar, or \
                     serve the bundle folder",
                    path.display()
                )),
            });
        }
    }
    Ok(())
}

type Indexed = (HashMap<String, Entry>, HashMap<String, &'static str>);

/// Reads every header (seeking over the data) and records where regular files start.
fn index_entries(file: &File, path: &Path) -> Result<Indexed, StoreError> {
    let corrupt = |e: io::Error| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("not a readable tar archive: {e}"),
    };
    let mut archive = tar::Archive::new(file);
    let mut files = HashMap::new();
    let mut others = HashMap::new();
    for entry in archive.entries_with_seek().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        let Ok(name) = entry.path() else { continue };
        let name = name.to_string_lossy();
        let name = name
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        let kind = entry.header().entry_type();
        // A later entry for the same name replaces an earlier one, as extraction would.
        if kind.is_file() {
            others.remove(&name);
            files.insert(
                name,
                Entry {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
            );
        } else {
            files.remove(&name);
            let what = if kind.is_symlink() {
                "a symlink"
            } else if kind.is_hard_link() {
                "a hard link"
            } else {
                "not a regular file"
            };
            others.insert(name, what);
        }
    }
    Ok((files, others))
}

impl BundleSource for TarSource {
    fn path(&self) -> &Path {
        &self.path
    }

    fn index(&self) -> Result<Vec<IndexEntry>, StoreError> {
        let bytes = self.read_small("index.json", crate::store::MAX_SMALL_BLOB)?;
        parse_index(&bytes, &self.path.join("index.json"))
    }

    fn open_blob(&self, digest: &Digest, size: Option<u64>) -> Result<OpenBlob, StoreError> {
        let name = format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex());
        let what = self.path.join(&name);
        let Some(e) = self.files.get(&name) else {
            return Err(match self.others.get(&name) {
                Some(kind) => StoreError::NotARegularFile {
                    path: what,
                    what: kind,
                },
                None => StoreError::io("open", &what)(io::ErrorKind::NotFound.into()),
            });
        };
        if let Some(expected) = size
            && expected != e.size
        {
            return Err(StoreError::Mismatch {
                digest: digest.clone(),
                source: digest::Mismatch::Size {
                    expected,
                    actual: e.size,
                },
            });
        }
        Ok(OpenBlob::in_archive(
            self.file.clone(),
            self.path.clone(),
            e.offset,
            digest.clone(),
            e.size,
        ))
    }
}

/// The named entries of index.json bytes (what ferry writes: ref.name on every image).
fn parse_index(bytes: &[u8], path: &Path) -> Result<Vec<IndexEntry>, StoreError> {
    let index: oci_spec::image::ImageIndex =
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(index
        .manifests()
        .iter()
        .map(|d| IndexEntry {
            name: d
                .annotations()
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_REF_NAME))
                .cloned(),
            descriptor: d.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(dir: &Path, blob: &[u8], link: &Digest) -> (PathBuf, Digest) {
        let digest = Digest::sha256_of(blob);
        let path = dir.join("b.tar");
        let mut t = tar::Builder::new(File::create(&path).unwrap());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, name, data).unwrap();
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        add("index.json", br#"{"schemaVersion":2,"manifests":[]}"#);
        add(&format!("./blobs/sha256/{}", digest.hex()), blob);
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        t.append_link(
            &mut h,
            format!("blobs/sha256/{}", link.hex()),
            "/etc/passwd",
        )
        .unwrap();
        t.into_inner().unwrap();
        (path, digest)
    }

    #[test]
    fn reads_regular_entries_in_place_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        let link = Digest::sha256_of(b"elsewhere");
        let (path, digest) = archive(dir.path(), b"hello world", &link);
        let src = TarSource::open(&path).unwrap();
        assert!(src.index().unwrap().is_empty());
        let blob = src.open_blob(&digest, Some(11)).unwrap();
        assert_eq!(blob.read_verified(100).unwrap(), b"hello world");
        let mut part = [0u8; 5];
        assert_eq!(blob.read_at(&mut part, 6).unwrap(), 5);
        assert_eq!(&part, b"world");
        assert!(matches!(
            src.open_blob(&digest, Some(12)),
            Err(StoreError::Mismatch { .. })
        ));
        assert!(matches!(
            src.open_blob(&link, None),
            Err(StoreError::NotARegularFile { .. })
        ));
    }

    #[test]
    fn compressed_archives_are_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tar.gz");
        std::fs::write(&path, b"\x1f\x8b\x08\x00rest").unwrap();
        let e = TarSource::open(&path).unwrap_err();
        use crate::error::Diagnostic;
        let hint = e.hint().unwrap_or_default();
        assert!(
            e.to_string().contains("gzip") && hint.contains("decompress"),
            "{e}: {hint}"
        );
        assert!(!e.to_string().contains("hint:"), "{e}");
    }
}
