//! `.tar.zst` archives: the zstd seekable format (independent frames, the seek table in a
//! trailing skippable frame) read at any offset by decompressing at most one frame, and a plain
//! zstd stream made by another tool, read from its start. Writing the seekable format is
//! [`SeekableWriter`]: frames compressed on several threads, the same bytes whatever the
//! number of threads.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::blob::{FileKey, PositionedReader, Space};
use crate::store::StoreError;

/// The most uncompressed bytes in one frame of a seekable archive: a ranged read decompresses
/// at most this much it does not hand out; zstd level 3 looks back no further than ~2 MiB, so
/// larger frames would compress hardly better.
pub const SEEKABLE_FRAME: usize = 4 << 20;

/// zstd's compression level for archives (as `zstd -3`).
const LEVEL: i32 = 3;

/// The last 4 bytes of a seekable zstd file.
const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;

/// How an archive file is compressed.
pub(super) enum Compression {
    None,
    Zstd,
}

/// Magic numbers of compressions ferry cannot read in place.
const OTHER: &[(&[u8], &str, &str)] = &[
    (b"\x1f\x8b", "gzip", "gunzip -k"),
    (b"\xfd7zXZ\x00", "xz", "unxz -k"),
    (b"BZh", "bzip2", "bunzip2 -k"),
];

/// Tells a zstd archive from a plain one; refuses gzip, xz and bzip2 with a hint.
pub(super) fn sniff(file: &File, path: &Path) -> Result<Compression, StoreError> {
    let mut head = [0u8; 6];
    let n = file
        .read_at(&mut head, 0)
        .map_err(StoreError::io("read", path))?;
    if head[..n].starts_with(b"\x28\xb5\x2f\xfd") {
        return Ok(Compression::Zstd);
    }
    for (magic, name, tool) in OTHER {
        if head[..n].starts_with(magic) {
            return Err(StoreError::NotALayout {
                path: path.to_path_buf(),
                reason: format!(
                    "it is {name}-compressed; ferry reads a .tar or a .tar.zst in place, not {name}"
                ),
                hint: Some(format!(
                    "decompress it once ({tool} {}), or export with --oci-archive OUT.tar.zst",
                    path.display()
                )),
            });
        }
    }
    Ok(Compression::None)
}

/// A file read with `pread` through `Read + Seek` (what the seekable decoder reads from).
#[derive(Debug)]
struct FileCursor {
    file: Arc<File>,
    pos: u64,
}

impl Read for FileCursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for FileCursor {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let len = self.file.metadata()?.len();
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or(io::ErrorKind::InvalidInput)?;
        Ok(self.pos)
    }
}

/// A seekable `.tar.zst`: its seek table, read once.
#[derive(Debug)]
pub(super) struct Seekable {
    file: Arc<File>,
    table: zeekstd::SeekTable,
}

impl Seekable {
    /// Reads the seek table; `None` when the file has none (a plain zstd stream).
    pub fn open(file: Arc<File>, path: &Path) -> Result<Option<Seekable>, StoreError> {
        let len = file.metadata().map_err(StoreError::io("stat", path))?.len();
        let mut tail = [0u8; 4];
        if len < 4 || file.read_exact_at(&mut tail, len - 4).is_err() {
            return Ok(None);
        }
        if u32::from_le_bytes(tail) != SEEKABLE_MAGIC {
            return Ok(None);
        }
        let mut cursor = FileCursor {
            file: file.clone(),
            pos: 0,
        };
        let table =
            zeekstd::SeekTable::from_seekable(&mut cursor).map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("unreadable zstd seek table: {e}"),
            })?;
        Ok(Some(Seekable { file, table }))
    }
}

impl Space for Seekable {
    fn reader_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        let source = FileCursor {
            file: self.file.clone(),
            pos: 0,
        };
        let decoder = zeekstd::DecodeOptions::new(source)
            .seek_table(self.table.clone())
            .offset(offset.min(self.table.size_decomp()))
            .into_decoder()
            .map_err(io::Error::other)?;
        Ok(Box::new(decoder))
    }

    fn key(&self) -> io::Result<FileKey> {
        FileKey::of(&self.file)
    }
}

type StreamDecoder = zstd::stream::read::Decoder<'static, BufReader<PositionedReader>>;

/// A `.tar.zst` in one stream (no seek table), read from its start. The decoder of the last
/// read is kept, so reads in archive order decompress the file once.
#[derive(Debug)]
pub(super) struct Stream {
    file: Arc<File>,
    parked: Arc<Mutex<Option<Parked>>>,
}

/// A decoder left where its last reader stopped.
struct Parked {
    decoder: StreamDecoder,
    pos: u64,
}

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Parked({})", self.pos)
    }
}

impl Stream {
    pub fn new(file: Arc<File>) -> Stream {
        Stream {
            file,
            parked: Arc::default(),
        }
    }
}

impl Space for Stream {
    fn reader_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        let parked = self
            .parked
            .lock()
            .expect("not poisoned")
            .take()
            .filter(|p| p.pos <= offset);
        let Parked { mut decoder, pos } = match parked {
            Some(p) => p,
            None => Parked {
                decoder: zstd::stream::read::Decoder::new(PositionedReader {
                    file: self.file.clone(),
                    offset: 0,
                })?,
                pos: 0,
            },
        };
        let skipped = io::copy(&mut (&mut decoder).take(offset - pos), &mut io::sink())?;
        if skipped < offset - pos {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(Box::new(StreamReader {
            decoder: Some(decoder),
            pos: offset,
            parked: self.parked.clone(),
        }))
    }

    fn key(&self) -> io::Result<FileKey> {
        FileKey::of(&self.file)
    }
}

/// Reads on from a decoder; parks it when dropped.
struct StreamReader {
    decoder: Option<StreamDecoder>,
    pos: u64,
    parked: Arc<Mutex<Option<Parked>>>,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.decoder.as_mut().expect("until dropped").read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        if let Some(decoder) = self.decoder.take() {
            *self.parked.lock().expect("not poisoned") = Some(Parked {
                decoder,
                pos: self.pos,
            });
        }
    }
}

/// A frame for a worker: its number, its plain bytes, and a buffer for the compressed ones.
type Job = (usize, Vec<u8>, Vec<u8>);
/// A frame back from a worker: its number, its compressed bytes, and the plain buffer (to
/// reuse: fresh 4 MiB buffers cost a page fault per 4 KiB).
type Compressed = (usize, io::Result<Vec<u8>>, Vec<u8>);

/// Writes the zstd seekable format: every `flush()` ends a frame (a tar writer calls it at
/// member boundaries, so every member starts a frame), and a frame never holds more than
/// [`SEEKABLE_FRAME`] bytes. Frames are compressed on worker threads and written in order;
/// each is compressed alone, so the output does not depend on the number of threads.
/// [`SeekableWriter::finish`] writes the seek table.
pub struct SeekableWriter<W: Write> {
    out: Option<W>,
    frame: Vec<u8>,
    jobs: Option<mpsc::SyncSender<Job>>,
    done: mpsc::Receiver<Compressed>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// Frames sent to the workers, and written.
    sent: usize,
    written: usize,
    /// Compressed frames that came back ahead of their turn, with their plain sizes.
    waiting: std::collections::BTreeMap<usize, (Vec<u8>, u32)>,
    /// Plain sizes of the frames in flight.
    sizes: std::collections::BTreeMap<usize, u32>,
    /// Buffers to reuse.
    spare_plain: Vec<Vec<u8>>,
    spare_out: Vec<Vec<u8>>,
    table: zeekstd::SeekTable,
}

impl<W: Write> SeekableWriter<W> {
    /// Writes into `out`, compressing on `threads` threads (at least one).
    pub fn new(out: W, threads: usize) -> SeekableWriter<W> {
        let threads = threads.max(1);
        let (jobs, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let (tx, done) = mpsc::channel();
        let workers = (0..threads)
            .map(|_| {
                let (rx, tx) = (rx.clone(), tx.clone());
                std::thread::spawn(move || compress_frames(&rx, &tx))
            })
            .collect();
        SeekableWriter {
            out: Some(out),
            frame: Vec::with_capacity(SEEKABLE_FRAME),
            jobs: Some(jobs),
            done,
            workers,
            sent: 0,
            written: 0,
            waiting: Default::default(),
            sizes: Default::default(),
            spare_plain: Vec::new(),
            spare_out: Vec::new(),
            table: zeekstd::SeekTable::new(),
        }
    }

    /// Hands the current frame to the workers and writes what is ready, keeping at most a few
    /// frames per thread in flight.
    fn end_frame(&mut self) -> io::Result<()> {
        if !self.frame.is_empty() {
            let next = self
                .spare_plain
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(SEEKABLE_FRAME));
            let frame = std::mem::replace(&mut self.frame, next);
            self.sizes.insert(self.sent, frame.len() as u32);
            let out = self.spare_out.pop().unwrap_or_default();
            let jobs = self.jobs.as_ref().expect("open until finished");
            jobs.send((self.sent, frame, out))
                .map_err(|_| io::Error::other("a compression thread stopped"))?;
            self.sent += 1;
        }
        while self.sent - self.written > 2 * self.workers.len() {
            self.write_next()?;
        }
        Ok(())
    }

    /// Waits for the next frame in order and writes it.
    fn write_next(&mut self) -> io::Result<()> {
        while !self.waiting.contains_key(&self.written) {
            let (seq, compressed, mut plain) = self
                .done
                .recv()
                .map_err(|_| io::Error::other("a compression thread stopped"))?;
            let size = self.sizes.remove(&seq).unwrap_or_default();
            plain.clear();
            self.spare_plain.push(plain);
            self.waiting.insert(seq, (compressed?, size));
        }
        let (bytes, plain) = self.waiting.remove(&self.written).expect("checked");
        self.out
            .as_mut()
            .expect("until finished")
            .write_all(&bytes)?;
        let compressed = u32::try_from(bytes.len()).map_err(io::Error::other)?;
        self.table
            .log_frame(compressed, plain)
            .map_err(io::Error::other)?;
        self.spare_out.push(bytes);
        self.written += 1;
        Ok(())
    }

    /// Ends the last frame, writes every frame and the seek table; returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.end_frame()?;
        while self.written < self.sent {
            self.write_next()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let mut serializer = std::mem::take(&mut self.table).into_serializer();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = serializer.write_into(&mut buf);
            if n == 0 {
                break;
            }
            self.out
                .as_mut()
                .expect("until finished")
                .write_all(&buf[..n])?;
        }
        let mut out = self.out.take().expect("taken once");
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Write for SeekableWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = SEEKABLE_FRAME - self.frame.len();
        let n = buf.len().min(room);
        self.frame.extend_from_slice(&buf[..n]);
        if self.frame.len() == SEEKABLE_FRAME {
            self.end_frame()?;
        }
        Ok(n)
    }

    /// Ends the current frame (the output itself is flushed by `finish`).
    fn flush(&mut self) -> io::Result<()> {
        self.end_frame()
    }
}

impl<W: Write> Drop for SeekableWriter<W> {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A worker: compresses frames until the job channel closes.
fn compress_frames(jobs: &Mutex<mpsc::Receiver<Job>>, done: &mpsc::Sender<Compressed>) {
    let mut compressor = match zstd::bulk::Compressor::new(LEVEL) {
        Ok(c) => c,
        Err(e) => {
            let _ = done.send((usize::MAX, Err(e), Vec::new()));
            return;
        }
    };
    // A checksum per frame: `zstd -d` and ferry catch a damaged index.json or lock, which no
    // digest covers.
    let _ = compressor.include_checksum(true);
    loop {
        let job = jobs.lock().expect("not poisoned").recv();
        let Ok((seq, plain, mut out)) = job else {
            return;
        };
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(plain.len()));
        let result = compressor.compress_to_buffer(&plain, &mut out).map(|_| out);
        if done.send((seq, result, plain)).is_err() {
            return;
        }
    }
}
