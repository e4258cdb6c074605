//! Whole-file replacement that a crash cannot tear and a planted link cannot redirect: a temp
//! file with an unpredictable name, created with O_EXCL|O_NOFOLLOW (so it is always a new
//! file of ours), fsynced, renamed over the destination, the folder fsynced. The destination
//! must be absent or a regular file: a symlink, folder, device node or FIFO is refused, never
//! replaced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{FsError, folder_of};

/// Writes `bytes` to `dest` atomically (mode 0o644), staging the temp file in `tmp_dir` (on
/// dest's filesystem), or beside `dest` when `None`.
pub fn write_atomic(dest: &Path, bytes: &[u8], tmp_dir: Option<&Path>) -> Result<(), FsError> {
    write_atomic_mode(dest, bytes, tmp_dir, 0o644)
}

/// [`write_atomic`] with a file mode (0o755 for a script, 0o600 for secrets).
pub fn write_atomic_mode(
    dest: &Path,
    bytes: &[u8],
    tmp_dir: Option<&Path>,
    mode: u32,
) -> Result<(), FsError> {
    let tmp_dir = tmp_dir.unwrap_or_else(|| folder_of(dest));
    fs::create_dir_all(tmp_dir).map_err(FsError::io("create", tmp_dir))?;
    let mut file = AtomicFile::create(dest, tmp_dir, mode)?;
    file.write_all(bytes)
        .map_err(FsError::io("write", file.tmp_path()))?;
    file.commit()
}

/// Refuses to replace anything but a regular file (or nothing) at `path`.
pub fn check_replaceable(path: &Path) -> Result<(), FsError> {
    let what = match path.symlink_metadata() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(FsError::io("stat", path)(e)),
        Ok(m) if m.is_file() => return Ok(()),
        Ok(m) if m.is_symlink() => "a symlink",
        Ok(m) if m.is_dir() => "a folder",
        Ok(_) => "a device, FIFO or socket",
    };
    Err(FsError::WontReplace {
        path: path.to_path_buf(),
        what,
    })
}

/// A file being written to replace `dest` atomically. Dropped before [`AtomicFile::commit`]
/// (an error, an interrupted run), its temp file is removed.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl AtomicFile {
    /// Creates the temp file for `dest` in `tmp_dir` (which must be on dest's filesystem),
    /// refusing up front a destination that is not a regular file.
    pub fn create(dest: &Path, tmp_dir: &Path, mode: u32) -> Result<AtomicFile, FsError> {
        AtomicFile::create_named(dest, tmp_dir, mode, random_hex)
    }

    /// [`AtomicFile::create`] with the random part of the temp names from `random` (a test
    /// picks names it planted files at).
    fn create_named(
        dest: &Path,
        tmp_dir: &Path,
        mode: u32,
        mut random: impl FnMut() -> String,
    ) -> Result<AtomicFile, FsError> {
        check_replaceable(dest)?;
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        // Keep the temp name within NAME_MAX whatever the destination's name.
        let short: String = name.chars().take(64).collect();
        let mut attempts = 0;
        loop {
            let tmp = tmp_dir.join(format!(".{short}.{}.ferry-tmp", random()));
            let opened = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp);
            match opened {
                Ok(file) => {
                    return Ok(AtomicFile {
                        file,
                        tmp,
                        dest: dest.to_path_buf(),
                        done: false,
                    });
                }
                // Someone else's file (or link) at that name: never touch it, pick another.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => {
                    attempts += 1;
                }
                Err(e) => return Err(FsError::io("create", &tmp)(e)),
            }
        }
    }

    /// The temp file's path (for a tool that writes it by name, such as mkfs.ext4).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The open temp file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// fsyncs the temp file, renames it over the destination and fsyncs the folder.
    pub fn commit(mut self) -> Result<(), FsError> {
        self.file
            .sync_all()
            .map_err(FsError::io("sync", &self.tmp))?;
        // Checked again: something may have been put there since create (rename would replace
        // a link or node, not write through it, but it must not replace it silently either).
        check_replaceable(&self.dest)?;
        fs::rename(&self.tmp, &self.dest).map_err(FsError::io("rename into", &self.dest))?;
        self.done = true;
        let dir = self
            .dest
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sync_dir(dir)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// 128 random bits from the kernel, in hex: a temp name nobody can guess in advance.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most `len` bytes into the buffer it is given.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        // Only without getrandom(2) (Linux < 3.17): O_EXCL still keeps the file ours.
        bytes = fastrand::u128(..).to_le_bytes();
    }
    hex::encode(bytes)
}

/// fsyncs a folder so that renames into it survive a power loss.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FsError::io("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn replaces_a_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "old").unwrap();
        write_atomic(&dir.path().join("a"), b"new", None).unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_links_folders_and_devices_as_destination() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "keep").unwrap();
        symlink(&target, dir.path().join("link")).unwrap();
        fs::create_dir(dir.path().join("folder")).unwrap();
        for name in ["link", "folder"] {
            let err = write_atomic(&dir.path().join(name), b"x", None).unwrap_err();
            assert!(matches!(err, FsError::WontReplace { .. }), "{err}");
        }
        let err = write_atomic(Path::new("/dev/null"), b"x", Some(dir.path())).unwrap_err();
        assert!(matches!(err, FsError::WontReplace { .. }), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert!(dir.path().join("link").is_symlink());
        // Only what the test made: no temp file left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    /// Whatever sits at a temp name (a planted link, someone's file) is never opened nor
    /// removed: another name is picked, and after 16 taken names the write fails.
    #[test]
    fn a_taken_temp_name_is_never_opened_and_another_is_picked() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "victim").unwrap();
        let tmp_of = |r: &str| dir.path().join(format!(".out.{r}.ferry-tmp"));
        symlink(&victim, tmp_of("link")).unwrap();
        fs::write(tmp_of("file"), "theirs").unwrap();
        let mut names = ["link", "file", "free"].into_iter().map(str::to_owned);
        let dest = dir.path().join("out");
        let mut f =
            AtomicFile::create_named(&dest, dir.path(), 0o600, || names.next().unwrap()).unwrap();
        assert_eq!(f.tmp_path(), tmp_of("free"));
        f.write_all(b"ours").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"ours");
        assert_eq!(fs::read(&victim).unwrap(), b"victim");
        assert_eq!(fs::read_link(tmp_of("link")).unwrap(), victim);
        assert_eq!(fs::read(tmp_of("file")).unwrap(), b"theirs");

        let err = AtomicFile::create_named(&dest, dir.path(), 0o600, || "link".into()).unwrap_err();
        assert!(err.to_string().contains("ferry-tmp"), "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"victim");
    }

    #[test]
    fn dropped_before_commit_removes_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = AtomicFile::create(&dir.path().join("out"), dir.path(), 0o600).unwrap();
        f.write_all(b"half").unwrap();
        let tmp = f.tmp_path().to_path_buf();
        assert!(tmp.exists());
        drop(f);
        assert!(!tmp.exists());
        assert!(!dir.path().join("out").exists());
    }
}
