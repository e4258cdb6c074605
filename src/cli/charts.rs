//! `ferry bundle --chart REPO_URL/NAME:VERSION`: charts from classic Helm repositories, fetched
//! and packed before the run, their layer stored so the run commits them like any image.

use ferry::bundle::Prepared;
use ferry::chart::{ChartRepo, ChartSpec, PackedChart, pack_from_repo};
use ferry::error::Error;
use ferry::registry::Registries;
use ferry::store::Layout;

use super::Failure;

/// Parses every `--chart` (a usage error names the first bad one).
pub fn parse(specs: &[String]) -> Result<Vec<ChartSpec>, Failure> {
    specs
        .iter()
        .map(|s| {
            s.parse::<ChartSpec>()
                .map_err(|e| Failure::from(Error::new(e)))
        })
        .collect()
}

/// A chart fetched and packed, or why not, under the reference it is stored as.
pub type Fetched = Result<PackedChart, (String, Error)>;

/// Fetches and packs each chart (one after the other: a handful of small files); a chart the
/// lock (`--lock`) records must still have the `.tgz` digest it records.
pub async fn fetch_all(
    registries: &Registries,
    specs: &[ChartSpec],
    locked: &super::bundle_lock::Pins,
) -> Vec<Fetched> {
    let repo = ChartRepo::new(registries);
    let mut out = Vec::new();
    for spec in specs {
        let name = match spec.reference() {
            Ok(r) => r.to_string(),
            Err(e) => {
                out.push(Err((spec.to_string(), Error::new(e))));
                continue;
            }
        };
        let digest = ferry::lock::sources::chart_digest(locked, &name);
        let packed = match repo.fetch(spec, digest).await {
            Ok(tgz) => pack_from_repo(spec, tgz).map_err(Error::new),
            Err(e) => Err(Error::new(e)),
        };
        out.push(packed.map_err(|e| (name, e)));
    }
    out
}

/// Locks each chart (`ferry lock`): its entry as `bundle --chart` records it, or why not.
pub async fn lock_into(
    outcome: &mut ferry::lock::LockOutcome,
    registries: &Registries,
    specs: &[ChartSpec],
) {
    for fetched in fetch_all(registries, specs, &Default::default()).await {
        match fetched {
            Ok(chart) => outcome.lock.upsert(ferry::lock::locked_image(&chart.image)),
            Err(failed) => outcome.failed.push(failed),
        }
    }
    outcome.failed.sort_by(|a, b| a.0.cmp(&b.0));
}

/// Stores each chart's layer (the `.tgz`) unless the base of a delta has it, and hands the
/// charts to the run as resolved images.
pub fn store_layers(
    layout: &Layout,
    charts: Vec<Fetched>,
    since: &std::collections::BTreeMap<ferry::digest::Digest, u64>,
) -> Result<Vec<Prepared>, Failure> {
    let mut out = Vec::new();
    for chart in charts {
        match chart {
            Ok(c) => {
                let layer = &c.image.platforms[0].layers[0];
                if since.get(&layer.digest) != Some(&layer.size) {
                    layout.put_blob(&layer.digest, &c.tgz)?;
                }
                out.push(Ok(c.image));
            }
            Err(e) => out.push(Err(e)),
        }
    }
    Ok(out)
}

/// The images the fetched charts name without rendering (`--with-chart-images`); what cannot
/// be known so is said.
pub fn images_of(charts: &[Fetched]) -> Vec<ferry::reference::ImageRef> {
    let mut out = Vec::new();
    for chart in charts.iter().flatten() {
        let name = chart.image.reference.to_string();
        match ferry::chart::images::chart_images(&chart.tgz) {
            Ok(found) => {
                for note in &found.notes {
                    super::output::note(&format!("{name}: {note}"));
                }
                out.extend(found.references.into_iter().map(|(r, _)| r));
            }
            Err(why) => super::output::warning(&format!("{name}: no images read: {why}")),
        }
    }
    out
}

/// Pairs each `--add-file` with its `--as` (checked: a usage error names the first bad one).
pub fn file_names(
    files: &[std::path::PathBuf],
    names: &[String],
) -> Result<Vec<(std::path::PathBuf, ferry::reference::ImageRef)>, Failure> {
    if files.len() != names.len() {
        return Err(Failure::usage(format!(
            "{} --add-file but {} --as: give each file its reference",
            files.len(),
            names.len()
        )));
    }
    let mut out = Vec::new();
    for (file, name) in files.iter().zip(names) {
        let reference = name.parse().map_err(|e| {
            Failure::from(Error::context(
                ferry::error::Kind::Usage,
                format!("--as {}", ferry::untrusted::shown(name)),
                e,
            ))
        })?;
        if !file.is_file() {
            return Err(Failure::usage(format!(
                "--add-file {}: no such file",
                file.display()
            )));
        }
        out.push((file.clone(), reference));
    }
    Ok(out)
}

/// Stores each `--add-file` as an artifact blob and hands it to the run.
pub fn store_files(
    layout: &Layout,
    files: Vec<(std::path::PathBuf, ferry::reference::ImageRef)>,
) -> Vec<Prepared> {
    files
        .into_iter()
        .map(|(path, reference)| {
            let name = reference.to_string();
            ferry::artifact::file::pack_file(layout, &path, reference)
                .map_err(|e| (name, Error::new(e)))
        })
        .collect()
}
