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
