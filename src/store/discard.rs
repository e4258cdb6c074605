//! Removing a bundle folder a run created and put no image in (every image failed): exactly
//! the files ferry writes there, walked without following links, then the folder itself if
//! nothing else is in it. A folder that existed before the run is never passed here.

use std::ffi::OsStr;

use rustix::fs::FileType;

use super::inside::InsideDir;
use super::{Layout, StoreError, WORK_DIR};

/// Files ferry writes at a bundle's root.
const ROOT_FILES: [&str; 5] = [
    "oci-layout",
    "index.json",
    super::lockfile::LOCK_FILE_NAME,
    super::script::SCRIPT_NAME,
    "ferry",
];

/// Removes what ferry wrote in `layout` and, when nothing else is left, the folder. Returns
/// whether the folder is gone. The caller must know that this run created it.
pub fn discard_created(layout: &Layout) -> Result<bool, StoreError> {
    let root = layout.root();
    let Some(top) = InsideDir::open(root, &[])? else {
        return Ok(true);
    };
    for (dir, sub) in [("blobs", None), (WORK_DIR, Some(["tmp", "partial"]))] {
        let Some(folder) = top.child(dir)? else {
            continue;
        };
        let children: Vec<String> = match sub {
            Some(names) => names.iter().map(|s| s.to_string()).collect(),
            None => crate::digest::Algorithm::ALL
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
        };
        for child in children {
            let Some(inner) = folder.child(&child)? else {
                continue;
            };
            for e in inner.entries()? {
                if matches!(e.file_type, FileType::RegularFile) {
                    inner.remove_file(&e.name)?;
                }
            }
            let _ = folder.remove_dir(OsStr::new(&child));
        }
        let _ = top.remove_dir(OsStr::new(dir));
    }
    for name in ROOT_FILES {
        if let Some((FileType::RegularFile, _)) = top.stat(OsStr::new(name))? {
            top.remove_file(OsStr::new(name))?;
        }
    }
    Ok(std::fs::remove_dir(root).is_ok())
}
