//! A resumable download on disk: `.ferry/partial/<alg>-<hex>`, written at offsets by one
//! stream or by several parts (closed byte ranges) at once. For a blob fetched in parts, a
//! record beside it (`<alg>-<hex>.parts`) says how far each part got, so that a cut or a kill
//! costs only what was in flight: every part resumes where its bytes end.
//!
//! The data file is hashed by the caller (`fetch`), over its contiguous prefix as it grows;
//! [`PartialDownload::finish`] takes that hasher and lands the blob only when digest and size
//! match. Nothing here trusts the record: it is parsed strictly, checked against the blob's
//! size and the data file's length, and a record that does not hold up starts the blob over.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Layout, StagedBlob, StoreError};
use crate::digest::{self, Digest, Hasher};

/// The most parts a record may hold: a blob is cut into parts of 8 to 64 MiB, more only for a
/// blob over 64 GiB, which gets parts of a 1024th of it.
pub const MAX_PARTS: usize = 1024;

/// The smallest and the usual largest part.
const MIN_PART: u64 = 8 << 20;
const MAX_PART: u64 = 64 << 20;

/// A part's progress is written to the record once this many of its bytes are unrecorded (and
/// whenever the writer catches up with the network): a kill loses at most this much per part.
const RECORD_EVERY: u64 = 256 << 10;

/// One closed byte range of a blob and how much of it is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// First byte of the range.
    pub start: u64,
    /// One past its last byte.
    pub end: u64,
    /// Bytes written from `start` on, without a gap.
    pub done: u64,
}

impl Part {
    /// The offset of the next byte to fetch.
    pub fn next(&self) -> u64 {
        self.start + self.done
    }

    /// Bytes still missing.
    pub fn left(&self) -> u64 {
        self.end - self.next()
    }
}

/// The parts of `[0, size)` for `connections` connections taking them in order: part 0 keeps
/// the `prefix` already on disk; the rest is cut at MiB boundaries into parts of a quarter of
/// each connection's share, 8 to 64 MiB (so the contiguous prefix, which is what can be
/// hashed, grows at the pace of all connections together, and a slow connection holds up
/// little). The last part may be shorter.
pub fn plan_parts(size: u64, prefix: u64, connections: usize) -> Vec<Part> {
    let rest = size.saturating_sub(prefix);
    let share = rest.div_ceil(4 * connections.max(1) as u64);
    let step = share
        .clamp(MIN_PART, MAX_PART)
        .max(rest.div_ceil(MAX_PARTS as u64 - 1))
        .next_multiple_of(1 << 20);
    let mut parts = vec![Part {
        start: 0,
        end: (prefix + step).min(size),
        done: prefix,
    }];
    while let Some(last) = parts.last()
        && last.end < size
    {
        let start = last.end;
        parts.push(Part {
            start,
            end: (start + step).min(size),
            done: 0,
        });
    }
    parts
}

/// The contiguous prefix of parts given in order as (next offset, bytes left): up to the
/// first part with bytes missing.
pub fn contiguous(parts: impl IntoIterator<Item = (u64, u64)>) -> u64 {
    let mut prefix = 0;
    for (next, left) in parts {
        prefix = next;
        if left > 0 {
            break;
        }
    }
    prefix
}

/// A blob being downloaded into the partial area.
#[derive(Debug)]
pub struct PartialDownload {
    file: File,
    path: PathBuf,
    dest: PathBuf,
    digest: Digest,
    size: u64,
    parts: Vec<Part>,
    /// The ETag the parts were fetched under (when the server sent one).
    etag: Option<String>,
    /// The bundle's temp folder (for the record's atomic writes).
    tmp_dir: PathBuf,
    /// The record of a download in several parts; none for one stream (the file's length is
    /// its progress then).
    record: Option<Record>,
}

/// The `.parts` file: a header, then one fixed-width line per part, updated in place.
#[derive(Debug)]
struct Record {
    file: File,
    path: PathBuf,
    /// Where the first part's line starts.
    lines_at: u64,
    /// Per part: its `done` as last written to the record.
    recorded: Vec<u64>,
}

/// `start end done\n`, each 20 digits.
const LINE: u64 = 63;
const MAGIC: &str = "ferry partial download, in parts: v1";

impl Record {
    fn text(size: u64, etag: Option<&str>, parts: &[Part]) -> (String, u64) {
        let etag = etag.map_or("-".to_owned(), |e| hex::encode(e.as_bytes()));
        let header = format!("{MAGIC}\nsize {size:020}\netag {etag}\n");
        let lines_at = header.len() as u64;
        let mut text = header;
        for p in parts {
            text.push_str(&format!("{:020} {:020} {:020}\n", p.start, p.end, p.done));
        }
        (text, lines_at)
    }

    /// Parses a record for a blob of `size` bytes: the parts must tile `[0, size)` in order.
    fn parse(text: &str, size: u64) -> Option<(Option<String>, Vec<Part>, u64)> {
        let mut lines = text.split_inclusive('\n');
        let mut lines_at = 0u64;
        let mut header = |prefix: &str| {
            let line = lines.next()?;
            lines_at += line.len() as u64;
            line.strip_suffix('\n')?
                .strip_prefix(prefix)
                .map(str::to_owned)
        };
        header(MAGIC)?.is_empty().then_some(())?;
        let declared: u64 = number(&header("size ")?)?;
        let etag = header("etag ")?;
        let etag = match etag.as_str() {
            "-" => None,
            hexed => Some(String::from_utf8(hex::decode(hexed).ok()?).ok()?),
        };
        let body = &text[lines_at as usize..];
        if declared != size || !(body.len() as u64).is_multiple_of(LINE) {
            return None;
        }
        let mut parts = Vec::new();
        for line in body.as_bytes().chunks(LINE as usize) {
            let line = std::str::from_utf8(line).ok()?.strip_suffix('\n')?;
            let mut fields = line.split(' ');
            let mut field = || fields.next().filter(|f| f.len() == 20).and_then(number);
            let (start, end, done) = (field()?, field()?, field()?);
            parts.push(Part { start, end, done });
        }
        let tiles = parts.first().is_some_and(|p| p.start == 0)
            && parts.last().is_some_and(|p| p.end == size)
            && parts.windows(2).all(|w| w[0].end == w[1].start)
            && parts
                .iter()
                .all(|p| p.start < p.end && p.done <= p.end - p.start);
        (tiles && parts.len() <= MAX_PARTS).then_some((etag, parts, lines_at))
    }

    /// Writes part `i`'s progress into its line: one small write in place, which a kill cannot
    /// tear (it is done after the data it counts, so it never claims bytes not written).
    fn note(&mut self, i: usize, part: &Part) -> Result<(), StoreError> {
        let at = self.lines_at + i as u64 * LINE + 42;
        self.file
            .write_all_at(format!("{:020}", part.done).as_bytes(), at)
            .map_err(StoreError::io("write", &self.path))?;
        self.recorded[i] = part.done;
        Ok(())
    }
}

/// Digits only (a sign or space is refused), as u64.
fn number(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl PartialDownload {
    /// Opens (or starts) the partial download of `digest`: from its record when it has one
    /// that holds up, else as one stream whose progress is the file's length. A file longer
    /// than `size`, or a record that does not hold up, is started over.
    pub(super) fn open(
        layout: &Layout,
        digest: Digest,
        size: u64,
    ) -> Result<PartialDownload, StoreError> {
        let path = layout.partial_path(&digest);
        let file = open_no_follow(&path, true)?;
        let len = file
            .metadata()
            .map_err(StoreError::io("stat", &path))?
            .len();
        let record_path = record_path(&path);
        let mut d = PartialDownload {
            file,
            path,
            dest: layout.blob_path(&digest),
            digest,
            size,
            parts: vec![Part {
                start: 0,
                end: size,
                done: 0,
            }],
            etag: None,
            tmp_dir: layout.tmp_dir(),
            record: None,
        };
        match read_record(&record_path, size)? {
            Some((etag, mut parts, lines_at)) if len <= size => {
                // Bytes the record claims past the file's end were never written.
                for p in &mut parts {
                    p.done = p.done.min(len.saturating_sub(p.start));
                }
                d.adopt(record_path, lines_at, parts, etag)?;
            }
            found => {
                if found.is_some() || len > size || record_path.symlink_metadata().is_ok() {
                    // Not ours to trust: start over.
                    d.file
                        .set_len(0)
                        .map_err(StoreError::io("truncate", &d.path))?;
                    remove_record(&record_path)?;
                } else {
                    d.parts[0].done = len;
                }
            }
        }
        Ok(d)
    }

    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The data file (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The blob's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The parts and their progress (one part covering the blob for a single stream).
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The ETag the parts on disk were fetched under, when known.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// Bytes on disk, over all parts.
    pub fn bytes_done(&self) -> u64 {
        self.parts.iter().map(|p| p.done).sum()
    }

    /// How many bytes from 0 on are on disk without a gap: what can be hashed.
    pub fn contiguous(&self) -> u64 {
        contiguous(self.parts.iter().map(|p| (p.next(), p.left())))
    }

    /// A second handle on the data file, for hashing what is written (positioned reads).
    pub fn reader(&self) -> Result<File, StoreError> {
        self.file
            .try_clone()
            .map_err(StoreError::io("open", &self.path))
    }

    /// Splits the download into `parts` (from [`plan_parts`], keeping what is on disk) fetched
    /// under `etag`, and writes their record (atomically) before any part writes a byte.
    pub fn split(&mut self, parts: Vec<Part>, etag: Option<String>) -> Result<(), StoreError> {
        let (text, lines_at) = Record::text(self.size, etag.as_deref(), &parts);
        let record_path = record_path(&self.path);
        crate::fsutil::write_atomic(&record_path, text.as_bytes(), Some(&self.tmp_dir))?;
        self.adopt(record_path, lines_at, parts, etag)
    }

    /// Takes `parts` (and the record at `path` that holds them) as this download's.
    fn adopt(
        &mut self,
        path: PathBuf,
        lines_at: u64,
        parts: Vec<Part>,
        etag: Option<String>,
    ) -> Result<(), StoreError> {
        let file = open_no_follow(&path, false)?;
        self.record = Some(Record {
            file,
            path,
            lines_at,
            recorded: parts.iter().map(|p| p.done).collect(),
        });
        self.parts = parts;
        self.etag = etag;
        Ok(())
    }

    /// Back to one stream: drops every byte past the contiguous prefix (the parts' later bytes
    /// are fetched again by that stream) and the record. Returns the prefix.
    pub fn collapse(&mut self) -> Result<u64, StoreError> {
        let prefix = self.contiguous();
        self.file
            .set_len(prefix)
            .map_err(StoreError::io("truncate", &self.path))?;
        if let Some(r) = self.record.take() {
            remove_record(&r.path)?;
        }
        self.parts = vec![Part {
            start: 0,
            end: self.size,
            done: prefix,
        }];
        self.etag = None;
        Ok(prefix)
    }

    /// Writes `bytes` at the next offset of part `i`. Returns the offset written at.
    pub fn write(&mut self, i: usize, bytes: &[u8]) -> Result<u64, StoreError> {
        let part = self.parts[i];
        let n = bytes.len() as u64;
        if n > part.left() {
            // The fetch side cuts every body at its range: this is a bug, not a registry's lie.
            return Err(StoreError::io("write", &self.path)(std::io::Error::other(
                "more bytes than the part's range",
            )));
        }
        self.file
            .write_all_at(bytes, part.next())
            .map_err(StoreError::io("write", &self.path))?;
        self.parts[i].done += n;
        if let Some(r) = &mut self.record
            && (self.parts[i].done - r.recorded[i] >= RECORD_EVERY || self.parts[i].left() == 0)
        {
            r.note(i, &self.parts[i])?;
        }
        Ok(part.next())
    }

    /// Brings the record up to date with every byte written (the writer calls this whenever it
    /// has caught up with the network, so a kill then loses nothing written).
    pub fn note_progress(&mut self) -> Result<(), StoreError> {
        if let Some(r) = &mut self.record {
            for (i, p) in self.parts.iter().enumerate() {
                if r.recorded[i] != p.done {
                    r.note(i, p)?;
                }
            }
        }
        Ok(())
    }

    /// Throws everything away (content that failed its digest): the next attempt starts at 0.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.path);
        if let Some(r) = &self.record {
            let _ = fs::remove_file(&r.path);
        }
    }

    /// Checks `hasher` (fed every byte of the file, in order) against digest and size. On a
    /// match the file is synced and renamed into `blobs/` (`stage` false), or handed over for
    /// [`Layout::land`] (`stage` true). On a mismatch the download is discarded and the
    /// mismatch returned.
    pub fn finish(self, hasher: Hasher, stage: bool) -> Result<Option<StagedBlob>, StoreError> {
        if let Err(source) = digest::check(hasher, &self.digest, Some(self.size)) {
            let digest = self.digest.clone();
            self.discard();
            return Err(StoreError::Mismatch { digest, source });
        }
        if let Some(r) = &self.record {
            // The parts are all there: the record has nothing left to say.
            remove_record(&r.path)?;
        }
        let staged = StagedBlob::kept(self.file, self.path, self.dest, self.digest);
        if stage {
            return Ok(Some(staged));
        }
        staged.commit()?;
        Ok(None)
    }
}

/// `<partial>.parts`.
fn record_path(partial: &Path) -> PathBuf {
    let mut name = partial.file_name().expect("a file name").to_owned();
    name.push(".parts");
    partial.with_file_name(name)
}

/// Opens a file of the partial area, never through a link planted at its name, and only a
/// regular file (`create` for the data file, which may not exist yet).
fn open_no_follow(path: &Path, create: bool) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(StoreError::io("open", path))?;
    if !file
        .metadata()
        .map_err(StoreError::io("stat", path))?
        .is_file()
    {
        return Err(StoreError::NotARegularFile {
            path: path.to_path_buf(),
            what: "not a regular file",
        });
    }
    Ok(file)
}

/// Reads and parses a record: none when absent or not a regular file of sane size; `Some`
/// with nothing usable inside is returned as a parse failure by the caller's match.
#[allow(clippy::type_complexity)]
fn read_record(
    path: &Path,
    size: u64,
) -> Result<Option<(Option<String>, Vec<Part>, u64)>, StoreError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // A link or something else planted there: not a record of ours.
        Err(_) => return Ok(None),
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let mut text = String::new();
    let cap = 4096 + LINE * MAX_PARTS as u64;
    if file.take(cap + 1).read_to_string(&mut text).is_err() || text.len() as u64 > cap {
        return Ok(None);
    }
    Ok(Record::parse(&text, size))
}

fn remove_record(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::io("remove", path)(e))
        }
        _ => Ok(()),
    }
}

impl Layout {
    /// Opens (or starts) the resumable download of a blob: its parts and how far each got.
    pub fn partial_download(
        &self,
        digest: &Digest,
        size: u64,
    ) -> Result<PartialDownload, StoreError> {
        PartialDownload::open(self, digest.clone(), size)
    }

    /// Bytes a resumable partial download of `digest` holds (0 when none, or when what is
    /// there is not a regular file of at most `size` bytes, which a run starts over).
    pub fn partial_len(&self, digest: &Digest, size: u64) -> u64 {
        let path = self.partial_path(digest);
        let len = fs::symlink_metadata(&path)
            .ok()
            .filter(|m| m.is_file() && m.len() <= size)
            .map_or(0, |m| m.len());
        match read_record(&record_path(&path), size) {
            Ok(Some((_, parts, _))) => parts
                .iter()
                .map(|p| p.done.min(len.saturating_sub(p.start)))
                .sum(),
            _ => len,
        }
    }

    /// Removes the partial download of `digest` (and its record), if any.
    pub fn remove_partial(&self, digest: &Digest) {
        let path = self.partial_path(digest);
        let _ = fs::remove_file(record_path(&path));
        let _ = fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests;
