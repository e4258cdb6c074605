//! Where an export goes: a regular file, written through a temp file in its folder and renamed
//! when complete, or stdout (`-`). A symlink, folder, device node or FIFO given as output is
//! refused, never replaced (`/dev/stdout` is a symlink: `-` is the way to say stdout).

use std::fmt;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::ExportError;
use crate::fsutil::{AtomicFile, FsError, check_replaceable, folder_of};
use crate::store::StoreError;

/// An export's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard output, streamed (`-`).
    Stdout,
    /// A file, replaced atomically.
    File(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Stdout => write!(f, "stdout"),
            Target::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Target {
    /// The output a command line names: `-` is stdout; anything else must be absent or a
    /// regular file in an existing folder.
    pub fn parse(arg: &Path) -> Result<Target, ExportError> {
        if arg.as_os_str() == "-" {
            return Ok(Target::Stdout);
        }
        check_replaceable(arg).map_err(refused)?;
        Ok(Target::File(arg.to_path_buf()))
    }

    /// The file's path (None for stdout).
    pub fn path(&self) -> Option<&Path> {
        match self {
            Target::Stdout => None,
            Target::File(p) => Some(p),
        }
    }

    /// Runs `write` on the output and completes it: for a file, the temp file is renamed over
    /// the destination only when `write` succeeded, and removed otherwise.
    pub(crate) fn write_with(
        &self,
        write: impl FnOnce(&mut dyn Write) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        let name = self.to_string();
        match self {
            Target::Stdout => {
                let stdout = io::stdout();
                if stdout.is_terminal() {
                    return Err(ExportError::Usage(
                        "refusing to write an archive to a terminal".into(),
                    )
                    .with_hint(
                        "redirect stdout (`> images.tar`, `| ssh host ...`) or name a file",
                    ));
                }
                let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
                write(&mut out)?;
                out.flush().map_err(|e| ExportError::Io(name, e))
            }
            Target::File(path) => {
                let mut file = create_temp(path)?;
                {
                    let early = Writeback::new(&mut file);
                    let mut out = BufWriter::with_capacity(1 << 20, early);
                    write(&mut out)?;
                    out.flush().map_err(|e| ExportError::Io(name, e))?;
                }
                Ok(file.commit().map_err(StoreError::from)?)
            }
        }
    }
}

/// An output that is not a regular file is the user's mistake (exit 2), with a way out.
fn refused(e: FsError) -> ExportError {
    match e {
        FsError::WontReplace { .. } => ExportError::Usage(e.to_string()).with_hint(
            "name a new or regular file, or `-` for stdout (`--oci-archive - | ssh host ...`)",
        ),
        other => ExportError::Store(StoreError::from(other)),
    }
}

/// The temp file for an output file, in the output's folder (renamed over it when complete).
pub(super) fn create_temp(path: &Path) -> Result<AtomicFile, ExportError> {
    AtomicFile::create(path, folder_of(path), 0o644).map_err(refused)
}

/// Starts the kernel's writeback of every few MiB as they are written, so the fsync before the
/// rename waits for the last of them only, not for the whole archive (`sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE` only queues the writes; durability still comes from the fsync).
struct Writeback<'a> {
    file: &'a mut AtomicFile,
    written: u64,
    started: u64,
}

/// Bytes written between two writeback starts.
const WRITEBACK_EVERY: u64 = 8 << 20;

impl<'a> Writeback<'a> {
    fn new(file: &'a mut AtomicFile) -> Writeback<'a> {
        Writeback {
            file,
            written: 0,
            started: 0,
        }
    }
}

impl Write for Writeback<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WRITEBACK_EVERY {
            use std::os::fd::AsRawFd;
            let fd = self.file.file().as_raw_fd();
            let len = (self.written - self.started) as libc::off64_t;
            // SAFETY: a plain syscall on an open descriptor; a failure only loses the head start.
            unsafe {
                libc::sync_file_range(
                    fd,
                    self.started as libc::off64_t,
                    len,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
