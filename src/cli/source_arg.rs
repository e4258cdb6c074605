//! BUNDLE on a reading command's line: a folder or an archive file, opened in place.

use std::path::Path;
use std::sync::Arc;

use ferry::error::{Error, Kind};
use ferry::store::{BundleSource, SourceKind, StoreError};

use super::{Failure, output};

/// Opens BUNDLE (a bundle folder, a `.tar` or a `.tar.zst`) for a reading command. A path that
/// is neither a folder nor a bundle file is the user's mistake (exit 2); a folder lacking
/// oci-layout or index.json is a damaged bundle (exit 1). A `.tar.zst` without a seek table
/// gets a note saying what reading it costs.
pub fn open_bundle(path: &Path) -> Result<Arc<dyn BundleSource>, Failure> {
    // Something that is no bundle at all (a typo, the wrong folder or file: no oci-layout) is
    // the user's to fix, exit 2 whatever the far-side command; a layout that lost its
    // index.json is a damaged bundle (exit 1).
    let no_layout = std::fs::symlink_metadata(path.join("oci-layout")).is_err();
    let source = ferry::store::source::open(path).map_err(|e| match e {
        StoreError::NotALayout { .. } if !path.is_dir() || no_layout => {
            Failure::from(Error::from(e).with_kind(Kind::Configuration))
        }
        e => Failure::from(e),
    })?;
    if source.kind() == SourceKind::StreamZst {
        output::note(&format!(
            "{} is a .tar.zst without a seek table (not written by `ferry export`): ferry reads \
             it from its start, decompressing it whole once per pass (and again for a blob read \
             out of order); `ferry export {} --oci-archive NEW.tar.zst` writes a seekable copy",
            path.display(),
            path.display()
        ));
    }
    Ok(source)
}
