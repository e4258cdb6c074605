//! Restoring a bundle on a node: into containerd (`ctr images import`, one streamed tar) or
//! CRI-O's containers-storage (`skopeo copy`), optionally pinned against kubelet's image GC.
//! `restore.sh` does the same with nothing but POSIX sh on the node.

pub mod binaries;
mod containerd;
mod crio;
mod crio_pins;
mod groups;
pub mod pins;
mod present;
pub mod remote;

use std::path::PathBuf;

use crate::platform::Platform;
use crate::store::select::{Offer, PlatformImage, offer};
use crate::store::{BundleSource, StoreError};

/// Which runtime to restore into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// containerd, through ctr.
    Containerd,
    /// CRI-O's containers-storage, through skopeo.
    CriO,
}

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The runtime.
    pub runtime: Runtime,
    /// The node's platform.
    pub platform: Platform,
    /// containerd namespace.
    pub namespace: String,
    /// containerd socket.
    pub containerd_address: PathBuf,
    /// containers-storage spec for skopeo (`[vfs@root+runroot]`), empty for the default.
    pub storage: String,
    /// Pin the images against kubelet's image GC.
    pub pin: bool,
    /// The bundle's identity (its ferry.lock's sha256), recorded on every name it pins.
    pub record: Option<crate::digest::Digest>,
    /// Where CRI-O's pinning drop-in goes.
    pub crio_conf_dir: PathBuf,
    /// containerd imports run side by side (0: one per core, at most 4).
    pub jobs: usize,
}

/// One image's outcome.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The reference.
    pub reference: String,
    /// Its manifest (or index) digest.
    pub digest: String,
    /// Why it was not restored.
    pub error: Option<crate::error::Error>,
    /// The names it is known by in the runtime (the reference and `repository@digest`).
    pub names: Vec<String>,
    /// Whether it is pinned against kubelet's image GC (for containerd: its label as read back
    /// after the run; for CRI-O: listed in ferry's pinned_images drop-in).
    pub pinned: bool,
    /// True when it was there already (complete, same digest, pinned if asked): not imported.
    pub already_present: bool,
}

/// Why a restore could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The bundle cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No image of the bundle runs on this node.
    #[error("no image in {bundle} runs on {platform}: {details}")]
    NoImageForPlatform {
        /// The bundle.
        bundle: String,
        /// The node's platform.
        platform: String,
        /// What the images have.
        details: String,
    },
    /// The bundle holds no image at all.
    #[error("{0} holds no images")]
    Empty(String),
    /// `--replace OLD` names no bundle folder or lock file ferry can read.
    #[error("--replace {path}: {reason}")]
    OldBundle {
        /// What the user named.
        path: String,
        /// What is wrong with it.
        reason: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// `--from` is not a URL ferry can pull from.
    #[error("--from {url}: {reason}")]
    BadSource {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The served bundle's list could not be read.
    #[error("cannot read what {url} serves: {reason}")]
    Unreachable {
        /// The URL, redacted.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The runtime's tool failed or is missing.
    #[error("{message}")]
    Runtime {
        /// What failed.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
}

impl crate::error::Diagnostic for RestoreError {
    fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            RestoreError::Store(e) => e.kind(),
            RestoreError::NoImageForPlatform { .. } | RestoreError::Empty(_) => Kind::Bundle,
            RestoreError::OldBundle { .. } | RestoreError::BadSource { .. } => Kind::Configuration,
            RestoreError::Unreachable { .. } => Kind::Transport,
            RestoreError::Runtime { .. } => Kind::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            RestoreError::Store(e) => e.hint(),
            RestoreError::NoImageForPlatform { platform, .. } => Some(format!(
                "this bundle was made for other platforms; build one with --platform {platform}"
            )),
            RestoreError::Empty(_) => {
                Some("its ferry bundle run failed or never finished; run it again".into())
            }
            RestoreError::BadSource { .. } => Some(
                "--from takes the URL `ferry serve` listens on (http://HOST:PORT), or a \
                 registry's with --lock FILE"
                    .into(),
            ),
            RestoreError::Unreachable { .. } => Some(
                "is ferry serve running there and reachable from this node? (a registry \
                 other than ferry serve needs --lock FILE)"
                    .into(),
            ),
            RestoreError::Runtime { hint, .. } | RestoreError::OldBundle { hint, .. } => {
                hint.clone()
            }
        }
    }
}

impl RestoreError {
    /// A runtime tool failed, with no hint.
    pub(crate) fn runtime(message: impl Into<String>) -> RestoreError {
        RestoreError::Runtime {
            message: message.into(),
            hint: None,
        }
    }

    /// A runtime tool failed; `hint` says what to do.
    pub(crate) fn runtime_hint(
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> RestoreError {
        RestoreError::Runtime {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

/// The repository of a reference: without its tag and digest.
pub fn repository(reference: &str) -> &str {
    let r = reference.split('@').next().unwrap_or(reference);
    match r.rsplit_once('/') {
        Some((_, last)) if last.contains(':') => r.rsplit_once(':').map_or(r, |(repo, _)| repo),
        None if r.contains(':') => r.rsplit_once(':').map_or(r, |(repo, _)| repo),
        _ => r,
    }
}

/// A chart or other artifact that restore does not import.
#[derive(Debug, Clone)]
pub struct LeftAlone {
    /// The reference.
    pub reference: String,
    /// Its manifest digest.
    pub digest: String,
    /// What it is.
    pub kind: crate::artifact::Kind,
    /// Why it is not imported.
    pub reason: String,
}

/// The bundle's entries restore leaves alone: Helm charts and other artifacts, which no
/// container runtime runs (signatures and SBOMs, which travel with their images, are not named).
pub fn left_alone(layout: &dyn BundleSource) -> Result<Vec<LeftAlone>, RestoreError> {
    let mut out = Vec::new();
    for entry in layout.index()?.entries() {
        let Some(name) = entry.name.clone() else {
            continue;
        };
        if crate::supply::is_referrer_name(&name) {
            continue;
        }
        let kind = crate::artifact::kind_of_entry(layout, &entry);
        if let Some(reason) = kind.why_not_restored() {
            out.push(LeftAlone {
                reference: name,
                digest: entry.descriptor.digest().to_string(),
                kind,
                reason,
            });
        }
    }
    Ok(out)
}

/// Restores every image of the bundle that serves the node's platform; the others are
/// reported as failed. Returns one outcome per image. What it imports is reported as
/// [`Event::CopyStarted`](crate::report::Event::CopyStarted), then bytes and images as they go.
pub fn restore(
    layout: &dyn BundleSource,
    options: &RestoreOptions,
    reporter: &dyn crate::report::Reporter,
) -> Result<Vec<Restored>, RestoreError> {
    let index = layout.index()?;
    let mut serving: Vec<PlatformImage> = Vec::new();
    let mut outcomes = Vec::new();
    for entry in index.entries() {
        // Signatures and SBOMs travel in the bundle; they are not images to import.
        if entry
            .name
            .as_deref()
            .is_some_and(crate::supply::is_referrer_name)
        {
            continue;
        }
        // Charts and other artifacts travel in the bundle; no runtime runs them
        // ([`left_alone`] names them).
        if !crate::artifact::kind_of_entry(layout, &entry).is_runnable() {
            continue;
        }
        match offer(layout, &entry, &options.platform)? {
            Offer::Serves(image) => serving.push(*image),
            Offer::Lacks { name, has } => outcomes.push(Restored {
                reference: name,
                digest: entry.descriptor.digest().to_string(),
                names: Vec::new(),
                pinned: false,
                already_present: false,
                error: Some(crate::error::Error::msg(
                    crate::error::Kind::ManifestNotFound,
                    format!(
                        "no image for {} in this bundle (it has {})",
                        options.platform,
                        has.join(", ")
                    ),
                )),
            }),
        }
    }
    if serving.is_empty() && outcomes.is_empty() {
        if !left_alone(layout)?.is_empty() {
            return Ok(Vec::new()); // only artifacts: nothing to import, nothing failed
        }
        return Err(RestoreError::Empty(layout.path().display().to_string()));
    }
    if serving.is_empty() {
        return Err(RestoreError::NoImageForPlatform {
            bundle: layout.path().display().to_string(),
            platform: options.platform.to_string(),
            details: outcomes
                .iter()
                .map(|o| {
                    format!(
                        "{} ({})",
                        o.reference,
                        o.error
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    let done = match options.runtime {
        Runtime::Containerd => containerd::restore(layout, &serving, options, reporter)?,
        Runtime::CriO => crio::restore(layout, &serving, options, reporter)?,
    };
    outcomes.extend(done);
    outcomes.sort_by(|a, b| a.reference.cmp(&b.reference));
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories() {
        assert_eq!(
            repository("docker.io/library/nginx:1.27"),
            "docker.io/library/nginx"
        );
        assert_eq!(repository("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(repository("localhost:5000/app:1"), "localhost:5000/app");
        assert_eq!(
            repository(&format!("quay.io/o/a:1@sha256:{}", "a".repeat(64))),
            "quay.io/o/a"
        );
        assert_eq!(
            repository(&format!("quay.io/o/a@sha256:{}", "a".repeat(64))),
            "quay.io/o/a"
        );
    }
}
