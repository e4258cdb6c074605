//! Data on stdout, through one writer: a reader that stops early (`ferry ls --json | head`)
//! closes the pipe, and the run goes on quietly, its exit code unchanged, instead of panicking
//! as `println!` does. SIGPIPE keeps Rust's "ignore" (not the default "die"): `restore` streams
//! into `ctr images import -`, and a ctr that exits early must be an error ferry reports, not a
//! signal that kills it.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout's reader has gone: nothing more is written.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// Set when a write failed otherwise (a full disk behind `> file`): the run then fails.
static FAILED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to stdout as is (add the line break yourself; see [`outln!`]).
pub fn write(text: &str) {
    write_bytes(text.as_bytes());
}

/// Writes bytes to stdout (a completion script, a page), flushed.
pub fn write_bytes(bytes: &[u8]) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
        } else if !FAILED.swap(true, Ordering::Relaxed) {
            super::output::error(&format!("cannot write to stdout: {e}"));
        }
    }
}

/// Whether a write to stdout failed for another reason than its reader leaving early (the
/// command then exits 1 even where it would have succeeded).
pub fn failed() -> bool {
    FAILED.load(Ordering::Relaxed)
}

/// `println!` for data on stdout, through [`write`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::stdout::write(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;
