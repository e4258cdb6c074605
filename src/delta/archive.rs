//! A delta that travelled as an oci-archive (`ferry export --oci-archive`, `.tar` or
//! `.tar.zst`), applied without unpacking it first: a first pass reads its small files and lists
//! its blobs; a second pass streams the wanted blobs straight into the base, re-hashed.
//! The archive is untrusted: only the files a delta has are accepted, at their exact paths, as
//! regular files; anything else (links, other paths, `..`) is refused.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::MARKER_NAME;
use crate::digest::Digest;
use crate::lock::LOCK_FILE_NAME;
use crate::store::{BlobWriter, Layout, MAX_SMALL_BLOB, StoreError};

/// The small files of a delta, unpacked for reading.
const FILES: [&str; 5] = [
    "oci-layout",
    "index.json",
    LOCK_FILE_NAME,
    MARKER_NAME,
    crate::restore::script::SCRIPT_NAME,
];

fn bad(path: &Path, why: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: why,
    }
}

fn open(path: &Path) -> Result<Box<dyn Read>, StoreError> {
    let file = File::open(path).map_err(StoreError::io("open", path))?;
    if path.extension().is_some_and(|e| e == "zst") {
        let dec = zstd::stream::Decoder::new(file).map_err(StoreError::io("read", path))?;
        return Ok(Box::new(dec));
    }
    Ok(Box::new(file))
}

/// What an entry of the archive is.
enum Entry {
    File(&'static str),
    Blob(Digest),
    Folder,
}

fn classify(path: &Path, entry: &tar::Entry<'_, Box<dyn Read>>) -> Result<Entry, StoreError> {
    let name = entry
        .path()
        .map_err(StoreError::io("read", path))?
        .to_string_lossy()
        .trim_start_matches("./")
        .to_owned();
    let kind = entry.header().entry_type();
    if kind.is_dir()
        && matches!(
            name.as_str(),
            "" | "blobs/" | "blobs/sha256/" | "blobs/sha512/"
        )
    {
        return Ok(Entry::Folder);
    }
    if !kind.is_file() {
        return Err(bad(
            path,
            format!("{name}: not a regular file; a delta archive holds regular files only"),
        ));
    }
    if let Some(f) = FILES.iter().find(|f| **f == name) {
        return Ok(Entry::File(f));
    }
    let digest = name
        .strip_prefix("blobs/")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(alg, hex)| format!("{alg}:{hex}").parse::<Digest>().ok());
    digest
        .map(Entry::Blob)
        .ok_or_else(|| bad(path, format!("{name}: unexpected entry in a delta archive")))
}

/// Unpacks the small files of the archive at `path` into the folder `into` (created), and
/// returns the blobs it holds with their sizes.
pub fn unpack_description(path: &Path, into: &Path) -> Result<BTreeMap<Digest, u64>, StoreError> {
    std::fs::create_dir_all(into).map_err(StoreError::io("create", into))?;
    let mut archive = tar::Archive::new(open(path)?);
    let mut blobs = BTreeMap::new();
    for entry in archive.entries().map_err(StoreError::io("read", path))? {
        let mut entry = entry.map_err(StoreError::io("read", path))?;
        match classify(path, &entry)? {
            Entry::Folder => {}
            Entry::Blob(d) => {
                blobs.insert(d, entry.size());
            }
            Entry::File(name) => {
                if entry.size() > MAX_SMALL_BLOB {
                    return Err(bad(
                        path,
                        format!("{name}: {} bytes is too large", entry.size()),
                    ));
                }
                let mut bytes = Vec::new();
                entry
                    .read_to_end(&mut bytes)
                    .map_err(StoreError::io("read", path))?;
                let dest = into.join(name);
                std::fs::write(&dest, bytes).map_err(StoreError::io("write", &dest))?;
            }
        }
    }
    Ok(blobs)
}

/// Streams the blobs of `wanted` from the archive into `base`, each re-hashed and renamed into
/// place by the store's blob writer; `after_each` runs after each blob lands.
pub fn copy_blobs(
    path: &Path,
    base: &Layout,
    wanted: &BTreeMap<Digest, u64>,
    after_each: &mut dyn FnMut(),
) -> Result<(), StoreError> {
    let mut archive = tar::Archive::new(open(path)?);
    for entry in archive.entries().map_err(StoreError::io("read", path))? {
        let mut entry = entry.map_err(StoreError::io("read", path))?;
        let Entry::Blob(digest) = classify(path, &entry)? else {
            continue;
        };
        let Some(&size) = wanted.get(&digest) else {
            continue;
        };
        if base.has_blob(&digest, size) {
            continue;
        }
        let mut writer = BlobWriter::create(base, digest.clone(), Some(size))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = entry.read(&mut buf).map_err(StoreError::io("read", path))?;
            if n == 0 {
                break;
            }
            writer.write(&buf[..n])?;
        }
        writer.commit()?;
        after_each();
    }
    Ok(())
}

/// A temp folder for an archive's description, removed on drop.
pub struct Unpacked(pub PathBuf);

impl Unpacked {
    /// A new folder under the system's temp folder.
    pub fn new() -> Unpacked {
        let name = format!("ferry-delta-{}-{}", std::process::id(), fastrand::u64(..));
        Unpacked(std::env::temp_dir().join(name))
    }
}

impl Default for Unpacked {
    fn default() -> Self {
        Unpacked::new()
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive_with(dir: &Path, add: impl FnOnce(&mut tar::Builder<File>)) -> PathBuf {
        let path = dir.join("delta.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        let mut h = tar::Header::new_ustar();
        h.set_path("index.json").unwrap();
        h.set_size(2);
        h.set_cksum();
        b.append(&h, &b"{}"[..]).unwrap();
        add(&mut b);
        b.into_inner().unwrap();
        path
    }

    #[test]
    fn only_a_deltas_regular_files_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let digest = Digest::sha256_of(b"x");
        let ok = archive_with(dir.path(), |b| {
            let mut h = tar::Header::new_ustar();
            h.set_path(format!("blobs/sha256/{}", digest.hex()))
                .unwrap();
            h.set_size(1);
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
        });
        let out = dir.path().join("out");
        let blobs = unpack_description(&ok, &out).unwrap();
        assert_eq!(blobs.get(&digest), Some(&1));
        assert_eq!(std::fs::read(out.join("index.json")).unwrap(), b"{}");

        let link = archive_with(dir.path(), |b| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_path(format!("blobs/sha256/{}", digest.hex()))
                .unwrap();
            h.set_link_name("/etc/passwd").unwrap();
            h.set_size(0);
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        });
        assert!(unpack_description(&link, &dir.path().join("o2")).is_err());
        let other = archive_with(dir.path(), |b| {
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_cksum();
            b.append_data(&mut h, "etc/cron.d/x", &b"x"[..]).unwrap();
        });
        let err = unpack_description(&other, &dir.path().join("o3")).unwrap_err();
        assert!(err.to_string().contains("unexpected entry"), "{err}");
    }
}
