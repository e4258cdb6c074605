//! Binary deltas (`bundle --since BASE --binary-deltas`): a changed layer crosses as a patch
//! against a layer BASE holds, and `apply` rebuilds it byte for byte.
//!
//! The patch is the new plain tar as zstd frames against windows of the base's plain tar
//! (zstd's `--patch-from`), plus what remakes the compressed blob exactly: preflate's
//! correction for gzip, the libzstd settings for zstd, nothing for a plain tar. The near side
//! rebuilds every patched layer once and keeps the patch only when the digest comes out right
//! and the patch is at most half the layer; otherwise the layer ships whole. Patches are blobs
//! of the delta (`blobs/sha256/<hex>`, so every reader checks them), listed in
//! ferry-delta.json under `patched`, which makes the delta version 2 (a ferry that reads only
//! version 1 refuses it).

mod choose;
pub mod codec;
pub mod format;
mod make;
mod patch;
mod rebuild;
mod window;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use format::Compression;

use crate::digest::{Digest, Hasher};
use crate::store::{BlobWriter, BundleSource, Layout, StagedBlob, StoreError, WORK_DIR};

/// A layer a delta carries as a patch (an entry of ferry-delta.json's `patched`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patched {
    /// The layer's size.
    pub size: u64,
    /// The base layer the patch applies to.
    pub base: Digest,
    /// Its size.
    pub base_size: u64,
    /// The patch blob.
    pub patch: Digest,
    /// Its size.
    pub patch_size: u64,
    /// How the layer is compressed.
    pub compression: Compression,
}

/// How a changed layer crosses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shipped {
    /// As a patch.
    Patched(Patched),
    /// Whole, and why.
    Whole(String),
}

/// What `--binary-deltas` did with one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOutcome {
    /// The layer.
    pub layer: Digest,
    /// Its size.
    pub size: u64,
    /// How it crosses.
    pub shipped: Shipped,
}

/// Turns each layer of the delta `out` that BASE lacks into a patch where that is exact and
/// pays (see the module doc and [`choose`] for the rule picking the base layer), recording
/// each in `marker` (written after each patch lands, before the whole layer is removed: a
/// crash leaves both, which apply and verify accept). `on_layer` is told of each layer.
pub fn make_patches(
    out: &Layout,
    base: &dyn BundleSource,
    marker: &mut super::Marker,
    on_layer: &dyn Fn(&LayerOutcome),
) -> Result<Vec<LayerOutcome>, StoreError> {
    let base_slots: Vec<choose::Slot> = choose::slots(base)
        .into_iter()
        .filter(|s| base.has_blob(&s.digest, s.size))
        .collect();
    let mut done = Vec::new();
    for slot in choose::slots(out) {
        let fresh = out.has_blob(&slot.digest, slot.size)
            && !marker.base_blobs.contains_key(&slot.digest)
            && !marker.patched.contains_key(&slot.digest)
            && !done.iter().any(|o: &LayerOutcome| o.layer == slot.digest);
        if !fresh {
            continue;
        }
        let shipped = match choose::base_for(&slot, &base_slots) {
            None => Shipped::Whole("no layer of the base to patch against".into()),
            Some(b) => patch_one(out, base, &slot, b)?,
        };
        if let Shipped::Patched(p) = &shipped {
            marker.patched.insert(slot.digest.clone(), p.clone());
            marker.write(out)?;
            let path = out.blob_path(&slot.digest);
            fs::remove_file(&path).map_err(StoreError::io("remove", &path))?;
        }
        let outcome = LayerOutcome {
            layer: slot.digest,
            size: slot.size,
            shipped,
        };
        on_layer(&outcome);
        done.push(outcome);
    }
    Ok(done)
}

/// A reader of a blob of `source` (checked against its digest as it is read).
fn blob_reader(
    source: &dyn BundleSource,
    digest: &Digest,
    size: u64,
) -> io::Result<Box<dyn Read + Send>> {
    let blob = source
        .open_blob(digest, Some(size))
        .map_err(io::Error::other)?;
    Ok(Box::new(blob.reader()?))
}

/// Bytes passed through, hashed and counted.
struct HashSink(Hasher);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A temp file in the bundle's work folder, removed when dropped.
struct TempFile {
    path: PathBuf,
    file: File,
}

impl TempFile {
    fn create(layout: &Layout, what: &str) -> Result<TempFile, StoreError> {
        let dir = layout.root().join(WORK_DIR).join("tmp");
        fs::create_dir_all(&dir).map_err(StoreError::io("create", &dir))?;
        let path = dir.join(format!(
            "bindelta-{what}.{}.{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(StoreError::io("create", &path))?;
        Ok(TempFile { path, file })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Makes, proves and stores the patch of `new` against `old`; or why the layer ships whole.
fn patch_one(
    out: &Layout,
    base: &dyn BundleSource,
    new: &choose::Slot,
    old: &choose::Slot,
) -> Result<Shipped, StoreError> {
    let mut records = TempFile::create(out, "records")?;
    let io_err = |e: io::Error| StoreError::io("make the patch in", &records.path)(e);
    let open_new = || blob_reader(out, &new.digest, new.size);
    let open_old = || blob_reader(base, &old.digest, old.size);
    let new_input = make::Input {
        open: &open_new,
        media_type: &new.media_type,
        size: new.size,
    };
    let old_input = make::Input {
        open: &open_old,
        media_type: &old.media_type,
        size: old.size,
    };
    let made = {
        let mut w = BufWriter::new(&mut records.file);
        let made = make::make_patch(&new_input, &old_input, new.size / 2, &mut w);
        let flushed = w.flush();
        made.and_then(|m| flushed.map(|()| m))
    };
    let header = match made {
        Ok(Ok(header)) => header,
        Ok(Err(why)) => return Ok(Shipped::Whole(why)),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Ok(Shipped::Whole(format!("cannot be patched: {e}")));
        }
        Err(e) => return Err(io_err(e)),
    };
    let mut head = Vec::new();
    format::write_header(&mut head, &header).expect("into memory");
    let patch_reader = |f: &mut File| -> io::Result<_> {
        f.rewind()?;
        Ok(io::Cursor::new(head.clone()).chain(f.try_clone()?))
    };
    // The proof: the layer rebuilt from the patch, as apply will, must hash to its digest.
    let mut sink = HashSink(Hasher::new(new.digest.algorithm()));
    let rebuilt = patch_reader(&mut records.file)
        .and_then(|mut p| rebuild::rebuild(&mut p, open_old()?, &mut sink));
    if let Err(e) = rebuilt {
        return Ok(Shipped::Whole(format!("the rebuild failed: {e}")));
    }
    if sink.0.len() != new.size || sink.0.finish() != new.digest {
        return Ok(Shipped::Whole(
            "the rebuilt layer did not come out exact".into(),
        ));
    }
    let mut hasher = HashSink(Hasher::new(crate::digest::Algorithm::Sha256));
    io::copy(
        &mut patch_reader(&mut records.file).map_err(io_err)?,
        &mut hasher,
    )
    .map_err(io_err)?;
    let patch_size = hasher.0.len();
    let patch = hasher.0.finish();
    let mut writer = BlobWriter::create(out, patch.clone(), Some(patch_size))?;
    let mut reader = patch_reader(&mut records.file).map_err(io_err)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        writer.write(&buf[..n])?;
    }
    writer.commit()?;
    Ok(Shipped::Patched(Patched {
        size: new.size,
        base: old.digest.clone(),
        base_size: old.size,
        patch,
        patch_size,
        compression: header.compression,
    }))
}

/// `io::Write` over a blob writer.
struct ToBlob<'a>(&'a mut BlobWriter);

impl Write for ToBlob<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Rebuilds `layer` from its patch (in `delta`) and its base layer (in `base`) into a staged
/// blob of `into`: checked against the layer's digest and size, not yet in `blobs/` (the
/// caller lands it). A wrong patch or base gives an error, never a blob.
pub fn rebuild_layer(
    delta: &dyn BundleSource,
    base: &dyn BundleSource,
    into: &Layout,
    layer: &Digest,
    p: &Patched,
) -> Result<StagedBlob, String> {
    let mut writer =
        BlobWriter::create(into, layer.clone(), Some(p.size)).map_err(|e| e.to_string())?;
    let mut patch = blob_reader(delta, &p.patch, p.patch_size).map_err(|e| e.to_string())?;
    let base_layer = blob_reader(base, &p.base, p.base_size).map_err(|e| e.to_string())?;
    rebuild::rebuild(&mut patch, base_layer, &mut ToBlob(&mut writer))
        .map_err(|e| e.to_string())?;
    // Read to its end, so that the patch's own digest is checked too.
    io::copy(&mut patch, &mut io::sink()).map_err(|e| e.to_string())?;
    writer.stage().map_err(|e| e.to_string())
}
