//! Lock entries that no registry serves under their reference (see [`LockedSource`]): charts
//! from classic Helm repositories, fetched again from there, and local files, which no lock
//! can fetch. `bundle --lock` takes them apart from the registry images, and checks what it
//! made of them against the digests the lock records.

use std::collections::BTreeMap;

use crate::error::{Error, Kind};
use crate::resolve::ResolvedImage;
use crate::store::lockfile::{LockedImage, LockedSource};

/// What a lock entry with a source could not become.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A local file: the lock records it, but cannot fetch it.
    #[error("a local file ({title}) when the lock was made; a lock cannot fetch it again")]
    LocalFile {
        /// The reference it was stored under.
        reference: String,
        /// Its title (the file's name), as shown.
        title: String,
    },
    /// A chart's source maps to another name than the entry's (a lock ferry did not write).
    #[error("{reference}: its source {chart} is stored as {maps_to}, not under this name")]
    Misnamed {
        /// The entry's reference.
        reference: String,
        /// The chart (`REPO_URL/NAME:VERSION`).
        chart: String,
        /// The name that chart is stored under.
        maps_to: String,
    },
    /// What was fetched or packed again is not what the lock records.
    #[error("the lock file says {locked}, this run made {now}")]
    Changed {
        /// The digest the lock records.
        locked: String,
        /// The digest made now.
        now: String,
    },
}

impl crate::error::Diagnostic for SourceError {
    fn kind(&self) -> Kind {
        match self {
            SourceError::Misnamed { .. } => Kind::Bundle,
            _ => Kind::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            SourceError::LocalFile { reference, .. } => {
                format!("give it with the lock: --add-file PATH --as {reference}")
            }
            SourceError::Misnamed { .. } => {
                "ferry never writes this; make the lock again with `ferry lock`".into()
            }
            SourceError::Changed { .. } => {
                "its source changed since the lock was made; nothing of it was stored under \
                 its name: bundle it without --lock to take it as it is now"
                    .into()
            }
        })
    }
}

/// A lock's entries split by where they come from.
#[derive(Debug, Default)]
pub struct Split {
    /// Registry images (no source), by reference.
    pub registry: BTreeMap<String, LockedImage>,
    /// Entries with a source (charts, files), by reference.
    pub sourced: BTreeMap<String, LockedImage>,
    /// Each chart's `REPO_URL/NAME:VERSION`, to fetch again.
    pub charts: Vec<String>,
}

/// Splits a lock's entries into registry images and entries with a source; refuses a chart
/// whose source would be stored under another name (it would silently replace the entry).
pub fn split(entries: &[LockedImage]) -> Result<Split, Error> {
    let mut out = Split::default();
    for entry in entries {
        match &entry.source {
            None => {
                out.registry.insert(entry.reference.clone(), entry.clone());
            }
            Some(source) => {
                if let LockedSource::HelmRepository {
                    repository,
                    chart,
                    version,
                    ..
                } = source
                {
                    let line = format!("{repository}/{chart}:{version}");
                    let spec: crate::chart::ChartSpec = line.parse().map_err(Error::new)?;
                    let maps_to = spec.reference().map_err(Error::new)?.to_string();
                    if maps_to != entry.reference {
                        return Err(Error::new(SourceError::Misnamed {
                            reference: entry.reference.clone(),
                            chart: spec.to_string(),
                            maps_to,
                        }));
                    }
                    out.charts.push(line);
                }
                out.sourced.insert(entry.reference.clone(), entry.clone());
            }
        }
    }
    Ok(out)
}

/// The `.tgz` digest the lock records for the chart stored as `reference`, if any.
pub fn chart_digest<'a>(
    sourced: &'a BTreeMap<String, LockedImage>,
    reference: &str,
) -> Option<&'a crate::digest::Digest> {
    match sourced.get(reference)?.source.as_ref()? {
        LockedSource::HelmRepository { chart_digest, .. } => Some(chart_digest),
        LockedSource::LocalFile { .. } => None,
    }
}

/// The charts of `sourced` whose repository's index.yaml gives their version another `.tgz`
/// digest today, as [`super::drift`] says of moved tags (errors count as drift, named).
pub async fn chart_drift(
    registries: &crate::registry::Registries,
    sourced: &BTreeMap<String, LockedImage>,
) -> Vec<String> {
    let repo = crate::chart::ChartRepo::new(registries);
    let mut out = Vec::new();
    for (reference, locked) in sourced {
        let Some(LockedSource::HelmRepository {
            repository,
            chart,
            version,
            chart_digest,
        }) = &locked.source
        else {
            continue;
        };
        let spec: crate::chart::ChartSpec = match format!("{repository}/{chart}:{version}").parse()
        {
            Ok(s) => s,
            Err(e) => {
                out.push(format!("{reference}: {e}"));
                continue;
            }
        };
        match repo.current_digest(&spec).await {
            Ok(d) if d == chart_digest.to_string() => {}
            Ok(d) => out.push(format!(
                "{reference}: locked .tgz {chart_digest}, {spec} now gives {d}"
            )),
            Err(e) => out.push(format!("{reference}: cannot check: {e}")),
        }
    }
    out
}

/// An image made before the run (chart or file), or why not: (reference, error).
pub type Made = Result<ResolvedImage, (String, Error)>;

/// `made` with each image whose digest is not the one `sourced` records failed instead, and a
/// failure for each local file `sourced` names that `made` does not hold (never dropped
/// silently).
pub fn check(made: Vec<Made>, sourced: &BTreeMap<String, LockedImage>) -> Vec<Made> {
    let mut out = Vec::with_capacity(made.len());
    let mut seen = std::collections::BTreeSet::new();
    for m in made {
        let name = match &m {
            Ok(image) => image.reference.to_string(),
            Err((name, _)) => name.clone(),
        };
        seen.insert(name.clone());
        out.push(match (m, sourced.get(&name)) {
            (Ok(image), Some(locked)) if image.root.digest != locked.digest => Err((
                name,
                Error::new(SourceError::Changed {
                    locked: locked.digest.to_string(),
                    now: image.root.digest.to_string(),
                }),
            )),
            (m, _) => m,
        });
    }
    for (reference, locked) in sourced {
        if let Some(LockedSource::LocalFile { title }) = &locked.source
            && !seen.contains(reference)
        {
            let error = SourceError::LocalFile {
                reference: reference.clone(),
                title: crate::untrusted::shown(title),
            };
            out.push(Err((reference.clone(), Error::new(error))));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn chart_entry(reference: &str, repository: &str) -> LockedImage {
        let d = Digest::sha256_of(reference.as_bytes());
        LockedImage {
            reference: reference.into(),
            digest: d.clone(),
            media_type: crate::manifest::OCI_MANIFEST.into(),
            size: 1,
            platforms: Vec::new(),
            total_size: 1,
            blobs: Default::default(),
            source: Some(LockedSource::HelmRepository {
                repository: repository.into(),
                chart: "nginx".into(),
                version: "1.0.0".into(),
                chart_digest: d,
            }),
        }
    }

    #[test]
    fn a_chart_is_fetched_again_only_under_the_name_its_source_maps_to() {
        let good = chart_entry(
            "charts.example.com/stable/nginx:1.0.0",
            "https://charts.example.com/stable",
        );
        let parts = split(std::slice::from_ref(&good)).unwrap();
        assert_eq!(
            parts.charts,
            ["https://charts.example.com/stable/nginx:1.0.0"]
        );
        assert!(parts.registry.is_empty());
        assert_eq!(parts.sourced.len(), 1);
        // A source that would land under another name would replace the entry silently.
        let bad = chart_entry("docker.io/library/nginx:1.0.0", "https://evil.example");
        let e = split(&[good, bad]).unwrap_err().to_string();
        assert!(
            e.contains("is stored as evil.example/nginx:1.0.0, not under this name"),
            "{e}"
        );
    }
}
