//! Where a download's bytes go: one writer thread puts each chunk at its part's offset in the
//! partial file (and the part's progress in its record), and the prefix hasher follows, inline
//! for a small blob or on a thread of its own for a large one. The receiving side only hands
//! chunks over, so the sockets are drained at the speed of the link, whatever the disk and
//! the hash are doing; the hand-over is bounded in bytes, so memory stays flat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::hashing::{Feed, PrefixHasher};
use crate::digest::Hasher;
use crate::store::{Part, PartialDownload, StoreError};

/// Bytes received but not yet written, at most (over all parts of one blob).
pub(super) const CHANNEL_BYTES: usize = 2 << 20;

/// How often a writer that has caught up brings the part record up to date, at most.
const NOTE_EVERY: Duration = Duration::from_millis(10);

/// Blobs up to this size are hashed by the writer thread itself (a thread of their own would
/// cost more than it saves).
const INLINE_HASH_MAX: u64 = 4 << 20;

/// What the receiving side sends the writer.
enum Msg {
    /// Bytes for part `part`, at its next offset.
    Data {
        part: usize,
        bytes: Bytes,
        _room: OwnedSemaphorePermit,
    },
    /// Fetch the rest in these parts, under this ETag.
    Split(Vec<Part>, Option<String>),
    /// Back to one stream from the contiguous prefix.
    Collapse,
}

/// The writer thread's result: the download, and the hasher when it hashed inline.
type Written = Result<(PartialDownload, Option<Hasher>), StoreError>;

/// A hasher thread's result: none when it was abandoned.
type Hashed = Result<Option<Hasher>, StoreError>;

/// The receiving end is gone: the writer stopped on an error, which [`Sink::close`] returns.
#[derive(Debug)]
pub(super) struct Closed;

/// A download's writer (and hasher), running.
pub(super) struct Sink {
    tx: Option<mpsc::UnboundedSender<Msg>>,
    room: Arc<Semaphore>,
    writer: Option<JoinHandle<Written>>,
    hashing: Option<(Arc<Feed>, JoinHandle<Hashed>)>,
}

impl Sink {
    /// Starts writing into `partial` and hashing it from byte 0 (what an earlier attempt or
    /// run left is hashed while the network delivers the rest).
    pub fn start(partial: PartialDownload) -> Result<Sink, StoreError> {
        let reader = partial.reader()?;
        let path = partial.path().to_path_buf();
        let hasher = PrefixHasher::new(Hasher::new(partial.digest().algorithm()), reader, path);
        let (tx, rx) = mpsc::unbounded_channel();
        let (writer, hashing) = if partial.size() <= INLINE_HASH_MAX {
            let writer = tokio::task::spawn_blocking(move || {
                write_all(partial, rx, Hashing::Inline(Box::new(hasher)))
            });
            (writer, None)
        } else {
            let feed = Arc::new(Feed::new(partial.contiguous()));
            let f = feed.clone();
            let hashing = tokio::task::spawn_blocking(move || f.run(hasher));
            let f = feed.clone();
            let writer =
                tokio::task::spawn_blocking(move || write_all(partial, rx, Hashing::Thread(f)));
            (writer, Some((feed, hashing)))
        };
        Ok(Sink {
            tx: Some(tx),
            room: Arc::new(Semaphore::new(CHANNEL_BYTES)),
            writer: Some(writer),
            hashing,
        })
    }

    /// Hands bytes of part `part` to the writer, waiting while too many are not yet written.
    pub async fn send(&self, part: usize, bytes: Bytes) -> Result<(), Closed> {
        let want = bytes.len().clamp(1, CHANNEL_BYTES) as u32;
        let room = self
            .room
            .clone()
            .acquire_many_owned(want)
            .await
            .expect("never closed");
        let msg = Msg::Data {
            part,
            bytes,
            _room: room,
        };
        self.tx().send(msg).map_err(|_| Closed)
    }

    /// The rest of the blob comes in `parts` (their record is written before any of them).
    pub fn split(&self, parts: Vec<Part>, etag: Option<String>) -> Result<(), Closed> {
        self.tx().send(Msg::Split(parts, etag)).map_err(|_| Closed)
    }

    /// Back to one stream: the bytes past the contiguous prefix are dropped.
    pub fn collapse(&self) -> Result<(), Closed> {
        self.tx().send(Msg::Collapse).map_err(|_| Closed)
    }

    fn tx(&self) -> &mpsc::UnboundedSender<Msg> {
        self.tx.as_ref().expect("open until closed")
    }

    /// Waits until every byte sent is written and hashed; returns the download and the hasher
    /// (fed the whole contiguous prefix). The sink is spent afterwards.
    pub async fn close(&mut self) -> Result<(PartialDownload, Hasher), StoreError> {
        self.tx = None;
        let written = self.writer.take().expect("one close").await;
        let (partial, inline) = match written.expect("writer task panicked") {
            Ok(done) => done,
            Err(e) => {
                self.stop_hashing().await;
                return Err(e);
            }
        };
        if let Some(h) = inline {
            return Ok((partial, h));
        }
        let (feed, hashing) = self.hashing.take().expect("a hasher");
        feed.close();
        let hashed = hashing.await.expect("hasher task panicked")?;
        Ok((partial, hashed.expect("closed, not abandoned")))
    }

    /// Stops hashing and waits for the writer to write what it was sent: returns the download
    /// (to be discarded or resumed later). The sink is spent afterwards.
    pub async fn abandon(&mut self) -> Result<PartialDownload, StoreError> {
        self.tx = None;
        self.stop_hashing().await;
        let written = self.writer.take().expect("one close").await;
        written.expect("writer task panicked").map(|(p, _)| p)
    }

    async fn stop_hashing(&mut self) {
        if let Some((feed, hashing)) = self.hashing.take() {
            feed.abandon();
            let _ = hashing.await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Dropped (a stopped run): the writer still writes what it holds and records it; the
        // hasher's work is thrown away.
        if let Some((feed, _)) = &self.hashing {
            feed.abandon();
        }
    }
}

/// Where the hash happens.
enum Hashing {
    Inline(Box<PrefixHasher>),
    Thread(Arc<Feed>),
}

/// The writer thread: writes each chunk at its part's offset, keeps the record current, and
/// feeds the hasher. Ends when the receiving side closes the channel.
fn write_all(
    mut partial: PartialDownload,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    mut hashing: Hashing,
) -> Written {
    let mut noted_at = Instant::now();
    let result = loop {
        let msg = match rx.try_recv() {
            Ok(msg) => msg,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Caught up with the network: the record says everything that is on disk (at
                // most every NOTE_EVERY: between, each part's own 256 KiB rule holds).
                if noted_at.elapsed() >= NOTE_EVERY {
                    noted_at = Instant::now();
                    if let Err(e) = partial.note_progress() {
                        break Err(e);
                    }
                }
                match rx.blocking_recv() {
                    Some(msg) => msg,
                    None => break Ok(()),
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break Ok(()),
        };
        if let Err(e) = apply(&mut partial, msg, &mut hashing) {
            break Err(e);
        }
    };
    let noted = partial.note_progress();
    result.and(noted)?;
    match hashing {
        Hashing::Inline(mut h) => {
            // What an earlier run left, when nothing was written after it.
            h.read_up_to(partial.contiguous())?;
            Ok((partial, Some(h.into_hasher())))
        }
        Hashing::Thread(_) => Ok((partial, None)),
    }
}

fn apply(partial: &mut PartialDownload, msg: Msg, hashing: &mut Hashing) -> Result<(), StoreError> {
    match msg {
        Msg::Data { part, bytes, .. } => {
            let at = partial.write(part, &bytes)?;
            let prefix = partial.contiguous();
            match hashing {
                Hashing::Inline(h) => {
                    if at == h.hashed() {
                        h.take(&bytes);
                    }
                    // A part that completed may have joined the prefix: read its bytes back.
                    h.read_up_to(prefix)?;
                }
                Hashing::Thread(feed) => feed.written(at, &bytes, prefix),
            }
        }
        Msg::Split(parts, etag) => partial.split(parts, etag)?,
        Msg::Collapse => {
            let prefix = partial.collapse()?;
            if let Hashing::Thread(feed) = hashing {
                feed.set_prefix(prefix);
            }
        }
    }
    Ok(())
}
