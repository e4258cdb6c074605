//! The near side: the patch of one new layer against one base layer, or why it ships whole.

use std::io::{self, BufReader, Read, Write};

use preflate_rs::{ExitCode, PreflateConfig, PreflateStreamProcessor};

use super::codec;
use super::format::{self, Compression, GzipFrame, Header};
use super::patch::{self, Placer, SEGMENT};
use super::window::{self, Window};

/// Opens a fresh reader of a blob, from its start.
pub type Opener<'a> = &'a dyn Fn() -> io::Result<Box<dyn Read + Send>>;

/// A blob to patch (the new layer) or to patch against (the base layer).
pub struct Input<'a> {
    /// Reads it.
    pub open: Opener<'a>,
    /// Its media type.
    pub media_type: &'a str,
    /// Its size.
    pub size: u64,
}

/// Reads up to `n` bytes of a blob's start.
fn head(open: Opener, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    open()?.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Writes the records of the patch of `new` against `old` into `records` and returns the
/// header; `Ok(Err(reason))` when the layer is to ship whole (the patch would not be smaller
/// than `limit` bytes, or the layer cannot be remade exactly).
pub fn make_patch(
    new: &Input,
    old: &Input,
    limit: u64,
    records: &mut dyn Write,
) -> io::Result<Result<Header, String>> {
    let new_head = head(new.open, 64 << 10)?;
    let Some(compression) = codec::sniff(&new_head, new.media_type) else {
        return Ok(Err("not a gzip, zstd or plain tar layer".into()));
    };
    let Some(base_compression) = codec::sniff(&head(old.open, 64)?, old.media_type) else {
        return Ok(Err(
            "its base layer is not a gzip, zstd or plain tar layer".into()
        ));
    };
    let mut header = Header {
        compression,
        base_compression,
        layer_size: new.size,
        tar_size: 0,
        base_tar_size: 0,
        gzip: None,
        zstd: None,
    };
    if compression == Compression::Zstd {
        let plain_head = head(&|| codec::plain(Compression::Zstd, (new.open)()?), 1 << 20)?;
        let size = codec::zstd_frame(&new_head).and_then(|(size, _)| size);
        match codec::probe_zstd(&new_head, &plain_head, size) {
            Some(params) => header.zstd = Some(params),
            None => {
                let why = format!(
                    "no libzstd {} setting remakes this zstd layer (another encoder or version made it)",
                    codec::zstd_library()
                );
                return Ok(Err(why));
            }
        }
    }
    let (index, base_size) = window::index_of(codec::plain(base_compression, (old.open)()?)?)?;
    header.base_tar_size = base_size;
    let mut writer = Segments {
        placer: Placer::new(index, base_size),
        window: Window::new(codec::plain(base_compression, (old.open)()?)?),
        out: records,
        written: 0,
        limit,
        plain: 0,
    };
    let outcome = match compression {
        Compression::Gzip => {
            gzip_segments((new.open)()?, &mut writer)?.map(|g| header.gzip = Some(g))
        }
        _ => plain_segments(codec::plain(compression, (new.open)()?)?, &mut writer)?,
    };
    if let Err(why) = outcome {
        return Ok(Err(why));
    }
    format::write_end(writer.out)?;
    header.tar_size = writer.plain;
    Ok(Ok(header))
}

/// Writes records, each a segment of new tar against its window of the base tar.
struct Segments<'a, R> {
    placer: Placer,
    window: Window<R>,
    out: &'a mut dyn Write,
    written: u64,
    limit: u64,
    plain: u64,
}

impl<R: Read> Segments<'_, R> {
    /// Writes the record of the next segment; an error string once the patch outgrows its
    /// limit.
    fn emit(&mut self, plain: &[u8], corrections: Vec<u8>) -> io::Result<Result<(), String>> {
        let mut record = self.placer.place(plain);
        let reference = self
            .window
            .slice(record.ref_start, record.ref_len as usize)?;
        record.frame = patch::encode(reference, plain)?;
        record.corrections = corrections;
        format::write_record(self.out, &record)?;
        self.plain += plain.len() as u64;
        self.written += 25 + (record.frame.len() + record.corrections.len()) as u64;
        if self.written > self.limit {
            return Ok(Err(format!(
                "the patch would exceed {} bytes (half the layer)",
                self.limit
            )));
        }
        Ok(Ok(()))
    }
}

/// Segments of a plain stream.
fn plain_segments<R: Read>(
    mut plain: impl Read,
    out: &mut Segments<R>,
) -> io::Result<Result<(), String>> {
    let mut buf = Vec::with_capacity(SEGMENT);
    loop {
        buf.clear();
        (&mut plain).take(SEGMENT as u64).read_to_end(&mut buf)?;
        if buf.is_empty() {
            return Ok(Ok(()));
        }
        if let Err(why) = out.emit(&buf, Vec::new())? {
            return Ok(Err(why));
        }
    }
}

/// Compressed bytes handed to preflate at once (more when a block is larger).
const DEFLATE_IN: usize = 4 << 20;
/// A DEFLATE block larger than this is not analysed: the layer ships whole.
const MAX_DEFLATE_IN: usize = 256 << 20;

/// Segments of a gzip layer, one per preflate chunk, with preflate's corrections; the gzip
/// member's header and trailer.
fn gzip_segments<R: Read>(
    layer: Box<dyn Read + Send>,
    out: &mut Segments<R>,
) -> io::Result<Result<GzipFrame, String>> {
    let mut r = BufReader::with_capacity(1 << 20, layer);
    let Ok(header) = codec::gzip_header(&mut r) else {
        return Ok(Err("its gzip header is not one this ferry reads".into()));
    };
    // Go's table-based matchers (buildah, podman, skopeo) pick matches deep in any hash chain
    // preflate models: up to the 32 KiB window (vendor/preflate-rs/README-ferry.md).
    let config = PreflateConfig {
        max_chain_length: 32768,
        plain_text_limit: SEGMENT,
        verify_compression: false,
    };
    let mut p = PreflateStreamProcessor::new(&config);
    let (mut pending, mut want, mut eof) = (Vec::new(), DEFLATE_IN, false);
    while !p.is_done() {
        while pending.len() < want && !eof {
            let n = (&mut r)
                .take((want - pending.len()) as u64)
                .read_to_end(&mut pending)?;
            eof = n == 0;
        }
        match p.decompress(&pending) {
            Ok(chunk) if chunk.compressed_size > 0 || p.is_done() => {
                pending.drain(..chunk.compressed_size);
                if let Err(why) = out.emit(p.plain_text().text(), chunk.corrections)? {
                    return Ok(Err(why));
                }
                p.shrink_to_dictionary();
                want = DEFLATE_IN;
            }
            Err(e) if e.exit_code() != ExitCode::ShortRead || eof => {
                let what = e.message().lines().next().unwrap_or_default().to_owned();
                return Ok(Err(format!(
                    "preflate cannot remake this gzip stream exactly ({}: {what})",
                    e.exit_code()
                )));
            }
            _ if eof || want >= MAX_DEFLATE_IN => {
                return Ok(Err("a DEFLATE block too large to analyse".into()));
            }
            _ => want *= 2,
        }
    }
    let mut rest = pending;
    r.take(9).read_to_end(&mut rest)?;
    if rest.len() != 8 {
        return Ok(Err(
            "bytes follow the gzip member (several members are not remade)".into(),
        ));
    }
    Ok(Ok(GzipFrame {
        header: hex::encode(header),
        trailer: hex::encode(rest),
    }))
}
