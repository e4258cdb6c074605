//! What a layer's compression is, reading its plain tar, and the libzstd settings that make
//! a zstd layer again.

use std::io::{self, BufRead, BufReader, Read, Write};

use super::format::{Compression, ZstdParams};

/// The compression of a layer by its first bytes; `None` for a blob that is neither gzip nor
/// zstd unless its media type says it is a plain tar.
pub fn sniff(first: &[u8], media_type: &str) -> Option<Compression> {
    if first.starts_with(&[0x1f, 0x8b, 8]) {
        Some(Compression::Gzip)
    } else if first.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else if media_type.ends_with(".tar") || media_type.ends_with(".tar.v1") {
        Some(Compression::None)
    } else {
        None
    }
}

/// The plain tar inside a layer.
pub fn plain<'a>(
    compression: Compression,
    layer: impl Read + Send + 'a,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 20,
            layer,
        ))),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(layer)?;
            d.window_log_max(31)?;
            Box::new(d)
        }
        Compression::None => Box::new(layer),
    })
}

/// Reads a gzip member's header, returning its bytes verbatim.
pub fn gzip_header(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
    let mut head = vec![0u8; 10];
    r.read_exact(&mut head)?;
    if head[..3] != [0x1f, 0x8b, 8] {
        return Err(bad("not a gzip member"));
    }
    let flags = head[3];
    if flags & 0xe0 != 0 {
        return Err(bad("reserved gzip flags"));
    }
    if flags & 4 != 0 {
        let mut len = [0u8; 2];
        r.read_exact(&mut len)?;
        head.extend_from_slice(&len);
        let mut extra = vec![0u8; u16::from_le_bytes(len).into()];
        r.read_exact(&mut extra)?;
        head.extend_from_slice(&extra);
    }
    for flag in [8u8, 16] {
        if flags & flag != 0 {
            let mut text = Vec::new();
            (&mut *r).take(64 << 10).read_until(0, &mut text)?;
            if text.last() != Some(&0) {
                return Err(bad("gzip header text without its end"));
            }
            head.extend_from_slice(&text);
        }
    }
    if flags & 2 != 0 {
        let mut crc = [0u8; 2];
        r.read_exact(&mut crc)?;
        head.extend_from_slice(&crc);
    }
    Ok(head)
}

/// What a zstd frame header says: whether it holds the content size (and which) and a
/// checksum; `None` for what this cannot remake (a dictionary, a skippable frame first).
pub fn zstd_frame(first: &[u8]) -> Option<(Option<u64>, bool)> {
    let fhd = *first.get(4)?;
    if first[..4] != [0x28, 0xb5, 0x2f, 0xfd] || fhd & 3 != 0 {
        return None;
    }
    let single = fhd & 0x20 != 0;
    let checksum = fhd & 4 != 0;
    let at = 5 + usize::from(!single);
    let fcs = |n: usize| -> Option<u64> {
        let b = first.get(at..at + n)?;
        Some(b.iter().rev().fold(0u64, |v, x| v << 8 | u64::from(*x)))
    };
    let size = match (fhd >> 6, single) {
        (0, false) => None,
        (0, true) => Some(fcs(1)?),
        (1, _) => Some(fcs(2)? + 256),
        (2, _) => Some(fcs(4)?),
        _ => Some(fcs(8)?),
    };
    Some((size, checksum))
}

/// A libzstd encoder set up as `params` say, writing into `out`.
pub fn zstd_encoder<W: Write>(
    params: &ZstdParams,
    size: u64,
    out: W,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut e = zstd::stream::write::Encoder::new(out, params.level)?;
    e.include_checksum(params.checksum)?;
    e.include_contentsize(params.content_size)?;
    if params.content_size {
        e.set_pledged_src_size(Some(size))?;
    }
    Ok(e)
}

/// The libzstd linked in.
pub fn zstd_library() -> String {
    zstd::zstd_safe::version_string().to_owned()
}

/// The levels tried to find how a zstd layer was made: the default first.
const LEVELS: [i32; 19] = [
    3, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
];

/// Bytes of plain tar each level is tried on: the first frame blocks must come out the same.
const PROBE: usize = 1 << 20;

/// Finds libzstd settings whose output starts as the layer does (`head`: its first bytes;
/// `plain_head`: the first bytes of its plain tar, `size` the plain tar's size from the frame
/// header when it holds one). The whole layer is then rebuilt once to prove it.
pub fn probe_zstd(head: &[u8], plain_head: &[u8], size: Option<u64>) -> Option<ZstdParams> {
    let (_, checksum) = zstd_frame(head)?;
    let sample = &plain_head[..plain_head.len().min(PROBE)];
    let whole = size == Some(sample.len() as u64);
    for level in LEVELS {
        let params = ZstdParams {
            level,
            checksum,
            content_size: size.is_some(),
            library: zstd_library(),
        };
        let mut e = zstd_encoder(&params, size.unwrap_or(0), Vec::new()).ok()?;
        e.write_all(sample).ok()?;
        // Without a flush (which would end a block early): what the encoder has written is
        // final, and must be how the layer starts.
        let out = if whole {
            e.finish().ok()?
        } else {
            e.get_ref().clone()
        };
        if out.len() > 64 && head.starts_with(&out[..out.len().min(head.len())]) {
            return Some(params);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zstd_layer_made_by_this_libzstd_is_found_and_another_is_not() {
        // Words drawn at random: compressible, yet no level makes it tiny.
        let mut rng = fastrand::Rng::with_seed(3);
        let words: Vec<Vec<u8>> = (0..4000)
            .map(|_| (0..rng.usize(2..12)).map(|_| rng.u8(b'a'..=b'z')).collect())
            .collect();
        let mut plain = Vec::new();
        while plain.len() < 3_000_000 {
            plain.extend_from_slice(&words[rng.usize(..words.len())]);
            plain.push(b' ');
        }
        let made = zstd::stream::encode_all(&plain[..], 7).unwrap();
        let (size, checksum) = zstd_frame(&made).unwrap();
        let found = probe_zstd(&made[..64 << 10], &plain[..PROBE], size).unwrap();
        assert_eq!(found.level, 7);
        assert_eq!(checksum, found.checksum);
        let mut again = zstd_encoder(&found, plain.len() as u64, Vec::new()).unwrap();
        again.write_all(&plain).unwrap();
        assert_eq!(
            again.finish().unwrap(),
            made,
            "the whole layer comes out the same"
        );
        // Level 22 (--ultra) is not tried: no settings are found, the layer ships whole.
        let other = zstd::stream::encode_all(&plain[..], 22).unwrap();
        assert!(
            probe_zstd(
                &other[..64 << 10],
                &plain[..PROBE],
                zstd_frame(&other).unwrap().0
            )
            .is_none()
        );
    }

    #[test]
    fn gzip_headers_are_kept_verbatim() {
        let mut member = vec![0x1f, 0x8b, 8, 8 | 16, 0, 0, 0, 0, 0, 255];
        member.extend_from_slice(b"name\0comment\0");
        member.extend_from_slice(&[3, 0]);
        let mut r = &member[..];
        assert_eq!(gzip_header(&mut r).unwrap(), member[..member.len() - 2]);
        assert_eq!(r, &[3, 0]);
        assert!(gzip_header(&mut &[0x1f, 0x8b, 8, 0xe0, 0, 0, 0, 0, 0, 0][..]).is_err());
    }
}
