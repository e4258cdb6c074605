//! The patch blob: what rebuilds one layer from a base layer, byte for byte.
//!
//! ```text
//! "ferry-bindelta\0" 0x01            magic and format version (16 bytes)
//! u32 LE length, JSON Header         how the layer and its base are compressed, their sizes,
//!                                    the gzip header and trailer bytes or the zstd parameters
//! records, each:
//!   'S' u32 plain_len u64 ref_start u32 ref_len u32 frame_len u32 corrections_len
//!       frame        the next plain_len bytes of the new tar: one zstd frame whose reference
//!                    prefix is the base tar's bytes [ref_start, ref_start + ref_len)
//!       corrections  preflate's correction for those bytes (gzip layers; else empty)
//! 'E'                                the end
//! ```
//! Everything in it is untrusted on the far side: every length is bounded before anything is
//! allocated, reference windows may only move forward (the base tar is read once, as a stream),
//! and the rebuilt layer counts only if its digest matches.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Magic and format version at the start of a patch blob.
pub const MAGIC: &[u8; 16] = b"ferry-bindelta\0\x01";
/// Largest header accepted.
const MAX_HEADER: u32 = 64 << 10;
/// Largest plain segment or reference window a record may name: what bounds memory on both
/// sides (a segment, its window and the decoded bytes are held at once).
pub const MAX_SEGMENT: u32 = 64 << 20;
/// Largest correction per record.
const MAX_CORRECTIONS: u32 = 64 << 20;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (one member).
    Gzip,
    /// zstd (one frame).
    Zstd,
    /// A plain tar.
    None,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "uncompressed",
        })
    }
}

/// The gzip member's bytes around the DEFLATE stream, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GzipFrame {
    /// The header (10 bytes and any optional fields), hex.
    pub header: String,
    /// CRC-32 and size, hex.
    pub trailer: String,
}

/// The libzstd settings that recompress the plain tar to the exact layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZstdParams {
    /// Compression level.
    pub level: i32,
    /// Whether the frame carries a checksum.
    pub checksum: bool,
    /// Whether the frame header carries the content size (the size was pledged).
    pub content_size: bool,
    /// The libzstd version that proved it (another may compress differently).
    pub library: String,
}

/// What the patch rebuilds and from what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// How the new layer is compressed.
    pub compression: Compression,
    /// How the base layer is compressed.
    pub base_compression: Compression,
    /// The new layer's size.
    pub layer_size: u64,
    /// The new layer's plain tar size.
    pub tar_size: u64,
    /// The base layer's plain tar size.
    pub base_tar_size: u64,
    /// For a gzip layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip: Option<GzipFrame>,
    /// For a zstd layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd: Option<ZstdParams>,
}

/// One segment of the new plain tar.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Bytes of plain tar the frame decodes to.
    pub plain_len: u32,
    /// Where the reference window starts in the base tar.
    pub ref_start: u64,
    /// Its length.
    pub ref_len: u32,
    /// The zstd frame.
    pub frame: Vec<u8>,
    /// preflate's correction (gzip).
    pub corrections: Vec<u8>,
}

/// Writes the magic and the header.
pub fn write_header(out: &mut (impl Write + ?Sized), header: &Header) -> io::Result<()> {
    let json = serde_json::to_vec(header).expect("a header serializes");
    out.write_all(MAGIC)?;
    out.write_all(&(json.len() as u32).to_le_bytes())?;
    out.write_all(&json)
}

/// Writes one record.
pub fn write_record(out: &mut (impl Write + ?Sized), r: &Record) -> io::Result<()> {
    out.write_all(b"S")?;
    out.write_all(&r.plain_len.to_le_bytes())?;
    out.write_all(&r.ref_start.to_le_bytes())?;
    out.write_all(&r.ref_len.to_le_bytes())?;
    out.write_all(&(r.frame.len() as u32).to_le_bytes())?;
    out.write_all(&(r.corrections.len() as u32).to_le_bytes())?;
    out.write_all(&r.frame)?;
    out.write_all(&r.corrections)
}

/// Writes the end mark.
pub fn write_end(out: &mut (impl Write + ?Sized)) -> io::Result<()> {
    out.write_all(b"E")
}

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

fn u32_of(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn bytes_of(r: &mut impl Read, len: u32) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(len.into()).read_to_end(&mut v)?;
    if v.len() != len as usize {
        return Err(bad("the patch ends inside a record"));
    }
    Ok(v)
}

/// Reads and checks the magic and the header.
pub fn read_header(r: &mut impl Read) -> io::Result<Header> {
    let mut magic = [0u8; 16];
    r.read_exact(&mut magic)?;
    if magic[..15] == MAGIC[..15] && magic[15] != MAGIC[15] {
        return Err(bad(format!(
            "patch format {} is not supported by this ferry (it reads format {})",
            magic[15], MAGIC[15]
        )));
    }
    if &magic != MAGIC {
        return Err(bad("not a ferry binary-delta patch"));
    }
    let len = u32_of(r)?;
    if len > MAX_HEADER {
        return Err(bad("the patch header is too large"));
    }
    let json = bytes_of(r, len)?;
    serde_json::from_slice(&json).map_err(|e| bad(format!("patch header: {e}")))
}

/// Reads the next record; `None` at the end mark.
pub fn read_record(r: &mut impl Read) -> io::Result<Option<Record>> {
    let mut tag = [0u8; 1];
    r.read_exact(&mut tag)?;
    match tag[0] {
        b'E' => return Ok(None),
        b'S' => {}
        _ => return Err(bad("the patch holds an unknown record")),
    }
    let plain_len = u32_of(r)?;
    let mut start = [0u8; 8];
    r.read_exact(&mut start)?;
    let ref_len = u32_of(r)?;
    let frame_len = u32_of(r)?;
    let corrections_len = u32_of(r)?;
    if plain_len > MAX_SEGMENT || ref_len > MAX_SEGMENT || frame_len > MAX_SEGMENT + (1 << 20) {
        return Err(bad("a patch record is larger than this ferry reads"));
    }
    if corrections_len > MAX_CORRECTIONS {
        return Err(bad("a patch correction is larger than this ferry reads"));
    }
    Ok(Some(Record {
        plain_len,
        ref_start: u64::from_le_bytes(start),
        ref_len,
        frame: bytes_of(r, frame_len)?,
        corrections: bytes_of(r, corrections_len)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_records_round_trip_and_bad_input_is_refused() {
        let header = Header {
            compression: Compression::Gzip,
            base_compression: Compression::Zstd,
            layer_size: 10,
            tar_size: 20,
            base_tar_size: 30,
            gzip: Some(GzipFrame {
                header: "1f8b".into(),
                trailer: "00".into(),
            }),
            zstd: None,
        };
        let record = Record {
            plain_len: 5,
            ref_start: 7,
            ref_len: 9,
            frame: vec![1, 2, 3],
            corrections: vec![4],
        };
        let mut buf = Vec::new();
        write_header(&mut buf, &header).unwrap();
        write_record(&mut buf, &record).unwrap();
        write_end(&mut buf).unwrap();
        let mut r = &buf[..];
        assert_eq!(read_header(&mut r).unwrap(), header);
        let back = read_record(&mut r).unwrap().unwrap();
        assert_eq!((back.plain_len, back.ref_start, back.ref_len), (5, 7, 9));
        assert_eq!((back.frame, back.corrections), (vec![1, 2, 3], vec![4]));
        assert!(read_record(&mut r).unwrap().is_none());

        let mut newer = buf.clone();
        newer[15] = 2;
        let e = read_header(&mut &newer[..]).unwrap_err();
        assert!(e.to_string().contains("format 2 is not supported"), "{e}");
        let cut = &buf[..buf.len() - 3];
        let mut r = cut;
        read_header(&mut r).unwrap();
        assert!(
            read_record(&mut r).is_err(),
            "a record cut short is refused"
        );
    }
}
