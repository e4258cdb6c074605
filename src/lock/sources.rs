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
        Kind::Failed
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            SourceError::LocalFile { reference, .. } => {
                format!("give it with the lock: --add-file PATH --as {reference}")
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

/// Splits a lock's entries into registry images and entries with a source.
pub fn split(entries: &[LockedImage]) -> Split {
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
                    out.charts.push(format!("{repository}/{chart}:{version}"));
                }
                out.sourced.insert(entry.reference.clone(), entry.clone());
            }
        }
    }
    out
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
