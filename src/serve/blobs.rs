//! Blob responses: HEAD, a whole GET, and one `Range`, every byte read through the store's
//! checked readers on the read pool.

use hyper::header;
use hyper::{Response, StatusCode};

use super::body::Body;
use super::range::{Range, parse_range};
use super::routes::{Ctx, Refusal, Resp, error};
use crate::digest::Digest;

impl Ctx<'_> {
    /// Answers a blob request: `size` is what the repository's manifests declare.
    pub(super) async fn blob(
        &self,
        digest: Digest,
        size: u64,
        range: Option<String>,
        head: bool,
    ) -> Resp {
        let unknown = || {
            error(
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                &format!("blob unknown: {digest}"),
            )
        };
        let blob = match self.open(&digest, size) {
            Ok(b) => b,
            Err(Refusal::Missing) => return unknown(),
            Err(Refusal::Bad(e)) => {
                self.mark_bad(&digest, e);
                return unknown();
            }
        };
        let builder = Response::builder()
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header("Docker-Content-Digest", digest.to_string())
            .header(header::ACCEPT_RANGES, "bytes");
        let range = if head {
            Range::Whole
        } else {
            parse_range(range.as_deref(), size)
        };
        // The first read (opening, maybe verifying whole for a range) runs on the pool too.
        let (reader, len, builder) = match range {
            Range::Unsatisfiable => {
                return builder
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                    .body(Body::Empty)
                    .expect("a valid response");
            }
            Range::Whole if head => {
                return builder
                    .header(header::CONTENT_LENGTH, size)
                    .body(Body::Empty)
                    .expect("a valid response");
            }
            // A blob verified since its file last changed is read as it is; any other through
            // the hash, its last chunk held back until the digest is checked.
            Range::Whole => {
                let b = blob.clone();
                let opened = self.pool.run(move || b.checked_reader()).await;
                (opened.and_then(|r| r), size, builder)
            }
            Range::Part { start, end } => {
                // A part cannot be checked on its own: the blob is verified whole first,
                // unless it was since its file last changed; the reader cuts when the file
                // changes.
                let b = blob.clone();
                let opened = self
                    .pool
                    .run(move || {
                        b.range_reader(start, end + 1)
                            .map(|r| Box::new(r) as Box<dyn std::io::Read + Send>)
                            .map_err(|e| std::io::Error::other(e.to_string()))
                    })
                    .await;
                let builder = builder
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
                (opened.and_then(|r| r), end - start + 1, builder)
            }
        };
        let reader = match reader {
            Ok(r) => r,
            Err(e) => {
                self.mark_bad(&digest, e.to_string());
                return unknown();
            }
        };
        let snap = self.snap.clone();
        let reporter = self.reporter.clone();
        let body = Body::blob(
            reader,
            len,
            self.pool.clone(),
            self.activity.clone(),
            move |e| {
                // A read that failed on a blob found wrong (or changed) refuses it from now on;
                // a plain I/O error does not.
                if e.kind() == std::io::ErrorKind::InvalidData && snap.mark_bad(&digest) {
                    blob.forget();
                    reporter.event(&super::Event::BlobRefused {
                        digest: digest.clone(),
                        reason: e.to_string(),
                    });
                }
            },
        );
        builder
            .header(header::CONTENT_LENGTH, len)
            .body(body)
            .expect("a valid response")
    }
}
