//! A response body that reports, once, how it ended: sent whole, cut by the client (it went
//! away), or cut by serve (a read failed, or the connection was closed for idling).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::Outcome;
use super::body::Body;
use super::conn::Activity;

/// Called once when a response body ends or is dropped: bytes sent, and how it ended.
pub type OnDone = Box<dyn FnOnce(u64, Outcome) + Send>;

/// A body that reports how much of it was sent and how it ended.
pub struct Logged {
    inner: Body,
    sent: u64,
    /// The body's length, when known up front (every body this server sends).
    expected: Option<u64>,
    /// The body said it has no more frames.
    ended: bool,
    /// The body failed (a read error, a blob found wrong): why.
    failure: Option<String>,
    /// The connection, to tell a client that left from a connection serve closed.
    activity: Option<Arc<Activity>>,
    on_done: Option<OnDone>,
}

impl Logged {
    /// Wraps `inner`; `activity` is the connection's, when known.
    pub fn new(inner: Body, activity: Option<Arc<Activity>>, on_done: OnDone) -> Logged {
        Logged {
            expected: http_body::Body::size_hint(&inner).exact(),
            inner,
            sent: 0,
            ended: false,
            failure: None,
            activity,
            on_done: Some(on_done),
        }
    }

    fn outcome(&self) -> Outcome {
        if let Some(why) = &self.failure {
            return Outcome::CutByServe(why.clone());
        }
        if self.ended || self.expected == Some(self.sent) {
            return Outcome::Complete;
        }
        match self.activity.as_ref().and_then(|a| a.closed_reason()) {
            Some(why) => Outcome::CutByServe(why),
            None => Outcome::CutByClient,
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(f) = self.on_done.take() {
            f(self.sent, self.outcome());
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
            }
            Poll::Ready(Some(Err(e))) => self.failure = Some(e.to_string()),
            Poll::Ready(None) => self.ended = true,
            Poll::Pending => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use std::sync::Mutex;

    type Seen = Arc<Mutex<Option<(u64, Outcome)>>>;

    fn logged(body: Body) -> (Logged, Seen) {
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        let l = Logged::new(
            body,
            None,
            Box::new(move |n, o| *s.lock().unwrap() = Some((n, o))),
        );
        (l, seen)
    }

    fn poll(l: &mut Logged) -> Option<Result<Frame<Bytes>, io::Error>> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        match Pin::new(l).poll_frame(&mut cx) {
            Poll::Ready(f) => f,
            Poll::Pending => panic!("a full body is ready"),
        }
    }

    #[test]
    fn a_body_sent_whole_is_complete_even_when_never_polled_to_its_end() {
        // hyper stops at is_end_stream: the end is known from the length, not from a None.
        let (mut l, seen) = logged(Body::full("hello"));
        assert!(poll(&mut l).is_some());
        drop(l);
        assert_eq!(*seen.lock().unwrap(), Some((5, Outcome::Complete)));
        let (l, seen) = logged(Body::Empty);
        drop(l);
        assert_eq!(*seen.lock().unwrap(), Some((0, Outcome::Complete)));
    }

    #[test]
    fn a_body_dropped_early_was_cut_by_the_client() {
        let (l, seen) = logged(Body::full("hello"));
        drop(l);
        assert_eq!(*seen.lock().unwrap(), Some((0, Outcome::CutByClient)));
    }
}
