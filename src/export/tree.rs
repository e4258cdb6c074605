//! The bundle folder as `mkfs.ext4 -d` will copy it, checked first: an ext4 image is the
//! snapshot every node mounts and trusts, so it carries regular files and folders only, nothing
//! but blobs under `blobs/<algorithm>/`, and only blobs whose content is their digest.

use std::io;
use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::ExportError;
use super::checked::{open_blob, stopped};
use crate::digest::Digest;
use crate::store::{BundleSource, Layout, StoreError};

/// What the folder holds.
#[derive(Debug, Default)]
pub(super) struct Tree {
    /// Bytes the files take in 4 KiB blocks, folders counted as one block each.
    pub bytes: u64,
    /// Files and folders.
    pub files: u64,
    /// The blobs under `blobs/`.
    pub blobs: Vec<Digest>,
}

/// Walks the bundle without following links, refusing a link, device node, FIFO or socket
/// anywhere and anything under `blobs/` that is not `blobs/<sha256|sha512>/<hex>`.
pub(super) fn scan(layout: &Layout) -> Result<Tree, ExportError> {
    let mut tree = Tree::default();
    walk(layout.root(), Place::Root, &mut tree)?;
    tree.blobs.sort();
    Ok(tree)
}

/// Re-hashes every blob of the tree (checking `cancel` as it reads).
pub(super) fn rehash(
    layout: &dyn BundleSource,
    tree: &Tree,
    cancel: &CancellationToken,
) -> Result<(), ExportError> {
    for digest in &tree.blobs {
        let (_, mut reader) = open_blob(layout, digest, None, cancel)?;
        io::copy(&mut reader, &mut io::sink()).map_err(|e| stopped("(nothing)", e))?;
    }
    Ok(())
}

/// Where in the bundle a folder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Root,
    Blobs,
    Algorithm,
    Other,
}

fn refuse(path: &Path, what: &'static str) -> ExportError {
    ExportError::Blob(StoreError::NotARegularFile {
        path: path.to_path_buf(),
        what,
    })
}

fn not_a_blob(path: &Path) -> ExportError {
    ExportError::Blob(StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: "not a blob: blobs/ holds blobs/<sha256|sha512>/<hex> files only".into(),
    })
}

fn walk(dir: &Path, place: Place, tree: &mut Tree) -> Result<(), ExportError> {
    let io_err = |e| ExportError::Store(StoreError::io("read", dir)(e));
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err)?;
        if kind.is_symlink() {
            return Err(refuse(&path, "a symlink"));
        }
        let name = entry.file_name();
        let name = name.to_str().unwrap_or_default();
        tree.files += 1;
        if kind.is_dir() {
            let inner = match place {
                Place::Root if name == "blobs" => Place::Blobs,
                Place::Blobs if name == "sha256" || name == "sha512" => Place::Algorithm,
                Place::Blobs | Place::Algorithm => return Err(not_a_blob(&path)),
                _ => Place::Other,
            };
            tree.bytes += 4096;
            walk(&path, inner, tree)?;
        } else if kind.is_file() {
            match place {
                Place::Blobs => return Err(not_a_blob(&path)),
                Place::Algorithm => {
                    let alg = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    let digest: Digest = format!("{alg}:{name}")
                        .parse()
                        .map_err(|_| not_a_blob(&path))?;
                    tree.blobs.push(digest);
                }
                _ => {}
            }
            let len = entry.metadata().map_err(io_err)?.len();
            tree.bytes += len.div_ceil(4096) * 4096;
        } else {
            return Err(refuse(&path, "a device node, FIFO or socket"));
        }
    }
    Ok(())
}
