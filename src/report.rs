//! What the library tells its caller while it works. Only the CLI turns these into output.

use std::collections::HashMap;
use std::time::Duration;

use crate::digest::Digest;

/// Something that happened during a run.
#[derive(Debug, Clone)]
pub enum Event {
    /// A reference resolved to a manifest; `blobs`/`bytes` count what the image needs.
    Resolved {
        /// The full normalized reference.
        reference: String,
        /// The manifest or index digest.
        digest: Digest,
        /// Platforms kept.
        platforms: Vec<String>,
    },
    /// Everything resolved; what will be fetched and what is already in the bundle.
    Planned {
        /// Blobs to download.
        blobs_to_fetch: usize,
        /// Bytes to download.
        bytes_to_fetch: u64,
        /// Blobs the bundle already has.
        blobs_present: usize,
        /// Their bytes.
        bytes_present: u64,
        /// For each blob to transfer, the references of the images that need it (for people:
        /// a digest alone says nothing). Shared: a reporter keeps it without copying it.
        owners: std::sync::Arc<HashMap<Digest, Vec<String>>>,
    },
    /// A blob download started (or resumed from `offset`).
    BlobStarted {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// Bytes already on disk from an earlier attempt or run.
        offset: u64,
    },
    /// Bytes of a blob arrived.
    BlobProgress {
        /// The blob.
        digest: Digest,
        /// New bytes since the last event.
        bytes: u64,
    },
    /// Bytes counted earlier for this blob were thrown away (a restart from zero).
    BlobRewound {
        /// The blob.
        digest: Digest,
        /// Bytes discarded.
        bytes: u64,
    },
    /// A blob is verified and stored.
    BlobDone {
        /// The blob.
        digest: Digest,
    },
    /// A blob could not be fetched.
    BlobFailed {
        /// The blob.
        digest: Digest,
    },
    /// A request failed in a way worth retrying; the next attempt follows after `delay`.
    Retrying {
        /// What was being fetched (a URL with credentials removed).
        what: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Wait before the next attempt.
        delay: Duration,
        /// Why it failed.
        reason: String,
    },
    /// An image is complete in the bundle.
    ImageDone {
        /// The full normalized reference.
        reference: String,
        /// The manifest or index digest.
        digest: Digest,
        /// Bytes of the image's distinct blobs.
        bytes: u64,
        /// Time from the start of the run until the image was committed.
        elapsed: Duration,
    },
    /// A single-platform image is kept for some wanted platforms and lacks the others.
    PlatformsMissing {
        /// The full normalized reference.
        reference: String,
        /// The wanted platforms (`--platform`) it has no image for.
        missing: Vec<String>,
    },
    /// An image could not be bundled; the others go on.
    ImageFailed {
        /// The full normalized reference.
        reference: String,
        /// Why, with its cause chain, kind and hint.
        error: crate::error::Error,
    },
    /// A copy out of a bundle starts (export, apply, restore): `bytes` to write, for
    /// `images` images (0 when it is not counted by image).
    CopyStarted {
        /// Images it brings, each reported by [`Event::ImageCopied`].
        images: usize,
        /// Bytes it writes (the tar stream's, before any compression), reported by
        /// [`Event::Copied`].
        bytes: u64,
    },
    /// More bytes of the copy were written.
    Copied {
        /// New bytes since the last event.
        bytes: u64,
    },
    /// One image of the copy is through (restore: imported, or failed).
    ImageCopied {
        /// The full normalized reference.
        reference: String,
        /// Whether it failed (its error is in the command's result).
        failed: bool,
    },
}

/// Receives events. Implementations must be cheap: events come from the transfer hot path.
pub trait Reporter: Send + Sync {
    /// Called for every event.
    fn event(&self, event: &Event);
}

/// A reporter that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _: &Event) {}
}

/// A writer that reports what passes through it as [`Event::Copied`], a few times a
/// megabyte rather than on every small write (tar headers come 512 bytes at a time).
pub struct Counting<'r, W> {
    inner: W,
    reporter: &'r dyn Reporter,
    unreported: u64,
}

/// Bytes gathered before an [`Event::Copied`].
const COUNT_STEP: u64 = 256 << 10;

impl<'r, W> Counting<'r, W> {
    /// Counts what is written to `inner`.
    pub fn new(inner: W, reporter: &'r dyn Reporter) -> Self {
        Counting {
            inner,
            reporter,
            unreported: 0,
        }
    }

    fn report(&mut self) {
        if self.unreported > 0 {
            self.reporter.event(&Event::Copied {
                bytes: std::mem::take(&mut self.unreported),
            });
        }
    }
}

impl<W: std::io::Write> std::io::Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.unreported += n as u64;
        if self.unreported >= COUNT_STEP {
            self.report();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.report();
        self.inner.flush()
    }
}

impl<W> Drop for Counting<'_, W> {
    fn drop(&mut self) {
        self.report();
    }
}

/// Names for a message: the first `shown`, joined by commas, then how many more there are
/// (`a, b, c and 7 more`), so that a message stays one readable line however many there are.
pub fn some_of<S: AsRef<str>>(names: &[S], shown: usize) -> String {
    let listed: Vec<&str> = names.iter().take(shown).map(AsRef::as_ref).collect();
    match names.len().saturating_sub(shown) {
        0 => listed.join(", "),
        n => format!("{} and {n} more", listed.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn some_of_lists_the_first_then_counts_the_rest() {
        assert_eq!(super::some_of(&["a", "b"], 5), "a, b");
        assert_eq!(super::some_of(&["a", "b", "c"], 2), "a, b and 1 more");
        assert_eq!(super::some_of::<&str>(&[], 2), "");
    }
}
