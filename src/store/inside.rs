//! Folders inside a bundle (or inside a folder ferry fills, such as a hosts.toml folder), walked
//! without following links: each component below the root the user named is opened with
//! `openat(O_NOFOLLOW|O_DIRECTORY)` relative to its parent, and entries are listed, checked and
//! removed relative to that descriptor (`unlinkat` removes a link, never what it names). A link
//! planted at `.ferry`, `.ferry/partial` or `blobs/sha256` can neither be read through nor steer
//! a removal out of the folder, whatever is swapped in after the folder was opened.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::StoreError;

/// A folder opened without following a link at any component below its root.
#[derive(Debug)]
pub struct InsideDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// One entry of an [`InsideDir`], as it is (a link is reported as a link, never followed).
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its name in the folder.
    pub name: OsString,
    /// Regular file, folder, symlink...
    pub file_type: FileType,
    /// Its size in bytes (a link's own size for a link).
    pub len: u64,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl InsideDir {
    /// Opens `root/rel[0]/rel[1]/...`; `None` when a component does not exist. `root` itself is
    /// the user's to name (it may be a link); a component below it that is a link or not a
    /// folder is refused, naming it.
    pub fn open(root: &Path, rel: &[&str]) -> Result<Option<InsideDir>, StoreError> {
        walk(root, rel, None)
    }

    /// [`InsideDir::open`], creating the missing components with `mode` (before umask).
    pub fn create(root: &Path, rel: &[&str], mode: u32) -> Result<InsideDir, StoreError> {
        Ok(walk(root, rel, Some(Mode::from_raw_mode(mode)))?
            .expect("every missing component was created"))
    }

    /// The folder's path (for messages and for path-based writers).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry but `.` and `..`, with its type and size, links not followed. An entry
    /// removed while the folder is read is skipped.
    pub fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        let read_error = StoreError::io("read", &self.path);
        let dir = rustix::fs::Dir::read_from(&self.fd).map_err(|e| read_error(e.into()))?;
        let mut out = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| StoreError::io("read", &self.path)(e.into()))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            if let Some((file_type, len)) = self.stat(name)? {
                out.push(Entry {
                    name: name.to_os_string(),
                    file_type,
                    len,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The type and size of `name` in the folder, without following a link; `None` when absent.
    pub fn stat(&self, name: &OsStr) -> Result<Option<(FileType, u64)>, StoreError> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some((
                FileType::from_raw_mode(st.st_mode),
                u64::try_from(st.st_size).unwrap_or(0),
            ))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(StoreError::io("stat", &self.path.join(name))(e.into())),
        }
    }

    /// Removes `name` (a file or a link itself, never what a link names). `Ok(false)` when it
    /// was not there.
    pub fn remove_file(&self, name: &OsStr) -> Result<bool, StoreError> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(StoreError::io("remove", &self.path.join(name))(e.into())),
        }
    }

    /// Removes the empty folder `name` in this one (a link is not a folder: refused by rmdir).
    pub fn remove_dir(&self, name: &OsStr) -> io::Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR).map_err(Into::into)
    }

    /// Opens the folder `name` in this one, without following a link.
    pub fn child(&self, name: &str) -> Result<Option<InsideDir>, StoreError> {
        step(&self.fd, &self.path, name, None)
    }
}

fn walk(root: &Path, rel: &[&str], create: Option<Mode>) -> Result<Option<InsideDir>, StoreError> {
    if create.is_some() {
        // The root is the user's to name: made (and followed) as any path would be.
        std::fs::create_dir_all(root).map_err(StoreError::io("create", root))?;
    }
    let fd = match rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(StoreError::io("open", root)(e.into())),
    };
    let mut dir = InsideDir {
        fd,
        path: root.to_path_buf(),
    };
    for name in rel {
        match step(&dir.fd, &dir.path, name, create)? {
            Some(next) => dir = next,
            None => return Ok(None),
        }
    }
    Ok(Some(dir))
}

/// Opens (or creates, then opens) the folder `name` below `parent`, refusing a link.
fn step(
    parent: &OwnedFd,
    parent_path: &Path,
    name: &str,
    create: Option<Mode>,
) -> Result<Option<InsideDir>, StoreError> {
    let path = parent_path.join(name);
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        let not_a_name = io::Error::new(io::ErrorKind::InvalidInput, "not a single folder name");
        return Err(StoreError::io("open", &path)(not_a_name));
    }
    let open = || rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty());
    let opened = match (open(), create) {
        (Err(Errno::NOENT), Some(mode)) => match rustix::fs::mkdirat(parent, name, mode) {
            Ok(()) | Err(Errno::EXIST) => open(),
            Err(e) => return Err(StoreError::io("create", &path)(e.into())),
        },
        (other, _) => other,
    };
    match opened {
        Ok(fd) => Ok(Some(InsideDir { fd, path })),
        Err(Errno::NOENT) => Ok(None),
        // Linux answers ENOTDIR for a link under O_DIRECTORY|O_NOFOLLOW, ELOOP elsewhere.
        Err(Errno::LOOP | Errno::NOTDIR) => {
            let is_link = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
            let what = if is_link { "a symlink" } else { "not a folder" };
            Err(StoreError::LinkInside { path, what })
        }
        Err(e) => Err(StoreError::io("open", &path)(e.into())),
    }
}

/// `name` as a path component, for [`InsideDir::stat`] and [`InsideDir::remove_file`].
pub fn component(name: &str) -> OsString {
    OsString::from_vec(name.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_link_below_the_root_is_refused_and_nothing_through_it_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let (root, victim) = (dir.path().join("b"), dir.path().join("victim"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(victim.join("partial")).unwrap();
        std::fs::write(victim.join("partial/keep"), "keep").unwrap();
        symlink(&victim, root.join(".ferry")).unwrap();
        for rel in [&[".ferry"][..], &[".ferry", "partial"]] {
            let e = InsideDir::open(&root, rel).unwrap_err();
            assert!(matches!(e, StoreError::LinkInside { .. }), "{e}");
            assert!(e.to_string().contains(".ferry is a symlink"), "{e}");
            let e = InsideDir::create(&root, rel, 0o755).unwrap_err();
            assert!(matches!(e, StoreError::LinkInside { .. }), "{e}");
        }
        assert!(victim.join("partial/keep").exists());
        // A file where a folder belongs.
        std::fs::write(root.join("blobs"), "").unwrap();
        let e = InsideDir::open(&root, &["blobs", "sha256"]).unwrap_err();
        assert!(e.to_string().contains("not a folder"), "{e}");
    }

    #[test]
    fn lists_and_removes_links_as_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("b");
        let d = InsideDir::create(&root, &["x", "y"], 0o755).unwrap();
        assert!(root.join("x/y").is_dir());
        std::fs::write(root.join("x/y/f"), "12345").unwrap();
        std::fs::write(dir.path().join("target"), "keep").unwrap();
        symlink(dir.path().join("target"), root.join("x/y/l")).unwrap();
        let entries = d.entries().unwrap();
        let kinds: Vec<_> = entries
            .iter()
            .map(|e| (e.name.to_str().unwrap(), e.file_type, e.len))
            .collect();
        assert_eq!(kinds[0], ("f", FileType::RegularFile, 5));
        assert_eq!(kinds[1].1, FileType::Symlink);
        assert!(d.remove_file(&component("l")).unwrap());
        assert!(!d.remove_file(&component("l")).unwrap());
        assert_eq!(std::fs::read(dir.path().join("target")).unwrap(), b"keep");
        assert!(InsideDir::open(&root, &["absent"]).unwrap().is_none());
    }
}
