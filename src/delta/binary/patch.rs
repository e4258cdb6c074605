//! One segment of the new tar as a zstd frame against a window of the base tar (zstd's
//! `--patch-from`, with the window as the frame's reference prefix and long-distance matching
//! on), and where each window goes.

use std::collections::HashMap;
use std::io;

use zstd::zstd_safe::{CCtx, CParameter, DCtx, DParameter};

use super::format::Record;
use super::window::TarScanner;

/// Bytes of new plain tar per segment (a gzip layer's segments follow preflate's chunks, of at
/// most this much).
pub const SEGMENT: usize = 16 << 20;
/// The window reaches this far before and after the segment's place in the base tar: the
/// patch window is SEGMENT + 2 × MARGIN = 32 MiB of base tar around where the segment's files
/// sat in the base (found by their names).
const MARGIN: u64 = 8 << 20;
/// zstd level of the frames: the bytes are mostly long matches into the window, which every
/// level finds; measured, level 3 is as small as 9 on a Debian layer, at a third of the time.
const LEVEL: i32 = 3;

fn zstd_error(what: &str, code: usize) -> io::Error {
    io::Error::other(format!("{what}: {}", zstd::zstd_safe::get_error_name(code)))
}

/// Compresses `plain` against `reference`.
pub fn encode(reference: &[u8], plain: &[u8]) -> io::Result<Vec<u8>> {
    let span = (reference.len() + plain.len()).max(1 << 20);
    let window_log = (usize::BITS - (span - 1).leading_zeros()).clamp(20, 30);
    let mut cctx = CCtx::create();
    let set = |c: &mut CCtx, p| {
        c.set_parameter(p)
            .map(drop)
            .map_err(|e| zstd_error("zstd", e))
    };
    set(&mut cctx, CParameter::CompressionLevel(LEVEL))?;
    set(&mut cctx, CParameter::EnableLongDistanceMatching(true))?;
    set(&mut cctx, CParameter::WindowLog(window_log))?;
    cctx.ref_prefix(reference)
        .map_err(|e| zstd_error("zstd prefix", e))?;
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(plain.len()));
    cctx.compress2(&mut out, plain)
        .map_err(|e| zstd_error("zstd", e))?;
    Ok(out)
}

/// Decodes one frame against `reference`: exactly `plain_len` bytes or an error.
pub fn decode(reference: &[u8], frame: &[u8], plain_len: usize) -> io::Result<Vec<u8>> {
    let mut dctx = DCtx::create();
    dctx.set_parameter(DParameter::WindowLogMax(31))
        .map_err(|e| zstd_error("zstd", e))?;
    dctx.ref_prefix(reference)
        .map_err(|e| zstd_error("zstd prefix", e))?;
    let mut out = Vec::with_capacity(plain_len);
    let n = dctx
        .decompress(&mut out, frame)
        .map_err(|e| zstd_error("the patch's zstd frame", e))?;
    if n != plain_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a patch frame decodes to another length than its record says",
        ));
    }
    Ok(out)
}

/// Places each segment's window: where the first file of the segment that the base tar also
/// holds sat in the base, less a margin; never backwards (the base is read once).
pub struct Placer {
    /// Name hash -> header offset in the base tar.
    base_index: HashMap<u64, u64>,
    base_size: u64,
    scanner: TarScanner,
    /// Bytes of new tar placed so far.
    offset: u64,
    /// Base offset minus new offset, from the last file found in both.
    drift: i128,
    last_start: u64,
}

impl Placer {
    /// A placer for a base tar of `base_size` bytes whose headers are `base_index`.
    pub fn new(base_index: HashMap<u64, u64>, base_size: u64) -> Placer {
        Placer {
            base_index,
            base_size,
            scanner: TarScanner::default(),
            offset: 0,
            drift: 0,
            last_start: 0,
        }
    }

    /// The record for the next `plain` bytes of new tar, its frame not yet made:
    /// `(ref_start, ref_len)` filled in.
    pub fn place(&mut self, plain: &[u8]) -> Record {
        let start = self.offset;
        let mut first = None;
        let index = &self.base_index;
        self.scanner.feed(plain, &mut |key, at| {
            if first.is_none()
                && let Some(old) = index.get(&key)
            {
                first = Some(i128::from(*old) - i128::from(at));
            }
        });
        self.offset += plain.len() as u64;
        if let Some(drift) = first {
            self.drift = drift;
        }
        let center = i128::from(start) + self.drift;
        let size = i128::from(self.base_size);
        let from = (center - i128::from(MARGIN)).clamp(0, size) as u64;
        let from = from.max(self.last_start).min(self.base_size);
        let to = (center + plain.len() as i128 + i128::from(MARGIN)).clamp(0, size) as u64;
        let to = to.max(from);
        self.last_start = from;
        Record {
            plain_len: plain.len() as u32,
            ref_start: from,
            ref_len: (to - from) as u32,
            ..Record::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_against_its_window_is_small_and_decodes() {
        let mut rng = fastrand::Rng::with_seed(7);
        let old: Vec<u8> = (0..4_000_000).map(|_| rng.u8(..)).collect();
        let mut new = old.clone();
        new[1_000_000..1_000_100].fill(0);
        let frame = encode(&old, &new).unwrap();
        assert!(frame.len() < 10_000, "{} bytes", frame.len());
        assert_eq!(decode(&old, &frame, new.len()).unwrap(), new);
        assert!(
            decode(&old, &frame, new.len() - 1).is_err(),
            "another length"
        );
        let mut other = old.clone();
        other[5] ^= 1;
        assert_ne!(
            decode(&other, &frame, new.len()).ok(),
            Some(new),
            "another base"
        );
    }
}
