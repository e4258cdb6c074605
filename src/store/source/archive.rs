//! An oci-archive read in place: the tar headers are read once to index where each member's
//! bytes start (in the plain tar, or in the decompressed stream of a `.tar.zst`), then blobs
//! are read from there. Nothing is extracted.
//!
//! Members are untrusted: a name with `..` or an absolute path refuses the archive; a link,
//! device or folder where a blob or root file belongs is refused when it is asked for; other
//! paths are ignored (they are not part of the bundle).

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::blob::{At, FileSpace, Space, VerifiedCache};
use super::zst::{self, Compression};
use super::{Blob, BlobStat, BundleSource, SourceKind, not_found, open_nofollow};
use crate::digest::{self, Digest};
use crate::store::StoreError;

/// Members kept in memory while a stream that cannot seek is indexed: small ones (root files,
/// manifests, configs), up to a total, so reading them later does not decompress again.
const KEEP_SMALL: u64 = 1 << 20;
const KEEP_TOTAL: u64 = 256 << 20;

/// Where one regular member's bytes are.
#[derive(Debug, Clone, Copy)]
struct Member {
    offset: u64,
    size: u64,
    /// Order in the archive.
    order: usize,
}

/// An oci-archive file read in place.
#[derive(Debug)]
pub struct ArchiveSource {
    path: PathBuf,
    kind: SourceKind,
    space: Arc<dyn Space>,
    files: HashMap<String, Member>,
    /// Members that are links, devices or folders: named so a request for one is refused
    /// clearly rather than reported absent.
    others: HashMap<String, &'static str>,
    /// Small members read while indexing a stream that cannot seek.
    kept: HashMap<String, Arc<Vec<u8>>>,
    verified: Arc<VerifiedCache>,
}

/// Opens an archive file (`.tar`, `.tar.zst` seekable or not), refusing what is neither.
pub(super) fn open_file(path: &Path) -> Result<ArchiveSource, StoreError> {
    let file = open_nofollow(path)?;
    let meta = file.metadata().map_err(StoreError::io("stat", path))?;
    if !meta.is_file() {
        return Err(StoreError::NotALayout {
            path: path.to_path_buf(),
            reason: "neither a folder nor an archive file".into(),
            hint: None,
        });
    }
    let file = Arc::new(file);
    let (kind, space): (SourceKind, Arc<dyn Space>) = match zst::sniff(&file, path)? {
        Compression::None => (SourceKind::Tar, Arc::new(FileSpace(file.clone()))),
        Compression::Zstd => match zst::Seekable::open(file.clone(), path)? {
            Some(s) => (SourceKind::SeekableZst, Arc::new(s)),
            None => (
                SourceKind::StreamZst,
                Arc::new(zst::Stream::new(file.clone())),
            ),
        },
    };
    let mut source = ArchiveSource {
        path: path.to_path_buf(),
        kind,
        space,
        files: HashMap::new(),
        others: HashMap::new(),
        kept: HashMap::new(),
        verified: Arc::default(),
    };
    if let Err(e) = source.index_members() {
        if !source.files.is_empty() || !source.others.is_empty() {
            return Err(e);
        }
        // Not a single member: this is no archive at all.
        return Err(StoreError::NotALayout {
            path: path.to_path_buf(),
            reason: "neither a bundle folder nor an oci-archive (.tar, .tar.zst)".into(),
            hint: None,
        });
    }
    if !source.files.contains_key("oci-layout") {
        return Err(StoreError::NotALayout {
            path: path.to_path_buf(),
            reason: "the archive has no oci-layout file (not an oci-archive of a bundle)".into(),
            hint: Some("ferry reads bundle folders and the archives `ferry export` writes".into()),
        });
    }
    Ok(source)
}

/// A member's name as a path inside the bundle (`./` and a trailing `/` dropped); `None` for
/// the archive's root itself. Refuses `..` and absolute paths.
fn member_name(raw: &Path) -> Result<Option<String>, String> {
    let mut parts = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or("a name that is not UTF-8")?),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("{}: `..` in a name", raw.display())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{}: an absolute path", raw.display()));
            }
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

fn other_kind(kind: tar::EntryType) -> &'static str {
    if kind.is_symlink() {
        "a symlink"
    } else if kind.is_hard_link() {
        "a hard link"
    } else if kind.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

impl ArchiveSource {
    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }

    /// Reads every header and records where regular members start. A seekable space skips
    /// over member data; a stream reads through it (keeping small members).
    fn index_members(&mut self) -> Result<(), StoreError> {
        let cursor = SpaceCursor {
            space: self.space.clone(),
            pos: 0,
            reader: None,
        };
        let mut archive = tar::Archive::new(cursor);
        let keep = self.kind == SourceKind::StreamZst;
        let mut kept_total = 0;
        let entries = if keep {
            archive.entries()
        } else {
            archive.entries_with_seek()
        };
        let bad = |e: io::Error| format!("not a readable tar archive: {e}");
        for (order, entry) in entries.map_err(|e| self.corrupt(bad(e)))?.enumerate() {
            let mut entry = entry.map_err(|e| self.corrupt(bad(e)))?;
            let raw = entry.path().map_err(|e| self.corrupt(bad(e)))?.into_owned();
            let Some(name) = member_name(&raw).map_err(|e| self.corrupt(e))? else {
                continue;
            };
            let kind = entry.header().entry_type();
            // A later member of the same name replaces an earlier one, as extraction would.
            if kind.is_file() {
                self.others.remove(&name);
                let size = entry.size();
                if keep && size <= KEEP_SMALL && kept_total + size <= KEEP_TOTAL {
                    let mut bytes = Vec::with_capacity(size as usize);
                    entry
                        .read_to_end(&mut bytes)
                        .map_err(|e| self.corrupt(bad(e)))?;
                    kept_total += size;
                    self.kept.insert(name.clone(), Arc::new(bytes));
                }
                let member = Member {
                    offset: entry.raw_file_position(),
                    size,
                    order,
                };
                self.files.insert(name, member);
            } else {
                self.files.remove(&name);
                self.kept.remove(&name);
                self.others.insert(name, other_kind(kind));
            }
        }
        Ok(())
    }

    fn member(&self, name: &str, action: &'static str) -> Result<Member, StoreError> {
        let what = self.path.join(name);
        match (self.files.get(name), self.others.get(name)) {
            (Some(m), _) => Ok(*m),
            (None, Some(kind)) => Err(StoreError::NotARegularFile {
                path: what,
                what: kind,
            }),
            (None, None) => Err(not_found(action, &what)),
        }
    }
}

impl BundleSource for ArchiveSource {
    fn path(&self) -> &Path {
        &self.path
    }

    fn kind(&self) -> SourceKind {
        self.kind
    }

    fn root_file(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let member = match self.member(name, "read") {
            Ok(m) => m,
            Err(e) if super::is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let what = self.path.join(name);
        if member.size > max {
            return Err(StoreError::TooLarge {
                path: what,
                size: member.size,
                max,
            });
        }
        if let Some(bytes) = self.kept.get(name) {
            return Ok(Some(bytes.to_vec()));
        }
        let mut out = Vec::with_capacity(member.size as usize);
        self.space
            .reader_at(member.offset)
            .and_then(|r| r.take(member.size).read_to_end(&mut out))
            .map_err(StoreError::io("read", &what))?;
        if (out.len() as u64) < member.size {
            return Err(StoreError::io("read", &what)(
                io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        Ok(Some(out))
    }

    fn blob_stat(&self, digest: &Digest) -> BlobStat {
        let name = super::blob_member(digest);
        match (self.files.get(&name), self.others.get(&name)) {
            (Some(m), _) => BlobStat::File(m.size),
            (None, Some(kind)) => BlobStat::NotAFile(kind),
            (None, None) => BlobStat::Missing,
        }
    }

    fn open_blob(&self, digest: &Digest, expected_size: Option<u64>) -> Result<Blob, StoreError> {
        let name = super::blob_member(digest);
        let member = self.member(&name, "open")?;
        if let Some(expected) = expected_size
            && expected != member.size
        {
            return Err(StoreError::Mismatch {
                digest: digest.clone(),
                source: digest::Mismatch::Size {
                    expected,
                    actual: member.size,
                },
            });
        }
        let space: Arc<dyn Space> = match self.kept.get(&name) {
            Some(bytes) => Arc::new(Kept {
                bytes: bytes.clone(),
                base: member.offset,
                archive: self.space.clone(),
            }),
            None => self.space.clone(),
        };
        let at = At {
            space,
            offset: member.offset,
            own_file: false,
        };
        Ok(Blob::new(
            digest.clone(),
            member.size,
            at,
            self.path.join(&name),
            self.verified.clone(),
        ))
    }

    fn blobs(&self) -> Result<Vec<(Digest, u64)>, StoreError> {
        let mut found: Vec<(usize, Digest, u64)> = self
            .files
            .iter()
            .filter_map(|(name, m)| {
                let (alg, hex) = name.strip_prefix("blobs/")?.split_once('/')?;
                let digest = format!("{alg}:{hex}").parse::<Digest>().ok()?;
                Some((m.order, digest, m.size))
            })
            .collect();
        found.sort();
        Ok(found.into_iter().map(|(_, d, s)| (d, s)).collect())
    }
}

/// A small member kept in memory (from a stream that cannot seek): its bytes, at the offset the
/// member has in the archive; keyed on the archive file.
#[derive(Debug)]
struct Kept {
    bytes: Arc<Vec<u8>>,
    base: u64,
    archive: Arc<dyn Space>,
}

impl Space for Kept {
    fn reader_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        let at = (offset.saturating_sub(self.base) as usize).min(self.bytes.len());
        Ok(Box::new(io::Cursor::new(self.bytes[at..].to_vec())))
    }

    fn key(&self) -> io::Result<super::FileKey> {
        self.archive.key()
    }
}

/// A space read as one seekable stream (for the tar reader): a seek only moves the position; the
/// next read opens a reader there.
struct SpaceCursor {
    space: Arc<dyn Space>,
    pos: u64,
    reader: Option<Box<dyn Read + Send>>,
}

impl Read for SpaceCursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.reader.is_none() {
            self.reader = Some(self.space.reader_at(self.pos)?);
        }
        let n = self.reader.as_mut().expect("opened above").read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SpaceCursor {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let SeekFrom::Current(delta) = to else {
            return Err(io::Error::other("only relative seeks"));
        };
        if delta != 0 {
            self.pos = self
                .pos
                .checked_add_signed(delta)
                .ok_or(io::ErrorKind::InvalidInput)?;
            self.reader = None;
        }
        Ok(self.pos)
    }
}
