//! Chunk buffers, reused. A download's chunk goes to its connection as [`Bytes`] that own a
//! buffer from here, and the buffer comes back when the connection has sent it and dropped
//! the chunk. A fresh buffer of 128 KiB or more is a fresh mapping from the allocator: zeroed,
//! faulted in page by page and unmapped again for every chunk, which was about a quarter of
//! serve's CPU per byte sent (perf, 64 clients). A reused buffer is none of that.
//! Hand-written: a few lines over `Bytes::from_owner`; a general pool crate would not know
//! the budget that bounds what may sit idle here.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// The smallest buffer kept for reuse.
const MIN_KEPT: usize = 64 << 10;

/// Buffers returned by sent chunks, kept for the next reads.
#[derive(Debug)]
pub struct Buffers {
    free: Mutex<Free>,
    /// The most the free buffers may hold together, in bytes.
    idle_max: usize,
}

#[derive(Debug, Default)]
struct Free {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

impl Buffers {
    /// Keeps at most `idle_max` bytes of free buffers; more are given back to the allocator.
    pub fn new(idle_max: usize) -> Arc<Buffers> {
        Arc::new(Buffers {
            free: Mutex::default(),
            idle_max,
        })
    }

    /// A chunk of `len` bytes in a buffer of exactly `size` bytes (`len` at most): a free one
    /// of that size (holding an old chunk's bytes), else a new one. Exact sizes only, so a
    /// download never holds more than the chunk size it was given (see `Pool::chunk_size`).
    pub fn take(self: &Arc<Buffers>, size: usize, len: usize) -> Chunk {
        let len = len.min(size);
        let reused = {
            let mut free = self.free.lock().expect("not poisoned");
            let at = free.bufs.iter().rposition(|b| b.len() == size);
            // A miss drops the oldest free buffer (of another size): what the downloads no
            // longer ask for drains as they change.
            let i = at.or_else(|| (!free.bufs.is_empty()).then_some(0));
            i.map(|i| {
                let buf = free.bufs.remove(i);
                free.bytes -= buf.len();
                buf
            })
            .filter(|b| b.len() == size)
        };
        Chunk {
            buf: reused.unwrap_or_else(|| vec![0; size]),
            filled: 0,
            len,
            home: self.clone(),
        }
    }

    fn give_back(&self, buf: Vec<u8>) {
        // Small buffers come from the allocator's heap, cheaply, and there are many of them
        // when hundreds download: not worth keeping.
        if buf.len() < MIN_KEPT {
            return;
        }
        let mut free = self.free.lock().expect("not poisoned");
        if free.bytes + buf.len() <= self.idle_max {
            free.bytes += buf.len();
            free.bufs.push(buf);
        }
    }

    /// Bytes held by free buffers now.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.free.lock().expect("not poisoned").bytes
    }
}

/// A buffer being filled, then sent; it returns to its [`Buffers`] when dropped.
#[derive(Debug)]
pub struct Chunk {
    buf: Vec<u8>,
    filled: usize,
    /// How much of `buf` the chunk is.
    len: usize,
    home: Arc<Buffers>,
}

impl Chunk {
    /// The part not filled yet.
    pub fn unfilled(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..self.len]
    }

    /// Counts `n` more bytes of the buffer as filled.
    pub fn advance(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.len);
    }

    /// The filled bytes, as a `Bytes` that gives the buffer back when the last clone drops.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.filled]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.home.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_chunk_gives_its_buffer_back_for_the_next_of_its_size() {
        let buffers = Buffers::new(256 << 10);
        let mut c = buffers.take(64 << 10, 3);
        c.unfilled()[..3].copy_from_slice(b"abc");
        c.advance(3);
        assert!(
            c.unfilled().is_empty(),
            "a chunk is its length, not its buffer's"
        );
        let sent = c.freeze();
        assert_eq!(&sent[..], b"abc");
        let ptr = sent.as_ptr();
        assert_eq!(buffers.idle(), 0, "in use until sent");
        drop(sent);
        assert_eq!(buffers.idle(), 64 << 10);
        let again = buffers.take(64 << 10, 64 << 10);
        assert_eq!(again.buf.as_ptr(), ptr, "the same size gets the old buffer");
        drop(again);
        // Another size gets a new buffer, and the one of the size no longer asked for is
        // dropped.
        let other = buffers.take(128 << 10, 5);
        assert_eq!(other.buf.len(), 128 << 10);
        assert_eq!(buffers.idle(), 0);
        drop(other);
        assert_eq!(buffers.idle(), 128 << 10);
    }

    #[test]
    fn no_more_than_the_idle_budget_is_kept() {
        let buffers = Buffers::new(160 << 10);
        let chunks: Vec<Chunk> = (0..4).map(|_| buffers.take(64 << 10, 1)).collect();
        drop(chunks);
        assert_eq!(buffers.idle(), 128 << 10);
        // Small ones are not kept at all (and asking for one drops a free one of another size).
        drop(buffers.take(32 << 10, 1));
        assert_eq!(buffers.idle(), 64 << 10);
    }
}
