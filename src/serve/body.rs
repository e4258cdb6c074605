//! Response bodies: small ones in memory, blobs streamed in chunks from a blocking reader (so
//! memory stays flat whatever the layer size), and the `Range` header.

use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// Bytes per chunk read from a blob.
const CHUNK: usize = 64 * 1024;
/// Chunks buffered per transfer ahead of the connection.
const AHEAD: usize = 4;

/// A response body.
pub enum Body {
    /// Nothing (HEAD, 304).
    Empty,
    /// Small content in memory.
    Full(Option<Bytes>),
    /// A blob streamed from a reader thread.
    Stream {
        /// Chunks (an `Err` aborts the transfer).
        rx: mpsc::Receiver<io::Result<Bytes>>,
        /// Bytes still to come.
        left: u64,
    },
}

impl Body {
    /// A body of `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body::Full(Some(bytes.into()))
    }

    /// Streams `len` bytes from `reader` (read on a blocking thread). The last chunk is held
    /// back until the reader has returned its end: a reader that verifies content fails there,
    /// and the client then sees a cut transfer, never a complete wrong body.
    pub fn stream<R: Read + Send + 'static>(
        mut reader: R,
        len: u64,
        on_end: impl FnOnce(Result<(), io::Error>) + Send + 'static,
    ) -> Body {
        let (tx, rx) = mpsc::channel(AHEAD);
        tokio::task::spawn_blocking(move || {
            let mut held: Option<Bytes> = None;
            let outcome = loop {
                let mut buf = vec![0; CHUNK];
                match reader.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        buf.truncate(n);
                        if let Some(prev) = held.replace(Bytes::from(buf))
                            && tx.blocking_send(Ok(prev)).is_err()
                        {
                            return; // The client went away.
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            match outcome {
                Ok(()) => {
                    if let Some(last) = held {
                        let _ = tx.blocking_send(Ok(last));
                    }
                    on_end(Ok(()));
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                    on_end(Err(e));
                }
            }
        });
        Body::Stream { rx, left: len }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream { rx, left } => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => {
                    *left = left.saturating_sub(b.len() as u64);
                    Poll::Ready(Some(Ok(Frame::data(b))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) if *left > 0 => Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob reader stopped early",
                )))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.is_none(),
            Body::Stream { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream { left, .. } => SizeHint::with_exact(*left),
        }
    }
}

/// Called once when a response body ends or is dropped: bytes sent, and whether it completed.
pub type OnDone = Box<dyn FnOnce(u64, bool) + Send>;

/// A body that reports, once, how much of it was sent.
pub struct Logged {
    inner: Body,
    sent: u64,
    complete: bool,
    on_done: Option<OnDone>,
}

impl Logged {
    /// Wraps `inner`.
    pub fn new(inner: Body, on_done: OnDone) -> Logged {
        Logged {
            complete: http_body::Body::is_end_stream(&inner),
            inner,
            sent: 0,
            on_done: Some(on_done),
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(f) = self.on_done.take() {
            f(self.sent, self.complete);
        }
    }
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(f))) => {
                self.sent += f.data_ref().map_or(0, |d| d.len() as u64);
                // hyper does not poll a body again once it says it has ended (a whole body
                // sent in one frame): that is complete too, not cut.
                self.complete |= self.inner.is_end_stream();
            }
            Poll::Ready(None) => self.complete = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a `Range` header asks of a blob of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The whole blob (no header, or one this server does not honour: several ranges).
    Whole,
    /// Bytes `start..=end`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// Nothing of the blob can satisfy it (416).
    Unsatisfiable,
}

/// Parses `bytes=START-END`, `bytes=START-` and `bytes=-SUFFIX` (RFC 9110 14.1.2).
pub fn parse_range(header: Option<&str>, size: u64) -> Range {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole; // A server may ignore a multi-range request.
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        (true, false) => match num(b) {
            Some(0) => return Range::Unsatisfiable,
            Some(n) => (size.saturating_sub(n), size.saturating_sub(1)),
            None => return Range::Whole,
        },
        (false, _) => match (num(a), if b.is_empty() { Some(u64::MAX) } else { num(b) }) {
            (Some(s), Some(e)) if s <= e => (s, e.min(size.saturating_sub(1))),
            _ => return Range::Whole,
        },
        (true, true) => return Range::Whole,
    };
    if size == 0 || start >= size {
        return Range::Unsatisfiable;
    }
    Range::Part { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Range::Whole);
        assert_eq!(
            parse_range(Some("bytes=2-4"), 10),
            Range::Part { start: 2, end: 4 }
        );
        assert_eq!(
            parse_range(Some("bytes=7-"), 10),
            Range::Part { start: 7, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-3"), 10),
            Range::Part { start: 7, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=5-100"), 10),
            Range::Part { start: 5, end: 9 }
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=4-2"), 10), Range::Whole);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Range::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), Range::Whole);
    }
}
