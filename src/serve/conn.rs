//! One connection's watch: when bytes last moved either way, whether the server itself is
//! busy on it (reading a chunk, verifying a blob), and why serve closed it. A connection on
//! which nothing moved for the idle timeout while the server owed nothing is closed: a silent
//! client, one that stopped reading a download, or a keep-alive connection left open.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What bounds the server's connections (`ferry serve --max-connections`, `--header-timeout`,
/// `--idle-timeout`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (and a TLS handshake).
    pub header_timeout: Duration,
    /// How long a connection may stay without a byte moving either way while the server owes
    /// it nothing.
    pub idle_timeout: Duration,
    /// Blocking threads reading blobs at once.
    pub read_threads: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            read_threads: super::body::Pool::default_threads(),
        }
    }
}

/// A connection's activity.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last byte moved.
    last: AtomicU64,
    /// Work the server is doing for the connection (a request handled, a chunk read).
    busy: AtomicUsize,
    closed: OnceLock<String>,
}

impl Activity {
    /// A connection that just opened.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            closed: OnceLock::new(),
        })
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// Marks the server busy on the connection until the guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// Why serve closed the connection, if it did.
    pub fn closed_reason(&self) -> Option<String> {
        self.closed.get().cloned()
    }

    /// Completes when the connection has been idle for `timeout` (nothing moved, the server
    /// owing nothing), recording that as why it is closed.
    pub async fn idle(&self, timeout: Duration) {
        loop {
            let quiet = self.quiet_for();
            if quiet >= timeout && self.busy.load(Ordering::SeqCst) == 0 {
                let _ = self.closed.set(format!(
                    "closed by serve: nothing moved for {}",
                    humantime::format_duration(timeout)
                ));
                return;
            }
            let wait = timeout
                .saturating_sub(quiet)
                .max(Duration::from_millis(100));
            tokio::time::sleep(wait).await;
        }
    }

    /// Records that serve closed the connection for `reason` (the first reason wins).
    pub fn close(&self, reason: String) {
        let _ = self.closed.set(reason);
    }
}

/// The server is busy on a connection while this lives.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        // The work's end counts as activity: the idle time starts from here.
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection's stream, recording when bytes move.
pub struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO> Watched<IO> {
    /// Watches `io`.
    pub fn new(io: IO, activity: Arc<Activity>) -> Watched<IO> {
        activity.touch();
        Watched { io, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_while_the_server_is_busy() {
        let a = Activity::new();
        a.touch();
        let busy = a.busy();
        let short = Duration::from_millis(50);
        let idle = tokio::time::timeout(short * 6, a.idle(short));
        assert!(idle.await.is_err(), "busy: never idle");
        drop(busy);
        tokio::time::timeout(Duration::from_secs(30), a.idle(short))
            .await
            .expect("idle once the work is done");
        assert!(
            a.closed_reason()
                .unwrap()
                .contains("nothing moved for 50ms")
        );
    }
}
