//! After its manifests are PUT, an image is read back from the target: each manifest by
//! digest (`HEAD`, the served Docker-Content-Digest compared), and the tagged one by its tag.
//! A 201 to a PUT says only that the registry answered; a target that stores nothing (a
//! broken proxy, a full or read-only backend that still answers 201) is caught here, and the
//! image fails instead of being reported pushed.

use super::plan::ManifestPut;
use crate::error::{Error, Kind};
use crate::registry::{Registries, Remote};

/// Checks that the target serves every manifest of `manifests` as pushed.
pub async fn read_back(
    registries: &Registries,
    registry: &str,
    repo: &str,
    manifests: &[ManifestPut],
) -> Result<(), Error> {
    for m in manifests {
        let digest = m.digest.to_string();
        let mut references = vec![digest.clone()];
        references.extend(m.tag.clone());
        for reference in references {
            let served = registries
                .served_manifest_digest(registry, repo, &reference)
                .await
                .map_err(|e| Error::from(e).wrap(format!("reading back manifest {digest}")))?;
            let served = match served {
                Some(Some(d)) => d,
                // No Docker-Content-Digest: what a GET serves is hashed instead.
                Some(None) => fetched_digest(registries, registry, repo, &reference).await?,
                None => {
                    return Err(lost(format!(
                        "{registry}/{repo} accepted manifest {digest} (201) but does not serve \
                         it under {reference}: the target did not store it"
                    )));
                }
            };
            if served != digest {
                return Err(lost(format!(
                    "{registry}/{repo} serves {served} under {reference}, not the {digest} \
                     just pushed"
                )));
            }
        }
    }
    Ok(())
}

/// The digest of what the target serves under `reference`, by GET.
async fn fetched_digest(
    registries: &Registries,
    registry: &str,
    repo: &str,
    reference: &str,
) -> Result<String, Error> {
    let remote = Remote {
        registry: registry.to_owned(),
        repository: repo.to_owned(),
        mirror: false,
    };
    let fetched = registries
        .fetch_manifest(&remote, reference, None)
        .await
        .map_err(|e| Error::from(e).wrap(format!("reading back manifest {reference}")))?;
    Ok(fetched.digest.to_string())
}

fn lost(message: String) -> Error {
    Error::msg(Kind::Protocol, message).with_hint(
        "the target answered the upload but kept nothing (or something else): check its \
         storage and any proxy in front of it, then push again",
    )
}
