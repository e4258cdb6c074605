//! The far side (and the near side's proof): a layer rebuilt from its patch and its base
//! layer, streamed into any writer. Memory holds one segment, its window of the base tar and
//! the recompressed bytes of that segment, whatever the layer's size.

use std::io::{self, Cursor, Read, Write};

use preflate_rs::RecreateStreamProcessor;

use super::codec;
use super::format::{self, Compression, Header};
use super::patch;
use super::window::Window;

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Where rebuilt plain tar goes: straight out, through preflate, or through libzstd.
enum Sink<'a, W: Write> {
    Plain(&'a mut W),
    Gzip(&'a mut W, Box<RecreateStreamProcessor>),
    Zstd(zstd::stream::write::Encoder<'static, &'a mut W>),
}

impl<W: Write> Sink<'_, W> {
    fn write(&mut self, plain: &[u8], corrections: &[u8]) -> io::Result<()> {
        match self {
            Sink::Plain(out) => out.write_all(plain),
            Sink::Gzip(out, recreate) => {
                let (deflate, _) = recreate
                    .recompress(&mut Cursor::new(plain), corrections)
                    .map_err(|e| {
                        bad(format!(
                            "preflate: {}",
                            e.message().lines().next().unwrap_or_default()
                        ))
                    })?;
                out.write_all(&deflate)
            }
            Sink::Zstd(encoder) => encoder.write_all(plain),
        }
    }
}

/// Rebuilds the layer of `patch` from `base_layer` (the blob it names, read once) into `out`;
/// returns the header. The caller checks the digest of what was written.
pub fn rebuild<W: Write>(
    patch: &mut impl Read,
    base_layer: impl Read + Send,
    out: &mut W,
) -> io::Result<Header> {
    let header = format::read_header(patch)?;
    let mut window = Window::new(codec::plain(header.base_compression, base_layer)?);
    let mut sink = match header.compression {
        Compression::None => Sink::Plain(out),
        Compression::Gzip => {
            let frame = header
                .gzip
                .as_ref()
                .ok_or_else(|| bad("a gzip patch without its gzip header"))?;
            out.write_all(&hex::decode(&frame.header).map_err(|_| bad("gzip header"))?)?;
            Sink::Gzip(out, Box::new(RecreateStreamProcessor::new()))
        }
        Compression::Zstd => {
            let params = header
                .zstd
                .as_ref()
                .ok_or_else(|| bad("a zstd patch without its settings"))?;
            Sink::Zstd(codec::zstd_encoder(params, header.tar_size, out)?)
        }
    };
    let mut plain_total = 0u64;
    while let Some(record) = format::read_record(patch)? {
        let reference = window.slice(record.ref_start, record.ref_len as usize)?;
        let plain = patch::decode(reference, &record.frame, record.plain_len as usize)?;
        plain_total += plain.len() as u64;
        if plain_total > header.tar_size {
            return Err(bad("the patch holds more tar than its header says"));
        }
        sink.write(&plain, &record.corrections)?;
    }
    if plain_total != header.tar_size {
        return Err(bad("the patch holds less tar than its header says"));
    }
    match sink {
        Sink::Plain(_) => {}
        Sink::Gzip(out, _) => {
            let frame = header.gzip.as_ref().expect("checked above");
            out.write_all(&hex::decode(&frame.trailer).map_err(|_| bad("gzip trailer"))?)?;
        }
        Sink::Zstd(encoder) => {
            encoder.finish()?;
        }
    }
    // The whole base layer is read, so that its digest is checked to its last byte.
    window.finish()?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read, Write};

    use super::super::make::{Input, make_patch};
    use super::*;

    /// A tar of text-like files (words drawn at random: compressible, not trivially so);
    /// `changed` alters a few bytes of some of them.
    fn tar_of(changed: bool) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..40 {
            let mut data: Vec<u8> = (0..60_000).map(|_| rng.u8(b'a'..=b'p')).collect();
            if changed && i % 13 == 0 {
                data[1000..1010].copy_from_slice(b"0123456789");
            }
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, format!("usr/bin/p{i}"), &data[..])
                .unwrap();
        }
        b.into_inner().unwrap()
    }

    fn patch_and_rebuild(old: &[u8], new: &[u8], media_type: &str) -> (Vec<u8>, Vec<u8>) {
        let (o, n) = (old.to_vec(), new.to_vec());
        let open_old = move || -> io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(io::Cursor::new(o.clone())))
        };
        let open_new = move || -> io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(io::Cursor::new(n.clone())))
        };
        let (old_in, new_in) = (
            Input {
                open: &open_old,
                media_type,
                size: old.len() as u64,
            },
            Input {
                open: &open_new,
                media_type,
                size: new.len() as u64,
            },
        );
        let mut records = Vec::new();
        let header = make_patch(&new_in, &old_in, new.len() as u64 / 2, &mut records)
            .unwrap()
            .expect("a patch is made");
        let mut patch = Vec::new();
        format::write_header(&mut patch, &header).unwrap();
        patch.extend_from_slice(&records);
        let mut out = Vec::new();
        rebuild(&mut &patch[..], old, &mut out).unwrap();
        (patch, out)
    }

    #[test]
    fn plain_gzip_and_libzstd_layers_rebuild_byte_for_byte_from_small_patches() {
        let (old, new) = (tar_of(false), tar_of(true));
        let (patch, out) = patch_and_rebuild(&old, &new, "application/vnd.oci.image.layer.v1.tar");
        assert!(out == new, "plain tar");
        assert!(
            patch.len() < new.len() / 50,
            "plain patch {} bytes",
            patch.len()
        );

        let gz = |t: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(t).unwrap();
            e.finish().unwrap()
        };
        let (old_gz, new_gz) = (gz(&old), gz(&new));
        let (patch, out) = patch_and_rebuild(&old_gz, &new_gz, "tar+gzip");
        assert!(out == new_gz, "gzip layer remade exactly");
        assert!(
            patch.len() < new_gz.len() / 5,
            "gzip patch {} of {}",
            patch.len(),
            new_gz.len()
        );

        let zs = |t: &[u8]| zstd::stream::encode_all(t, 5).unwrap();
        let (old_zs, new_zs) = (zs(&old), zs(&new));
        let (patch, out) = patch_and_rebuild(&old_zs, &new_zs, "tar+zstd");
        assert!(out == new_zs, "zstd layer remade exactly");
        assert!(
            patch.len() < new_zs.len() / 20,
            "zstd patch {} of {}",
            patch.len(),
            new_zs.len()
        );

        // Rebuilt against another base, the layer does not come out right.
        let (patch, _) = patch_and_rebuild(&old, &new, "application/vnd.oci.image.layer.v1.tar");
        let mut other = old.clone();
        other[70_000] ^= 1;
        let mut out = Vec::new();
        let rebuilt = rebuild(&mut &patch[..], &other[..], &mut out);
        assert!(
            rebuilt.is_err() || out != new,
            "another base gives another layer"
        );
    }
}
