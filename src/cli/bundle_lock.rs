//! What `ferry bundle` takes: the sources, or a lock file (`--lock`), whose registry images are
//! pinned, whose charts are fetched again from their HTTP repositories, and whose local files
//! are named when no `--add-file` gives them back.

use ferry::error::{Error, Kind};
use ferry::reference::ImageRef;

use super::Failure;
use super::bundle::BundleArgs;

/// Lock entries by reference.
pub type Pins = std::collections::BTreeMap<String, ferry::lock::LockedImage>;

/// What a run bundles.
#[derive(Debug, Default)]
pub struct Wanted {
    /// Registry references.
    pub refs: Vec<ImageRef>,
    /// With --lock: the registry images' lock entries.
    pub pins: Pins,
    /// Chart lines (`REPO_URL/NAME:VERSION`) of the list files, or the lock's charts.
    pub charts: Vec<String>,
    /// With --lock: the entries with a source (charts, files), to check what is made of them.
    pub sourced: Pins,
}

/// The references to bundle: from the lock file (with their pins), else the sources. Sources
/// that name none (a file of comments, an --exclude taking all) are a usage error: nothing to
/// do is no success.
pub async fn wanted(args: &BundleArgs, charts: bool) -> Result<Wanted, Failure> {
    let Some(path) = &args.lock else {
        if charts && args.sources.sources().is_empty() {
            return Ok(Wanted::default());
        }
        let (refs, charts_listed) = args.sources.collect_with_charts("bundle").await?;
        if refs.is_empty() && charts_listed.is_empty() && !charts {
            return Err(
                Failure::usage("the sources name no images; nothing was bundled")
                    .with_hint("check the list file, --from-* sources and --exclude prefixes"),
            );
        }
        return Ok(Wanted {
            refs,
            charts: charts_listed,
            ..Wanted::default()
        });
    };
    if !args.sources.sources().is_empty() {
        return Err(Failure::usage(
            "--lock takes the references from the lock file; name no other images",
        ));
    }
    let in_lock = |e| Error::context(Kind::Configuration, format!("--lock {}", path.display()), e);
    let lock = ferry::lock::LockFile::read(path).map_err(in_lock)?;
    if lock.images.is_empty() {
        return Err(Failure::config(format!(
            "the lock file {} names no images",
            path.display()
        )));
    }
    let split = ferry::lock::sources::split(&lock.images).map_err(|e| {
        Error::context(Kind::Configuration, format!("--lock {}", path.display()), e)
    })?;
    let mut refs = Vec::new();
    for reference in split.registry.keys() {
        refs.push(reference.parse().map_err(|e| {
            Error::context(Kind::Configuration, format!("--lock {}", path.display()), e)
        })?);
    }
    Ok(Wanted {
        refs,
        pins: split.registry,
        charts: split.charts,
        sourced: split.sourced,
    })
}

/// `--locked`: fails, storing nothing, when a tag moved since the lock was made, or a chart's
/// repository gives its version another `.tgz`.
pub async fn check_locked(
    registries: &ferry::registry::Registries,
    wanted: &Wanted,
) -> Result<(), Failure> {
    let lock = ferry::lock::LockFile {
        images: wanted.pins.values().cloned().collect(),
        ..Default::default()
    };
    let mut drift = ferry::lock::drift(registries, &lock).await;
    drift.extend(ferry::lock::sources::chart_drift(registries, &wanted.sourced).await);
    if drift.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = drift.iter().map(|d| format!("  {d}")).collect();
    Err(Failure::failed(
        Kind::Failed,
        format!(
            "the lock file is out of date; nothing was fetched:\n{}",
            list.join("\n")
        ),
    )
    .with_hint("update it with `ferry lock ... -o FILE`, or drop --locked"))
}
