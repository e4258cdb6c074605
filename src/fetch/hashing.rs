//! Hashing a download over its contiguous prefix as it grows, off the receive path: bytes that
//! extend the prefix are handed over in memory while the hasher keeps up; when it falls behind
//! (or a part completes and joins the prefix) it reads them back from the file in large reads.
//! No byte is hashed twice, and the network never waits for the hash.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};

use bytes::Bytes;

use crate::digest::Hasher;
use crate::store::StoreError;

/// Bytes handed to the hasher in memory, at most; past this it reads them from the file.
pub(super) const FEED_BYTES: usize = 2 << 20;

/// One read from the file when the hasher catches up from disk.
const READ_BYTES: usize = 1 << 20;

/// A hasher over the prefix `[0, len)` of a file.
pub(super) struct PrefixHasher {
    hasher: Hasher,
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
}

impl PrefixHasher {
    /// A hasher at offset 0 of `file` (a handle on the download, read with `pread`).
    pub fn new(hasher: Hasher, file: File, path: PathBuf) -> PrefixHasher {
        PrefixHasher {
            hasher,
            file,
            path,
            buf: Vec::new(),
        }
    }

    /// Bytes hashed so far.
    pub fn hashed(&self) -> u64 {
        self.hasher.len()
    }

    /// Hashes `bytes`, which are the file's bytes at [`Self::hashed`].
    pub fn take(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// Reads the file from [`Self::hashed`] up to `upto` (at most one large read) and hashes it.
    pub fn read_toward(&mut self, upto: u64) -> Result<(), StoreError> {
        let at = self.hashed();
        let want = usize::try_from(upto - at).map_or(READ_BYTES, |n| n.min(READ_BYTES));
        if self.buf.len() < want {
            self.buf.resize(READ_BYTES, 0);
        }
        let n = self
            .file
            .read_at(&mut self.buf[..want], at)
            .map_err(StoreError::io("read", &self.path))?;
        if n == 0 {
            let e = std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the download ends at byte {at}, before byte {upto} that was written"),
            );
            return Err(StoreError::io("read", &self.path)(e));
        }
        self.hasher.update(&self.buf[..n]);
        Ok(())
    }

    /// Reads and hashes the file up to `upto`.
    pub fn read_up_to(&mut self, upto: u64) -> Result<(), StoreError> {
        while self.hashed() < upto {
            self.read_toward(upto)?;
        }
        Ok(())
    }

    /// The hasher, fed every byte up to where this one got.
    pub fn into_hasher(self) -> Hasher {
        self.hasher
    }
}

/// What the writer tells a hasher thread.
#[derive(Default)]
struct FeedState {
    /// The contiguous prefix on disk.
    prefix: u64,
    /// Bytes just written that extend the prefix, from offset `queue_at` on, without a gap.
    queue: VecDeque<Bytes>,
    queue_at: u64,
    queued: usize,
    /// The writer is done: hash what the prefix holds, then stop.
    closed: bool,
    /// Stop now (the download is dropped or discarded).
    abandoned: bool,
}

/// The hand-over between the writer thread and a hasher thread.
#[derive(Default)]
pub(super) struct Feed {
    state: Mutex<FeedState>,
    wake: Condvar,
}

/// What a hasher thread does next.
enum Step {
    Memory(Bytes),
    File(u64),
    Done,
    Stop,
}

impl Feed {
    /// A feed whose file already holds `prefix` contiguous bytes (a resumed download).
    pub fn new(prefix: u64) -> Feed {
        let feed = Feed::default();
        feed.lock().prefix = prefix;
        feed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().expect("feed lock")
    }

    /// The writer wrote `bytes` at `at`; the prefix is now `prefix`. Bytes that extend the
    /// prefix are handed over in memory when there is room (else the hasher reads them back).
    pub fn written(&self, at: u64, bytes: &Bytes, prefix: u64) {
        let mut s = self.lock();
        let extends = at == s.prefix && prefix > at;
        let joins = s.queue.is_empty() || s.queue_at + s.queued as u64 == at;
        if extends && joins && s.queued + bytes.len() <= FEED_BYTES {
            if s.queue.is_empty() {
                s.queue_at = at;
            }
            s.queued += bytes.len();
            s.queue.push_back(bytes.clone());
        }
        if prefix != s.prefix {
            s.prefix = prefix;
            self.wake.notify_one();
        }
    }

    /// The prefix changed without a write (parts collapsed into one stream).
    pub fn set_prefix(&self, prefix: u64) {
        let mut s = self.lock();
        s.prefix = prefix;
        self.wake.notify_one();
    }

    /// No more writes: the hasher finishes the prefix and stops.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// The hasher stops as soon as it can; its result is thrown away.
    pub fn abandon(&self) {
        self.lock().abandoned = true;
        self.wake.notify_one();
    }

    /// What to hash next, waiting for it.
    fn next_step(&self, hashed: u64) -> Step {
        let mut s = self.lock();
        loop {
            if s.abandoned {
                return Step::Stop;
            }
            // Bytes the hasher already passed (read from the file meanwhile) are dropped.
            while let Some(front) = s.queue.front() {
                let end = s.queue_at + front.len() as u64;
                if end > hashed {
                    break;
                }
                s.queued -= front.len();
                s.queue_at = end;
                s.queue.pop_front();
            }
            if s.queue_at == hashed
                && let Some(front) = s.queue.pop_front()
            {
                s.queued -= front.len();
                s.queue_at += front.len() as u64;
                return Step::Memory(front);
            }
            let upto = match s.queue.is_empty() {
                true => s.prefix,
                false => s.queue_at.min(s.prefix),
            };
            if upto > hashed {
                return Step::File(upto);
            }
            if s.closed {
                return Step::Done;
            }
            s = self.wake.wait(s).expect("feed lock");
        }
    }

    /// The hasher thread: hashes the prefix as the feed says it grows. `None` when abandoned.
    pub fn run(&self, mut hasher: PrefixHasher) -> Result<Option<Hasher>, StoreError> {
        loop {
            match self.next_step(hasher.hashed()) {
                Step::Memory(bytes) => hasher.take(&bytes),
                Step::File(upto) => hasher.read_toward(upto)?,
                Step::Done => return Ok(Some(hasher.into_hasher())),
                Step::Stop => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{Algorithm, Digest};
    use std::io::Write;

    /// A feed whose chunks arrive in an order that forces both paths (memory and file): the
    /// hasher's digest equals the whole content's.
    #[test]
    fn the_prefix_is_hashed_once_from_memory_or_file() {
        let data: Vec<u8> = (0..(3 * FEED_BYTES as u32))
            .map(|i| (i % 253) as u8)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = File::create(&path).unwrap();
        f.write_all(&data).unwrap();
        let reader = File::open(&path).unwrap();
        let feed = Feed::new(0);
        let half = data.len() / 2;
        let result = std::thread::scope(|s| {
            let hashing = s.spawn(|| {
                let h = PrefixHasher::new(Hasher::new(Algorithm::Sha256), reader, path.clone());
                feed.run(h)
            });
            // The second half first (beyond the prefix: never in memory), then the first half
            // in chunks that overflow the in-memory queue.
            feed.written(half as u64, &Bytes::copy_from_slice(&data[half..]), 0);
            let mut at = 0;
            for chunk in data[..half].chunks(300_000) {
                let end = at + chunk.len();
                let prefix = if end == half { data.len() } else { end };
                feed.written(at as u64, &Bytes::copy_from_slice(chunk), prefix as u64);
                at = end;
            }
            feed.close();
            hashing.join().unwrap()
        });
        let hasher = result.unwrap().unwrap();
        assert_eq!(hasher.len(), data.len() as u64);
        assert_eq!(hasher.finish(), Digest::sha256_of(&data));

        let feed = Feed::new(10);
        feed.abandon();
        let h = PrefixHasher::new(
            Hasher::new(Algorithm::Sha256),
            File::open(&path).unwrap(),
            path.clone(),
        );
        assert!(feed.run(h).unwrap().is_none());
    }
}
