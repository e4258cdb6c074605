//! Bounds on what ferry reads from a registry besides manifests and blobs (which have their
//! own): a hostile or broken server must not make it buffer without limit.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

/// The largest token response accepted. Real ones are JSON Web Tokens of 1 to 4 KiB (Docker
/// Hub, GHCR, ECR, ACR, Quay, Harbor), sometimes with a refresh token beside; 1 MiB is over
/// a hundred times that and still nothing to hold in memory.
pub(crate) const MAX_TOKEN_RESPONSE: usize = 1 << 20;

/// How much of an error body is read: distribution's JSON errors and object stores' XML ones
/// fit in well under 1 KiB, and only their first message is shown.
pub(crate) const MAX_ERROR_BODY: usize = 8 << 10;

/// How a capped read ended.
pub(crate) enum Capped {
    /// The whole body, within the limit.
    Whole(Bytes),
    /// The body went past the limit: its first `limit` bytes.
    TooLarge(Bytes),
}

/// Reads `resp`'s body up to `limit` bytes, waiting at most `stall` for each chunk. A stall or
/// a broken body ends the read with what arrived (callers of error bodies want the message if
/// there is one; a token caller finds the JSON incomplete).
pub(crate) async fn read_capped(resp: reqwest::Response, limit: usize, stall: Duration) -> Capped {
    let mut body = BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(stall, stream.next()).await {
        if body.len() + chunk.len() > limit {
            body.extend_from_slice(&chunk[..limit - body.len()]);
            return Capped::TooLarge(body.freeze());
        }
        body.extend_from_slice(&chunk);
    }
    Capped::Whole(body.freeze())
}

/// An error body, truncated to `MAX_ERROR_BODY`.
pub(crate) async fn error_body(resp: reqwest::Response, stall: Duration) -> Bytes {
    match read_capped(resp, MAX_ERROR_BODY, stall).await {
        Capped::Whole(b) | Capped::TooLarge(b) => b,
    }
}
