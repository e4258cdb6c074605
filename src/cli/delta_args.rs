//! What `bundle --since` and the commands that refuse deltas share on the command line.

use std::collections::BTreeMap;
use std::path::Path;

use ferry::delta::{MARKER_NAME, Marker, prepare_since};
use ferry::digest::Digest;
use ferry::store::{BundleSource, Layout};

use super::Failure;

/// For `bundle -o OUT [--since BASE]`: the base's blobs (marking OUT as a delta of it), or
/// nothing; refuses to add a full run to a delta.
pub fn since_base(layout: &Layout, base: Option<&Path>) -> Result<BTreeMap<Digest, u64>, Failure> {
    let out = layout.root();
    let Some(base) = base else {
        refuse_delta_in(
            layout,
            "add a full bundle run to it",
            "make a new bundle in another -o folder, or pass --since with its base",
        )?;
        return Ok(BTreeMap::new());
    };
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    if same(base, out) || base.parent().is_some_and(|p| same(p, out)) {
        return Err(Failure::usage(format!(
            "--since {} is the output folder itself",
            base.display()
        ))
        .with_hint("write the delta into a new -o folder"));
    }
    Ok(prepare_since(layout, base)?)
}

/// Refuses, with exit 2, an operation that needs a full bundle when the folder `root` is a
/// delta.
pub fn refuse_delta(root: &Path, what: &str, hint: &str) -> Result<(), Failure> {
    refuse_delta_in(&Layout::open_read(root)?, what, hint)
}

/// Refuses, with exit 2, an operation that needs a full bundle when `source` is a delta.
pub fn refuse_delta_in(source: &dyn BundleSource, what: &str, hint: &str) -> Result<(), Failure> {
    match Marker::of(source) {
        Ok(None) => Ok(()),
        Ok(Some(m)) => Err(Failure::usage(format!(
            "{} is a delta of the bundle whose ferry.lock is {} ({MARKER_NAME}), not a bundle: cannot {what}",
            source.path().display(),
            m.base_lock
        ))
        .with_hint(hint)),
        Err(e) => Err(Failure::from(e)),
    }
}
