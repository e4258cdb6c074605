//! The bundle as served now, and its replacement when it changes on disk: after `ferry apply`
//! or `ferry bundle` publishes a new index.json into a served folder, or a new archive is
//! renamed over a served one, the next request (or the periodic check) sees the file's
//! identity change, a new [`Snapshot`] is built aside and swapped in whole. Requests hold the
//! snapshot they started with: none sees a half-updated state, and downloads in flight keep
//! their open files to the end.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::catalog::Catalog;
use super::server::ServeError;
use super::{Event, Reporter};
use crate::digest::Digest;
use crate::store::source::{FileKey, MARKER_FILE};
use crate::store::{BundleSource, MAX_INDEX_BYTES, SourceKind};

/// One state of the served bundle: its source, its catalog, and the blobs found wrong in it.
pub struct Snapshot {
    /// The bundle's reader.
    pub source: Arc<dyn BundleSource>,
    /// What it offers.
    pub catalog: Catalog,
    /// sha256 of its ferry.lock: which bundle this is (sent as `Ferry-Bundle` on `/v2/`).
    pub lock: Digest,
    /// The file whose change means a new state (see [`identity`]), as it was when read.
    identity: Option<FileKey>,
    /// Blobs found wrong: not served again from this state.
    bad: Mutex<HashSet<Digest>>,
}

/// What changes when the served bundle does: index.json for a folder (a new one is renamed
/// in), the archive file itself for an archive (a new one is renamed over it). `None` when it
/// cannot be read now (the state then stays as it is).
fn identity(path: &Path, kind: SourceKind) -> Option<FileKey> {
    let meta = if kind.is_archive() {
        // The user's own link to an archive is followed, as when it was opened.
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path.join("index.json"))
    };
    meta.ok().map(|m| FileKey::of_metadata(&m))
}

impl Snapshot {
    /// Reads the bundle `source` opened at `path`: refuses a delta; builds the catalog.
    pub fn load(path: &Path, source: Arc<dyn BundleSource>) -> Result<Snapshot, ServeError> {
        // Taken first: a change while the catalog is built is seen as one more change.
        let identity = identity(path, source.kind());
        if source.root_file(MARKER_FILE, MAX_INDEX_BYTES)?.is_some() {
            return Err(ServeError::Delta(source.path().to_path_buf()));
        }
        let catalog = Catalog::build(&*source)?;
        let lock = source.lock_digest()?;
        Ok(Snapshot {
            source,
            catalog,
            lock,
            identity,
            bad: Mutex::new(HashSet::new()),
        })
    }

    /// Whether a blob was found wrong in this state.
    pub fn is_bad(&self, digest: &Digest) -> bool {
        self.bad.lock().expect("not poisoned").contains(digest)
    }

    /// Records a blob found wrong; true the first time.
    pub fn mark_bad(&self, digest: &Digest) -> bool {
        self.bad
            .lock()
            .expect("not poisoned")
            .insert(digest.clone())
    }
}

/// The served state, replaced whole when the bundle changes.
pub struct Live {
    path: PathBuf,
    current: RwLock<Arc<Snapshot>>,
    /// Held while a new state is built; holds the identity whose reading failed (not retried
    /// until the file changes again).
    reloading: tokio::sync::Mutex<Option<FileKey>>,
    reporter: Arc<dyn Reporter>,
}

impl Live {
    /// Serves `snapshot`, read from `path` (the folder or archive named on the command line).
    pub fn new(path: &Path, snapshot: Snapshot, reporter: Arc<dyn Reporter>) -> Live {
        Live {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(snapshot)),
            reloading: tokio::sync::Mutex::new(None),
            reporter,
        }
    }

    /// The state served now, without looking at the disk.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.read().expect("not poisoned").clone()
    }

    fn changed(&self, snap: &Snapshot, failed: Option<FileKey>) -> Option<FileKey> {
        let now = identity(&self.path, snap.source.kind())?;
        (Some(now) != snap.identity && Some(now) != failed).then_some(now)
    }

    /// The state to answer a request from: the bundle as it is on disk now, reloaded first
    /// when it changed (requests arriving meanwhile wait for the same reload).
    pub async fn fresh(&self) -> Arc<Snapshot> {
        let snap = self.current();
        // One stat: cheap next to any request.
        if identity(&self.path, snap.source.kind()) == snap.identity {
            return snap;
        }
        let mut failed = self.reloading.lock().await;
        let snap = self.current();
        let Some(now) = self.changed(&snap, *failed) else {
            return snap;
        };
        let path = self.path.clone();
        let previous = snap.source.clone();
        let built = tokio::task::spawn_blocking(move || {
            // A folder is the same reader (its verified blobs stay verified); an archive
            // renamed over is a new file: opened anew.
            let source = match previous.kind() {
                SourceKind::Folder => previous,
                _ => crate::store::source::open(&path)?,
            };
            Snapshot::load(&path, source)
        })
        .await
        .unwrap_or_else(|e| Err(ServeError::Reload(e.to_string())));
        match built {
            Ok(new) => {
                *failed = None;
                let new = Arc::new(new);
                *self.current.write().expect("not poisoned") = new.clone();
                self.reporter.event(&Event::Reloaded {
                    repositories: new.catalog.repos.len(),
                    tags: new.catalog.tag_count(),
                    not_served: new.catalog.skipped.clone(),
                });
                new
            }
            Err(e) => {
                *failed = Some(now);
                self.reporter.event(&Event::ReloadFailed {
                    reason: e.to_string(),
                });
                snap
            }
        }
    }

    /// Looks for a change every `every`, so that a bundle changed while no request comes is
    /// picked up (and a replaced archive's old file released).
    pub async fn watch(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            self.fresh().await;
        }
    }
}
