//! The base tar seen through a window that only moves forward (so it is read once, as a
//! stream, and memory stays bounded whatever the layer's size), and the tar headers that tell
//! where a file of the new tar sat in the old one (to place each window).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Read};

/// A forward-only view of a stream: bytes before the last window asked for are dropped.
pub struct Window<R> {
    reader: R,
    buf: Vec<u8>,
    /// Offset of `buf[0]` in the stream.
    start: u64,
}

impl<R: Read> Window<R> {
    /// A window on `reader` at offset 0.
    pub fn new(reader: R) -> Window<R> {
        Window {
            reader,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// Bytes `[from, from + len)` of the stream. `from` never goes back.
    pub fn slice(&mut self, from: u64, len: usize) -> io::Result<&[u8]> {
        if from < self.start {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the patch reads its base tar backwards",
            ));
        }
        let drop = ((from - self.start) as usize).min(self.buf.len());
        self.buf.drain(..drop);
        self.start += drop as u64;
        if self.start < from {
            let skip = from - self.start;
            let skipped = io::copy(&mut (&mut self.reader).take(skip), &mut io::sink())?;
            self.start += skipped;
            if skipped < skip {
                return Err(short());
            }
        }
        if self.buf.len() < len {
            // read_to_end fills spare capacity: no zeroing of a large buffer per small read
            // (a decoder returns 32 KiB at a time).
            let want = (len - self.buf.len()) as u64;
            (&mut self.reader).take(want).read_to_end(&mut self.buf)?;
            if self.buf.len() < len {
                return Err(short());
            }
        }
        Ok(&self.buf[..len])
    }

    /// Reads the stream to its end; how many bytes it held in all.
    pub fn finish(mut self) -> io::Result<u64> {
        let rest = io::copy(&mut self.reader, &mut io::sink())?;
        Ok(self.start + self.buf.len() as u64 + rest)
    }
}

fn short() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the base layer's tar ends before the patch expects",
    )
}

/// Finds tar headers in a stream fed piece by piece: each file's name (as a hash) and the
/// offset of its header. Only a hint for placing windows, never trusted for content, so it
/// stops quietly at anything that is not a well-formed ustar header. (The `tar` crate wants
/// to own the reader and to read every member; this needs only header offsets, as bytes flow
/// past.)
#[derive(Default)]
pub struct TarScanner {
    /// Bytes fed so far.
    pos: u64,
    /// Where the next header starts.
    next: u64,
    /// The start of a header cut by the end of the last piece.
    pending: Vec<u8>,
    stopped: bool,
}

impl TarScanner {
    /// Feeds the next piece; calls `found(name_hash, header_offset)` for each header in it.
    pub fn feed(&mut self, piece: &[u8], found: &mut impl FnMut(u64, u64)) {
        // `pending` holds the bytes [next, base) of a header the last piece cut.
        let base = self.pos;
        self.pos += piece.len() as u64;
        while !self.stopped {
            let header: [u8; 512] = if self.pending.is_empty() {
                if self.next >= self.pos {
                    return;
                }
                let at = (self.next - base) as usize;
                if piece.len() - at < 512 {
                    self.pending = piece[at..].to_vec();
                    return;
                }
                piece[at..at + 512].try_into().expect("512 bytes")
            } else {
                let need = 512 - self.pending.len();
                if piece.len() < need {
                    self.pending.extend_from_slice(piece);
                    return;
                }
                self.pending.extend_from_slice(&piece[..need]);
                std::mem::take(&mut self.pending)
                    .try_into()
                    .expect("512 bytes")
            };
            match parse_header(&header) {
                Some((key, size)) => {
                    found(key, self.next);
                    self.next += 512 + size.div_ceil(512) * 512;
                }
                None => self.stopped = true,
            }
        }
    }
}

/// A ustar header's name hash and member size; `None` for anything else (the end blocks too).
fn parse_header(h: &[u8; 512]) -> Option<(u64, u64)> {
    let stored = octal(&h[148..156])?;
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    if sum != stored || &h[257..262] != b"ustar" {
        return None;
    }
    let size = if h[124] & 0x80 != 0 {
        // GNU base-256 for sizes of 8 GiB and more.
        h[125..136].iter().fold(0u64, |n, b| {
            n.saturating_mul(256).saturating_add(u64::from(*b))
        })
    } else {
        octal(&h[124..136])?
    };
    let field = |f: &[u8]| f.split(|b| *b == 0).next().unwrap_or_default().to_vec();
    let mut hasher = DefaultHasher::new();
    (field(&h[345..500]), field(&h[..100]), h[156]).hash(&mut hasher);
    Some((hasher.finish(), size))
}

fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// Where each file's header sits in a tar (first occurrence).
pub fn index_of(reader: impl Read) -> io::Result<(HashMap<u64, u64>, u64)> {
    let mut reader = reader;
    let mut scanner = TarScanner::default();
    let mut index = HashMap::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok((index, total));
        }
        total += n as u64;
        scanner.feed(&buf[..n], &mut |key, at| {
            index.entry(key).or_insert(at);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, usize)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, size) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(*size as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, &vec![7u8; *size][..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn headers_are_found_however_the_stream_is_cut() {
        let tar = tar_of(&[("a", 10), ("dir/b", 1000), ("c", 0), ("d", 513)]);
        let (whole, total) = index_of(&tar[..]).unwrap();
        assert_eq!(total, tar.len() as u64);
        let mut offsets: Vec<u64> = whole.values().copied().collect();
        offsets.sort();
        assert_eq!(offsets, vec![0, 1024, 2560, 3072]);
        for cut in [1, 7, 100, 511, 512, 513, 1000] {
            let mut scanner = TarScanner::default();
            let mut got = HashMap::new();
            for piece in tar.chunks(cut) {
                scanner.feed(piece, &mut |k, at| {
                    got.entry(k).or_insert(at);
                });
            }
            assert_eq!(got, whole, "pieces of {cut}");
        }
        let (none, _) = index_of(&[1u8; 2048][..]).unwrap();
        assert!(none.is_empty(), "no header in noise");
    }

    #[test]
    fn a_window_moves_forward_only() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut w = Window::new(&data[..]);
        assert_eq!(w.slice(10, 5).unwrap(), &data[10..15]);
        assert_eq!(w.slice(50_000, 1000).unwrap(), &data[50_000..51_000]);
        assert_eq!(w.slice(50_500, 10).unwrap(), &data[50_500..50_510]);
        assert!(w.slice(10, 5).is_err(), "backwards");
        assert!(w.slice(99_990, 100).is_err(), "past the end");
        let w = Window::new(&data[..]);
        assert_eq!(w.finish().unwrap(), 100_000);
    }
}
