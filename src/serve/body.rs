//! Response bodies: small ones in memory, and blobs read one chunk at a time on the read pool
//! ([`Pool`]): no thread is held per download, and a download holds at most one chunk that the
//! connection has not taken yet, so memory stays flat however many clients pull at once and
//! however slowly they read.

use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::buffers::Chunk;
use super::conn::{Activity, Busy};
pub use super::pool::Pool;
use super::pool::Streaming;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// A response body.
pub enum Body {
    /// Nothing (HEAD, 304).
    Empty,
    /// Small content in memory.
    Full(Option<Bytes>),
    /// A blob read chunk by chunk.
    Blob(BlobStream),
}

impl Body {
    /// A body of `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body::Full(Some(bytes.into()))
    }

    /// Streams `len` bytes from `reader`, one chunk at a time on `pool`. A reader that checks
    /// what it reads (the store's blob readers) fails before handing out a wrong last chunk;
    /// the transfer is then cut, and `on_error` is told why.
    pub fn blob<R: Read + Send + 'static>(
        reader: R,
        len: u64,
        pool: Pool,
        activity: Option<Arc<Activity>>,
        on_error: impl FnOnce(&io::Error) + Send + 'static,
    ) -> Body {
        Body::Blob(BlobStream {
            state: ReadState::Idle(Box::new(reader)),
            left: len,
            _streaming: pool.streaming(),
            pool,
            activity,
            on_error: Some(Box::new(on_error)),
        })
    }
}

type Reader = Box<dyn Read + Send>;
type ChunkRead = Pin<Box<dyn Future<Output = (Option<Reader>, io::Result<Bytes>)> + Send>>;

enum ReadState {
    /// Waiting for the connection to want the next chunk.
    Idle(Reader),
    /// A chunk being read on the pool.
    Reading(ChunkRead),
    /// Every byte handed out, or failed.
    Done,
}

/// A blob's bytes, read on demand: the next chunk is read only when the connection has taken
/// the previous one. How much it reads at once shrinks as downloads grow (see
/// [`Pool::chunk_size`]).
pub struct BlobStream {
    state: ReadState,
    left: u64,
    pool: Pool,
    _streaming: Streaming,
    activity: Option<Arc<Activity>>,
    on_error: Option<OnError>,
}

/// Told once why a blob's transfer was cut.
type OnError = Box<dyn FnOnce(&io::Error) + Send>;

/// Reads `chunk`'s length (fewer bytes only at an error).
fn read_chunk(reader: &mut Reader, mut chunk: Chunk) -> io::Result<Bytes> {
    while !chunk.unfilled().is_empty() {
        match reader.read(chunk.unfilled()) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the blob ended early",
                ));
            }
            Ok(n) => chunk.advance(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(chunk.freeze())
}

impl BlobStream {
    fn start_read(&mut self, mut reader: Reader) -> ChunkRead {
        let size = self.pool.chunk_size();
        let want = self.left.min(size as u64) as usize;
        let pool = self.pool.clone();
        let buf = self.pool.buffer(size, want);
        // The server is the slow one while a chunk is read: the connection is not idle.
        let busy: Option<Busy> = self.activity.as_ref().map(Activity::busy);
        Box::pin(async move {
            let _busy = busy;
            match pool
                .run(move || {
                    let chunk = read_chunk(&mut reader, buf);
                    (reader, chunk)
                })
                .await
            {
                Ok((reader, chunk)) => (Some(reader), chunk),
                Err(e) => (None, Err(e)),
            }
        })
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        self.state = ReadState::Done;
        if let Some(f) = self.on_error.take() {
            f(&e);
        }
        e
    }
}

impl http_body::Body for BlobStream {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            match std::mem::replace(&mut this.state, ReadState::Done) {
                ReadState::Done => return Poll::Ready(None),
                ReadState::Idle(_) if this.left == 0 => return Poll::Ready(None),
                ReadState::Idle(reader) => this.state = ReadState::Reading(this.start_read(reader)),
                ReadState::Reading(mut read) => match read.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = ReadState::Reading(read);
                        return Poll::Pending;
                    }
                    Poll::Ready((reader, Ok(chunk))) => {
                        this.left -= chunk.len() as u64;
                        // The last chunk drops the reader (and closes its file) at once.
                        if let Some(r) = reader.filter(|_| this.left > 0) {
                            this.state = ReadState::Idle(r);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                    Poll::Ready((_, Err(e))) => return Poll::Ready(Some(Err(this.fail(e)))),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
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
            Body::Blob(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.is_none(),
            Body::Blob(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Blob(s) => s.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Every frame of a body until its end or an error.
    async fn collect(mut body: Body) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        loop {
            let frame =
                std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx))
                    .await;
            match frame {
                None => return (out, None),
                Some(Ok(f)) => out.extend_from_slice(f.data_ref().unwrap()),
                Some(Err(e)) => return (out, Some(e)),
            }
        }
    }

    #[tokio::test]
    async fn a_blob_streams_in_chunks_and_a_failing_reader_cuts_it() {
        let chunk = super::super::pool::MAX_CHUNK;
        let data: Vec<u8> = (0..(3 * chunk + 17)).map(|i| i as u8).collect();
        let len = data.len() as u64;
        let pool = Pool::new(2);
        let body = Body::blob(
            io::Cursor::new(data.clone()),
            len,
            pool.clone(),
            None,
            |_| {},
        );
        let (got, err) = collect(body).await;
        assert!(err.is_none());
        assert_eq!(got, data);

        // A reader that ends early: the body fails (a cut transfer), and says so once.
        let told = Arc::new(AtomicUsize::new(0));
        let t = told.clone();
        let short = io::Cursor::new(data[..chunk + 5].to_vec());
        let body = Body::blob(short, len, pool, None, move |_| {
            t.fetch_add(1, Ordering::SeqCst);
        });
        let (got, err) = collect(body).await;
        assert!(err.is_some());
        assert_eq!(got.len(), chunk, "only whole chunks read are handed out");
        assert_eq!(told.load(Ordering::SeqCst), 1);
    }
}
