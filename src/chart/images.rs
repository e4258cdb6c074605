//! The images a chart names without rendering it: the `artifacthub.io/images` annotation of its
//! Chart.yaml, and the defaults in its values.yaml (`image: REF`, `image: {registry,
//! repository, tag, digest}` as Bitnami writes it, and `repository` + `tag` maps). Templates can
//! compute other names; only `helm template` knows those.

use crate::reference::ImageRef;

/// What `ferry images --from-chart` found.
#[derive(Debug, Default)]
pub struct ChartImages {
    /// Each reference with where it was found (`artifacthub.io/images`, `values.yaml: a.b.image`).
    pub references: Vec<(ImageRef, String)>,
    /// What was left out and why (templated values, subcharts not read).
    pub notes: Vec<String>,
}

/// The deepest values.yaml nesting walked.
const MAX_DEPTH: usize = 32;

/// The images a chart archive names (see the module's doc).
pub fn chart_images(tgz: &[u8]) -> Result<ChartImages, String> {
    let files = super::package::read_top_files(tgz)?;
    let meta = super::package::parse_chart_yaml(
        files
            .chart_yaml
            .as_deref()
            .ok_or("no Chart.yaml in the chart archive's top folder")?,
    )
    .map_err(|e| format!("Chart.yaml: {e}"))?;
    let mut out = ChartImages::default();
    let annotation = meta
        .fields
        .get("annotations")
        .and_then(|a| a.get("artifacthub.io/images"))
        .and_then(serde_json::Value::as_str);
    if let Some(text) = annotation {
        match serde_yaml_ng::from_str::<Vec<serde_json::Value>>(text) {
            Ok(list) => {
                for item in list {
                    if let Some(image) = item.get("image").and_then(serde_json::Value::as_str) {
                        out.add(image, "artifacthub.io/images".into());
                    }
                }
            }
            Err(e) => out.notes.push(format!(
                "Chart.yaml: artifacthub.io/images is not a list: {e}"
            )),
        }
    }
    if let Some(text) = files.values_yaml {
        let values: serde_json::Value =
            serde_yaml_ng::from_str(&text).map_err(|e| format!("values.yaml: {e}"))?;
        let app_version = meta.text("appVersion").map(str::to_owned);
        walk(&values, "", 0, app_version.as_deref(), &mut out);
    }
    for sub in &files.subcharts {
        out.notes
            .push(format!("the subchart charts/{sub} is not read"));
    }
    out.references.sort_by(|a, b| a.0.cmp(&b.0));
    out.references.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

impl ChartImages {
    fn add(&mut self, text: &str, found: String) {
        if text.contains("{{") {
            self.notes.push(format!(
                "{found}: {} is a template",
                crate::untrusted::shown(text)
            ));
            return;
        }
        match text.parse::<ImageRef>() {
            Ok(r) => self.references.push((r, found)),
            Err(e) => self.notes.push(format!("{found}: {e}")),
        }
    }
}

/// Walks values.yaml for image settings.
fn walk(
    value: &serde_json::Value,
    path: &str,
    depth: usize,
    app_version: Option<&str>,
    out: &mut ChartImages,
) {
    let serde_json::Value::Object(map) = value else {
        return;
    };
    if depth > MAX_DEPTH {
        return;
    }
    let here = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    let image_block = match map.get("image") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => {
            out.add(s, format!("values.yaml: {}", here("image")));
            true
        }
        Some(serde_json::Value::Object(parts)) if parts.contains_key("repository") => {
            if let Some(r) = from_parts(parts, app_version) {
                out.add(&r, format!("values.yaml: {}", here("image")));
            }
            true
        }
        _ => false,
    };
    // `{repository, tag}` at this level: an image block under another name.
    if !map.contains_key("image")
        && map.contains_key("repository")
        && map.contains_key("tag")
        && let Some(r) = from_parts(map, app_version)
    {
        out.add(&r, format!("values.yaml: {}", here("repository")));
    }
    for (key, child) in map {
        if !(image_block && key == "image") {
            walk(child, &here(key), depth + 1, app_version, out);
        }
    }
}

/// `[registry/]repository[:tag][@digest]` from an image map; the chart's appVersion stands in
/// for an empty tag (what most charts' templates default to).
fn from_parts(
    parts: &serde_json::Map<String, serde_json::Value>,
    app_version: Option<&str>,
) -> Option<String> {
    let text = |k: &str| {
        parts.get(k).and_then(|v| match v {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let repository = text("repository")?;
    let mut r = match text("registry") {
        Some(registry) => format!("{}/{repository}", registry.trim_end_matches('/')),
        None => repository,
    };
    match (
        text("tag").or_else(|| app_version.map(str::to_owned)),
        text("digest"),
    ) {
        (_, Some(digest)) => {
            if let Some(tag) = text("tag") {
                r = format!("{r}:{tag}");
            }
            r = format!("{r}@{digest}");
        }
        (Some(tag), None) => r = format!("{r}:{tag}"),
        (None, None) => {}
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images_of(values: &str) -> Vec<String> {
        let value: serde_json::Value = serde_yaml_ng::from_str(values).unwrap();
        let mut out = ChartImages::default();
        walk(&value, "", 0, Some("9.9"), &mut out);
        let mut refs: Vec<String> = out.references.iter().map(|r| r.0.to_string()).collect();
        refs.sort();
        refs
    }

    #[test]
    fn values_layouts() {
        assert_eq!(
            images_of(
                "image:\n  registry: docker.io\n  repository: bitnami/nginx\n  tag: 1.27.0\n\
                 metrics:\n  image:\n    registry: quay.io\n    repository: a/b\n    tag: '2'\n\
                 side:\n  image: ghcr.io/x/y:1\n\
                 plain:\n  repository: nginx\n  tag: 1.25\n\
                 noTag:\n  image:\n    repository: busybox\n"
            ),
            [
                "docker.io/bitnami/nginx:1.27.0",
                "docker.io/library/busybox:9.9",
                "docker.io/library/nginx:1.25",
                "ghcr.io/x/y:1",
                "quay.io/a/b:2",
            ]
        );
        let value: serde_json::Value =
            serde_yaml_ng::from_str("image: '{{ .Values.x }}'\n").unwrap();
        let mut out = ChartImages::default();
        walk(&value, "", 0, None, &mut out);
        assert!(out.references.is_empty());
        assert!(out.notes[0].contains("template"), "{:?}", out.notes);
    }
}
