//! A chart stored in a registry as `helm push` stores it: its manifest, then its one chart
//! layer (the `.tgz`).

use bytes::Bytes;

use super::ChartError;
use crate::artifact::{HELM_CHART_LAYER, HELM_CONFIG};
use crate::error::Error;
use crate::manifest::Manifest;
use crate::reference::ImageRef;
use crate::registry::Registries;

/// The largest chart layer fetched.
const MAX_CHART_BYTES: u64 = 64 * 1024 * 1024;

/// The chart `.tgz` that `reference` (a Helm chart in a registry) holds, from its mirrors in
/// order, then its own registry.
pub async fn fetch_oci_chart(
    registries: &Registries,
    reference: &ImageRef,
) -> Result<Bytes, Error> {
    let remotes = registries.remotes(reference);
    let mut last = None;
    for remote in &remotes {
        let manifest = match registries
            .fetch_manifest(remote, &reference.manifest_reference(), reference.digest())
            .await
        {
            Ok(m) => m,
            Err(e) => {
                last = Some(Error::new(e));
                continue;
            }
        };
        let invalid = |why: &str| {
            Error::new(ChartError::Invalid {
                what: reference.to_string(),
                why: why.into(),
            })
        };
        let Ok((Manifest::Image(image), _)) =
            Manifest::parse(&manifest.bytes, manifest.content_type.as_deref())
        else {
            return Err(invalid("not a Helm chart (an index or no manifest)"));
        };
        if image.config().media_type().to_string() != HELM_CONFIG {
            return Err(invalid("not a Helm chart (its config is no helm config)"));
        }
        let layer = image
            .layers()
            .iter()
            .find(|l| l.media_type().to_string() == HELM_CHART_LAYER)
            .ok_or_else(|| invalid("a Helm chart without its chart layer"))?;
        if layer.size() > MAX_CHART_BYTES {
            return Err(invalid("a chart layer larger than 64 MiB"));
        }
        let digest =
            crate::manifest::descriptor_digest(layer).map_err(|e| invalid(&e.to_string()))?;
        return registries
            .fetch_small_blob(remote, &digest, layer.size())
            .await
            .map_err(Error::new);
    }
    Err(last.unwrap_or_else(|| {
        Error::msg(
            crate::error::Kind::Configuration,
            "no registry to fetch from",
        )
    }))
}
