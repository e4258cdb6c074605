//! `bundle --since BASE --binary-deltas`: after the delta's layers are fetched, each changed
//! layer is turned into a patch against a layer BASE holds where that is exact and pays.

use std::path::Path;
use std::sync::Arc;

use ferry::delta::Marker;
use ferry::delta::binary::{LayerOutcome, Shipped, make_patches};
use ferry::store::{BundleSource, Layout};

use super::{Failure, output};

/// BASE as `--binary-deltas` reads it: a bundle folder or archive with its blobs (a lock file
/// has no layers to patch against). Checked before the output folder is made.
pub fn open_base(base: &Path) -> Result<Arc<dyn BundleSource>, Failure> {
    ferry::store::source::open(base).map_err(|e| {
        Failure::config(format!(
            "--binary-deltas: {} cannot be read as a bundle folder or archive: {e}",
            base.display()
        ))
        .with_hint("--binary-deltas patches against BASE's layers: pass the base bundle (folder or archive), not its lock")
    })
}

/// Patches the delta's new layers; prints one line per layer on stderr unless `quiet`. Runs on
/// a blocking thread: it is CPU work (zstd, preflate) over whole layers.
pub async fn patch_layers(
    layout: Arc<Layout>,
    base: Arc<dyn BundleSource>,
    quiet: bool,
) -> Result<Vec<LayerOutcome>, Failure> {
    let outcomes = tokio::task::spawn_blocking(move || {
        let mut marker = Marker::of(&*layout)?.expect("--since wrote the marker");
        let show = |o: &LayerOutcome| {
            if !quiet {
                output::line(&describe(o));
            }
        };
        make_patches(&layout, &*base, &mut marker, &show)
    })
    .await
    .expect("the patch thread does not panic")?;
    if !quiet && !outcomes.is_empty() {
        let whole: u64 = outcomes.iter().map(|o| o.size).sum();
        let sent: u64 = outcomes
            .iter()
            .map(|o| match &o.shipped {
                Shipped::Patched(p) => p.patch_size,
                Shipped::Whole(_) => o.size,
            })
            .sum();
        let patched = outcomes
            .iter()
            .filter(|o| matches!(o.shipped, Shipped::Patched(_)))
            .count();
        output::line(&format!(
            "  binary deltas: {patched} of {} new layer(s) patched; {} instead of {}",
            outcomes.len(),
            output::bytes(sent),
            output::bytes(whole)
        ));
    }
    Ok(outcomes)
}

/// One layer's line: patched (bytes each way) or whole (why).
fn describe(o: &LayerOutcome) -> String {
    match &o.shipped {
        Shipped::Patched(p) => format!(
            "  layer {} ({}): patched against {}, {} ({})",
            o.layer,
            output::bytes(o.size),
            p.base,
            output::bytes(p.patch_size),
            p.compression
        ),
        Shipped::Whole(why) => format!(
            "  layer {} ({}): whole, {}",
            o.layer,
            output::bytes(o.size),
            why
        ),
    }
}

/// The layers a delta carries as binary patches, one line each (for `ls` and `diff`).
pub fn patched_lines(marker: &Marker) -> Vec<String> {
    let patched = &marker.patched;
    let mut lines: Vec<String> = patched
        .iter()
        .map(|(layer, p)| {
            format!(
                "  layer {layer}: patched, {} as a {} patch against {} instead of {} whole",
                output::bytes(p.patch_size),
                p.compression,
                p.base,
                output::bytes(p.size)
            )
        })
        .collect();
    if !patched.is_empty() {
        let patches: u64 = patched.values().map(|p| p.patch_size).sum();
        let whole: u64 = patched.values().map(|p| p.size).sum();
        lines.push(format!(
            "  {} layer(s) as binary patches: {} instead of {}; the other layers whole",
            patched.len(),
            output::bytes(patches),
            output::bytes(whole)
        ));
    }
    lines
}

/// The `patched` member of `ls --json` and `diff --json`.
pub fn patched_json(marker: &Marker) -> serde_json::Value {
    marker
        .patched
        .iter()
        .map(|(layer, p)| {
            serde_json::json!({
                "layer": layer.to_string(),
                "size": p.size,
                "base": p.base.to_string(),
                "patch": p.patch.to_string(),
                "patchSize": p.patch_size,
                "compression": p.compression.to_string(),
            })
        })
        .collect()
}

/// The delta marker of a bundle folder or archive, when it is a delta (`diff`'s B).
pub fn marker_of(path: &Path) -> Option<Marker> {
    let source = ferry::store::source::open(path).ok()?;
    Marker::of(&*source).ok().flatten()
}
