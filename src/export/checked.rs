//! Reading blobs for an export: verified as they stream, stoppable by a signal, and with their
//! failures kept apart from the output's (both surface as `io::Error` through tar or zstd).

use std::io::{self, Read};

use tokio_util::sync::CancellationToken;

use super::ExportError;
use crate::digest::Digest;
use crate::store::{BundleSource, blob_read_error};

/// Why a read inside a copy stopped: carried through `io::Error` and recovered by [`stopped`].
#[derive(Debug)]
enum Stop {
    Interrupted,
    Blob(crate::store::StoreError),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Interrupted => write!(f, "interrupted"),
            Stop::Blob(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Stop {}

/// A blob of the bundle as a reader: opened without following links, of the size `size`,
/// re-hashed as it is read (the last read fails on a mismatch), and checking `cancel`
/// before every read.
pub(super) fn open_blob(
    layout: &dyn BundleSource,
    digest: &Digest,
    size: Option<u64>,
    cancel: &CancellationToken,
) -> Result<(u64, impl Read), ExportError> {
    let blob = layout.open_blob(digest, size).map_err(ExportError::Blob)?;
    let (len, path) = (blob.size(), blob.path().to_path_buf());
    let reader = blob
        .reader()
        .map_err(|e| ExportError::Blob(blob.error(e)))?;
    Ok((
        len,
        Checked {
            inner: reader,
            cancel: cancel.clone(),
            digest: digest.clone(),
            path,
        },
    ))
}

struct Checked<R> {
    inner: R,
    cancel: CancellationToken,
    digest: Digest,
    path: std::path::PathBuf,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(io::Error::other(Stop::Interrupted));
        }
        self.inner.read(buf).map_err(|e| {
            io::Error::other(Stop::Blob(blob_read_error(
                self.path.clone(),
                self.digest.clone(),
                e,
            )))
        })
    }
}

/// An error out of a copy: a blob's failure or an interruption when a [`Checked`] reader
/// raised it, else a failure writing `out`.
pub(super) fn stopped(out: &str, e: io::Error) -> ExportError {
    if e.get_ref().is_some_and(|inner| inner.is::<Stop>()) {
        let inner = e.into_inner().expect("checked above");
        return match *inner.downcast::<Stop>().expect("checked above") {
            Stop::Interrupted => ExportError::Interrupted,
            Stop::Blob(b) => ExportError::Blob(b),
        };
    }
    ExportError::Io(out.to_owned(), e)
}
