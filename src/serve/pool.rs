//! The read pool: a fixed set of threads that read blob chunks (and verify blobs for ranged
//! reads) for every download. A fixed set, not a thread per read: the number of threads, and
//! so of their stacks and allocator arenas, does not grow with the number of downloads.
//! Hand-written (a channel and a few threads) because tokio's blocking pool grows a thread
//! whenever all of its threads are busy, which is exactly when a server is loaded.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use super::buffers::{Buffers, Chunk};

type Job = Box<dyn FnOnce() + Send>;

/// What the chunks of every download in flight may take together, about: each download's
/// chunk is this shared out, between [`MIN_CHUNK`] and [`MAX_CHUNK`]. A few downloads read in
/// large chunks (fewer trips to the pool); hundreds read in small ones (memory stays flat).
const CHUNK_BUDGET: usize = 8 << 20;
/// The smallest chunk.
pub const MIN_CHUNK: usize = 16 << 10;
/// The largest chunk.
pub const MAX_CHUNK: usize = 256 << 10;

/// A fixed pool of reading threads; cheap to clone. The threads end when the last clone is
/// dropped.
#[derive(Clone, Debug)]
pub struct Pool {
    jobs: Sender<Job>,
    /// Downloads reading from the pool now.
    streams: Arc<AtomicUsize>,
    /// Chunk buffers that came back from the connections, for the next reads.
    buffers: Arc<Buffers>,
}

/// A download counted among the pool's while it lives.
#[derive(Debug)]
pub struct Streaming(Arc<AtomicUsize>);

impl Drop for Streaming {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    /// A pool of `threads` threads.
    pub fn new(threads: usize) -> Pool {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let _ = std::thread::Builder::new()
                .name(format!("ferry-read-{i}"))
                .spawn(move || work(&queue));
        }
        Pool {
            jobs,
            streams: Arc::default(),
            // A download reads its next chunk while the connection still sends the end of the
            // last, so up to one buffer per download is between uses: as much as the budget.
            buffers: Buffers::new(CHUNK_BUDGET),
        }
    }

    /// Counts a download among the pool's until the guard is dropped.
    pub fn streaming(&self) -> Streaming {
        self.streams.fetch_add(1, Ordering::Relaxed);
        Streaming(self.streams.clone())
    }

    /// How much a download reads at once now: [`CHUNK_BUDGET`] shared out among the downloads
    /// in flight, rounded down to a power of two: few sizes, so that the buffers the
    /// connections give back fit the next reads as downloads come and go.
    pub fn chunk_size(&self) -> usize {
        let n = self.streams.load(Ordering::Relaxed).max(1);
        let share = (CHUNK_BUDGET / n).clamp(MIN_CHUNK, MAX_CHUNK);
        1 << share.ilog2()
    }

    /// A buffer for a chunk of `len` bytes (at most `size`, a chunk size), reused when one of
    /// that size came back.
    pub fn buffer(&self, size: usize, len: usize) -> Chunk {
        self.buffers.take(size, len)
    }

    /// The default size: twice the CPUs, between 4 and 16 (reads from the page cache are
    /// CPU-bound; more threads than that only add switching).
    pub fn default_threads() -> usize {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        (cpus * 2).clamp(4, 16)
    }

    /// Runs `f` on one of the pool's threads.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| io::Error::other("the read pool has stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("a blob read failed (its thread panicked)"))
    }
}

/// A pool thread: runs jobs until the pool is dropped.
fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only to take one job.
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A job that panics fails its own read (its result is never sent), not the thread.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_pool_and_a_panic_fails_only_its_own() {
        let pool = Pool::new(2);
        let names: Vec<String> = futures_all(&pool).await;
        assert!(
            names.iter().all(|n| n.starts_with("ferry-read-")),
            "{names:?}"
        );
        assert!(pool.run(|| panic!("boom")).await.is_err());
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }

    #[test]
    fn chunks_shrink_as_downloads_grow() {
        let pool = Pool::new(1);
        assert_eq!(pool.chunk_size(), MAX_CHUNK);
        let many: Vec<Streaming> = (0..400).map(|_| pool.streaming()).collect();
        assert_eq!(pool.chunk_size(), MIN_CHUNK);
        drop(many);
        let few: Vec<Streaming> = (0..48).map(|_| pool.streaming()).collect();
        assert_eq!(pool.chunk_size(), 128 << 10, "170 KiB each, rounded down");
        drop(few);
        assert_eq!(pool.chunk_size(), MAX_CHUNK);
    }

    async fn futures_all(pool: &Pool) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..8 {
            let name = pool
                .run(|| std::thread::current().name().unwrap_or_default().to_owned())
                .await
                .unwrap();
            out.push(name);
        }
        out
    }
}
