//! The receiving side of a download: one stream, or parts (closed byte ranges of 8 to 64 MiB)
//! taken in order by several connections, each part resumed on its own after a cut. Bytes go
//! to the sink as they arrive: nothing here waits for the disk or the hash beyond the bounded
//! hand-over.
//!
//! A blob worth splitting asks for its first part alone: a 206 with that exact range starts
//! the other connections; a 200 (a registry or storage that ignores Range) is used as the one
//! stream it is. A part answered with anything but its own range (or under another ETag) later
//! on stops the parts: what is contiguous from byte 0 is kept and the rest comes as one stream.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Buf;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::Job;
use super::sink::Sink;
use crate::registry::{BlobBody, PartAnswer, RegistryError, Remote, Retrier};
use crate::store::{PartialDownload, plan_parts};

/// One range of the blob and how much of it went to the writer: counted as each chunk is
/// handed over, so a connection dropped at any point leaves it exact.
#[derive(Debug)]
struct Cursor {
    start: u64,
    end: u64,
    /// Bytes handed to the sink from `start` on (the sink writes every one of them).
    sent: AtomicU64,
}

impl Cursor {
    fn new(start: u64, end: u64, sent: u64) -> Cursor {
        Cursor {
            start,
            end,
            sent: AtomicU64::new(sent),
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn next(&self) -> u64 {
        self.start + self.sent()
    }

    fn left(&self) -> u64 {
        self.end - self.next()
    }
}

/// The parts still to fetch and the ETag they come under.
pub(super) struct Plan {
    cursors: Vec<Cursor>,
    etag: Option<String>,
}

impl Plan {
    /// What `partial` holds: its parts, or one stream.
    pub fn of(partial: &PartialDownload) -> Plan {
        let cursors = partial
            .parts()
            .iter()
            .map(|p| Cursor::new(p.start, p.end, p.done))
            .collect();
        Plan {
            cursors,
            etag: partial.etag().map(str::to_owned),
        }
    }

    /// Another remote serves the rest: its ETags are not the first one's.
    pub fn forget_etag(&mut self) {
        self.etag = None;
    }

    /// One stream from byte `from` on.
    fn single(size: u64, from: u64) -> Plan {
        Plan {
            cursors: vec![Cursor::new(0, size, from)],
            etag: None,
        }
    }

    fn contiguous(&self) -> u64 {
        crate::store::contiguous(self.cursors.iter().map(|c| (c.next(), c.left())))
    }
}

/// Why a transfer stopped short of the blob's last byte.
pub(super) enum Stop {
    /// A registry or network fault this remote's retries did not overcome.
    Registry(RegistryError),
    /// Content that cannot be right (more bytes than asked for): the download is thrown away.
    Discard(RegistryError),
    /// The writer stopped (a full disk): its error ends the download.
    Closed,
}

/// How one body ended short of its range.
enum PumpStop {
    /// A fault worth another attempt from where the bytes end.
    Failed(RegistryError),
    Stop(Stop),
}

/// How one part ended short of its range.
enum PartStop {
    Stop(Stop),
    /// The registry does not serve this part as asked: fetch the rest as one stream.
    Fallback(String),
}

impl<'a> Job<'a> {
    /// Fetches every byte `plan` still lacks from `remote`, into `sink`.
    pub(super) async fn transfer(
        &self,
        remote: &Remote,
        sink: &Sink,
        plan: &mut Plan,
        retrier: &mut Retrier<'a>,
    ) -> Result<(), Stop> {
        let mut whole = None;
        let mut first_part = None;
        if let Some((connections, planned)) = self.split_for(plan) {
            let range = (plan.cursors[0].sent(), planned[0].end);
            match self.open_first_part(remote, range, retrier).await? {
                PartAnswer::Part(body) => {
                    tracing::debug!(
                        "blob {} from {}: {} parts of {} MiB over {connections} connections",
                        self.digest.short(),
                        remote.name(),
                        planned.len(),
                        (planned[0].end - planned[0].start) >> 20,
                    );
                    sink.split(planned.clone(), body.etag.clone())
                        .map_err(|_| Stop::Closed)?;
                    plan.cursors = planned
                        .iter()
                        .map(|p| Cursor::new(p.start, p.end, p.done))
                        .collect();
                    plan.etag = body.etag.clone();
                    first_part = Some(body);
                }
                PartAnswer::Whole(body) => {
                    self.one_stream(remote, "it answered a Range request with the whole blob");
                    whole = Some(body);
                }
                PartAnswer::Refused(why) => self.one_stream(remote, &why),
            }
        }
        if plan.cursors.len() > 1 {
            match self
                .run_parts(remote, sink, plan, retrier, first_part)
                .await
            {
                Ok(()) => return Ok(()),
                Err(PartStop::Stop(s)) => return Err(s),
                Err(PartStop::Fallback(why)) => self.collapse(remote, sink, plan, &why)?,
            }
        }
        self.run_stream(remote, sink, &plan.cursors[0], retrier, whole)
            .await
    }

    /// The connections and parts to fetch `plan` with, when it is one stream worth splitting
    /// (a blob of at least the threshold, with two parts or more left to fetch).
    fn split_for(&self, plan: &Plan) -> Option<(usize, Vec<crate::store::Part>)> {
        let connections = self
            .policy
            .parts
            .min(self.registries.connections_per_registry());
        let single = plan.cursors.len() == 1;
        if !single || connections < 2 || self.size < self.policy.threshold {
            return None;
        }
        let planned = plan_parts(self.size, plan.cursors[0].sent(), connections);
        (planned.len() > 1).then_some((connections, planned))
    }

    /// Asks for the first part of a blob about to be split, retrying until it answers.
    async fn open_first_part(
        &self,
        remote: &Remote,
        range: (u64, u64),
        retrier: &mut Retrier<'a>,
    ) -> Result<PartAnswer, Stop> {
        retrier
            .run(|attempt| {
                self.registries
                    .open_blob_part(remote, self.digest, self.size, range, None, attempt)
            })
            .await
            .map_err(Stop::Registry)
    }

    /// Says (in `-v`) why the blob comes as one stream.
    fn one_stream(&self, remote: &Remote, why: &str) {
        tracing::debug!(
            "blob {} from {}: {why}; fetching it as one stream",
            self.digest.short(),
            remote.name()
        );
    }

    /// Stops fetching in parts: keeps the contiguous prefix, drops the rest.
    fn collapse(
        &self,
        remote: &Remote,
        sink: &Sink,
        plan: &mut Plan,
        why: &str,
    ) -> Result<(), Stop> {
        let prefix = plan.contiguous();
        let sent: u64 = plan.cursors.iter().map(Cursor::sent).sum();
        self.one_stream(remote, &format!("{why} (from byte {prefix} on)"));
        sink.collapse().map_err(|_| Stop::Closed)?;
        if sent > prefix {
            self.rewound(sent - prefix);
        }
        *plan = Plan::single(self.size, prefix);
        Ok(())
    }

    /// Fetches every unfinished part, in order, over as many connections as the policy and
    /// the registry allow: each connection takes the next part when it is done with one. The
    /// first connection shares the blob's retry counter; the others count their own.
    async fn run_parts(
        &self,
        remote: &Remote,
        sink: &Sink,
        plan: &Plan,
        retrier: &mut Retrier<'a>,
        first: Option<BlobBody>,
    ) -> Result<(), PartStop> {
        let todo: Vec<usize> = (0..plan.cursors.len())
            .filter(|&i| plan.cursors[i].left() > 0)
            .collect();
        let connections = self
            .policy
            .parts
            .min(self.registries.connections_per_registry())
            .clamp(1, todo.len().max(1));
        let mut others: Vec<Retrier<'a>> = (1..connections)
            .map(|c| {
                let what = format!(
                    "blob {} connection {}/{connections} from {}",
                    self.digest.short(),
                    c + 1,
                    remote.name()
                );
                self.registries.retrier(remote, what)
            })
            .collect();
        // The first connection starts on the part whose body is open, when one is.
        let queue = Queue {
            todo: &todo,
            next: AtomicUsize::new(usize::from(first.is_some())),
        };
        let mut first = first.map(|body| (todo[0], body));
        let result = {
            let retriers = std::iter::once(retrier).chain(others.iter_mut());
            let mut running: FuturesUnordered<_> = retriers
                .map(|r| self.connection(remote, sink, plan, &queue, r, first.take()))
                .collect();
            // The first connection to fail ends them all (dropping the others' bodies).
            let mut result = Ok(());
            while let Some(done) = running.next().await {
                if done.is_err() {
                    result = done;
                    break;
                }
            }
            result
        };
        let retries: u32 = others.iter().map(Retrier::retries).sum();
        self.part_retries.fetch_add(retries, Ordering::Relaxed);
        result
    }

    /// One connection's work: parts from the queue until none is left.
    async fn connection(
        &self,
        remote: &Remote,
        sink: &Sink,
        plan: &Plan,
        queue: &Queue<'_>,
        retrier: &mut Retrier<'a>,
        mut first: Option<(usize, BlobBody)>,
    ) -> Result<(), PartStop> {
        loop {
            let (index, body) = match first.take() {
                Some((index, body)) => (index, Some(body)),
                None => match queue.take() {
                    Some(index) => (index, None),
                    None => return Ok(()),
                },
            };
            let part = (index, &plan.cursors[index]);
            self.run_part(remote, sink, part, retrier, plan.etag.as_deref(), body)
                .await?;
        }
    }

    /// Fetches one part to its end, resuming after each cut; `first` is its open body when
    /// the split was decided on it.
    async fn run_part(
        &self,
        remote: &Remote,
        sink: &Sink,
        (index, cursor): (usize, &Cursor),
        retrier: &mut Retrier<'a>,
        etag: Option<&str>,
        mut first: Option<BlobBody>,
    ) -> Result<(), PartStop> {
        while cursor.left() > 0 {
            let mut body = match first.take() {
                Some(b) => b,
                None => {
                    let attempt = retrier.next_attempt();
                    let range = (cursor.next(), cursor.end);
                    let opened = self
                        .registries
                        .open_blob_part(remote, self.digest, self.size, range, etag, attempt)
                        .await;
                    match opened {
                        Ok(PartAnswer::Part(b)) => b,
                        Ok(PartAnswer::Whole(_)) => {
                            let why = "it answered a Range request with the whole blob";
                            return Err(PartStop::Fallback(why.into()));
                        }
                        Ok(PartAnswer::Refused(why)) => return Err(PartStop::Fallback(why)),
                        Err(e) => {
                            let failed = retrier.failed(e, false).await;
                            failed.map_err(|e| PartStop::Stop(Stop::Registry(e)))?;
                            continue;
                        }
                    }
                }
            };
            self.note_source(&body, cursor.sent() > 0);
            let before = cursor.sent();
            match self.pump(&mut body, sink, index, cursor, 0).await {
                Ok(()) => {}
                Err(PumpStop::Stop(s)) => return Err(PartStop::Stop(s)),
                Err(PumpStop::Failed(e)) => {
                    let failed = retrier.failed(e, cursor.sent() > before).await;
                    failed.map_err(|e| PartStop::Stop(Stop::Registry(e)))?;
                }
            }
        }
        Ok(())
    }

    /// Fetches the blob as one stream from where its bytes end, resuming after each cut. A
    /// registry that answers a resume with the whole blob has the bytes already on disk
    /// skipped (they cost the wire, not the disk nor the hash).
    async fn run_stream(
        &self,
        remote: &Remote,
        sink: &Sink,
        cursor: &Cursor,
        retrier: &mut Retrier<'a>,
        mut first: Option<BlobBody>,
    ) -> Result<(), Stop> {
        while cursor.left() > 0 {
            let mut body = match first.take() {
                Some(b) => b,
                None => {
                    let attempt = retrier.next_attempt();
                    let opened = self
                        .registries
                        .open_blob(remote, self.digest, self.size, cursor.sent(), attempt)
                        .await;
                    match opened {
                        Ok(b) => b,
                        Err(e) => {
                            retrier.failed(e, false).await.map_err(Stop::Registry)?;
                            continue;
                        }
                    }
                }
            };
            self.note_source(&body, body.start > 0);
            let skip = cursor.sent() - body.start.min(cursor.sent());
            let before = cursor.sent();
            match self.pump(&mut body, sink, 0, cursor, skip).await {
                Ok(()) => {}
                Err(PumpStop::Stop(s)) => return Err(s),
                Err(PumpStop::Failed(e)) => {
                    // Progress is new ground: a registry that ignores Range and keeps breaking
                    // off makes none, so its failures count against --retries.
                    let progressed = cursor.sent() > before;
                    retrier
                        .failed(e, progressed)
                        .await
                        .map_err(Stop::Registry)?;
                }
            }
        }
        Ok(())
    }

    /// Remembers where the bytes come from (for an error about their content); counts a
    /// resume.
    fn note_source(&self, body: &BlobBody, resumed: bool) {
        *self.last_url.lock().expect("url lock") =
            (body.registry().to_owned(), body.url().to_owned());
        if resumed {
            self.resumes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands a body's bytes to the sink for part `part`, after skipping `skip` of them, until
    /// the body ends. More bytes than the part's range discard the download.
    async fn pump(
        &self,
        body: &mut BlobBody,
        sink: &Sink,
        part: usize,
        cursor: &Cursor,
        mut skip: u64,
    ) -> Result<(), PumpStop> {
        loop {
            let mut chunk = match body.next_chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) if cursor.left() == 0 => return Ok(()),
                Ok(None) => {
                    let detail =
                        format!("the body ended at byte {} of {}", cursor.next(), cursor.end);
                    return Err(PumpStop::Failed(body.interrupted(detail)));
                }
                Err(e) => return Err(PumpStop::Failed(e)),
            };
            self.count_received(chunk.len() as u64, body)?;
            let skipped = skip.min(chunk.len() as u64);
            chunk.advance(skipped as usize);
            skip -= skipped;
            let n = chunk.len() as u64;
            if n > cursor.left() {
                let detail = match cursor.end == self.size && cursor.start == 0 {
                    true => format!(
                        "the registry sent more than the {} bytes the manifest declares",
                        self.size
                    ),
                    false => format!(
                        "the registry sent more than bytes {}-{} asked for",
                        cursor.start,
                        cursor.end - 1
                    ),
                };
                return Err(PumpStop::Stop(Stop::Discard(body.corrupt(detail))));
            }
            if n > 0 {
                sink.send(part, chunk)
                    .await
                    .map_err(|_| PumpStop::Stop(Stop::Closed))?;
                cursor.sent.fetch_add(n, Ordering::Relaxed);
                self.progress(n);
            }
        }
    }

    /// Counts bytes off the wire; a registry that keeps sending without the blob ever
    /// completing is stopped.
    fn count_received(&self, n: u64, body: &BlobBody) -> Result<(), PumpStop> {
        let received = self.received.fetch_add(n, Ordering::Relaxed) + n;
        if received > 3 * self.size + (64 << 20) {
            let detail = format!(
                "received {received} bytes for a blob of {} without completing it; the registry keeps breaking off",
                self.size
            );
            // Not worth a retry: the retrier gives up on it at once.
            return Err(PumpStop::Failed(body.interrupted(detail).into_protocol()));
        }
        Ok(())
    }
}

/// The parts left to fetch, taken in order by the connections.
struct Queue<'p> {
    todo: &'p [usize],
    next: AtomicUsize,
}

impl Queue<'_> {
    fn take(&self) -> Option<usize> {
        self.todo
            .get(self.next.fetch_add(1, Ordering::Relaxed))
            .copied()
    }
}
