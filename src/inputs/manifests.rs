//! Image references in Kubernetes manifests: multi-document YAML and JSON, `kind: List`, and
//! what `kubectl get -o yaml|json`, `helm template` and `kustomize build` print.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::InputError;
use crate::reference::ImageRef;

/// Where a pod spec sits in each kind that has one.
const POD_SPEC_PATHS: &[(&str, &[&str])] = &[
    ("Pod", &["spec"]),
    ("Deployment", &["spec", "template", "spec"]),
    ("ReplicaSet", &["spec", "template", "spec"]),
    ("StatefulSet", &["spec", "template", "spec"]),
    ("DaemonSet", &["spec", "template", "spec"]),
    ("Job", &["spec", "template", "spec"]),
    ("ReplicationController", &["spec", "template", "spec"]),
    (
        "CronJob",
        &["spec", "jobTemplate", "spec", "template", "spec"],
    ),
    ("PodTemplate", &["template", "spec"]),
];

/// The container lists of a pod spec.
const CONTAINER_LISTS: &[&str] = &["initContainers", "containers", "ephemeralContainers"];

/// Options for reading manifests.
#[derive(Debug, Clone, Copy, Default)]
pub struct ManifestOptions {
    /// Also take any string field named `image` in other kinds (operators' custom resources).
    pub scan_all_image_fields: bool,
}

/// What manifests yielded: the images, and the `image` fields of other kinds (operators'
/// custom resources) left unread without `--scan-all-image-fields`, counted by kind.
#[derive(Debug, Default)]
pub struct Found {
    /// The images, in the order found.
    pub images: Vec<ImageRef>,
    /// Kind -> how many `image` fields of that kind were not taken.
    pub unscanned: std::collections::BTreeMap<String, usize>,
}

impl Found {
    /// The note to show once when image fields were left unread, naming the flag.
    pub fn unscanned_note(&self) -> Option<String> {
        if self.unscanned.is_empty() {
            return None;
        }
        let fields: usize = self.unscanned.values().sum();
        let kinds: Vec<&str> = self.unscanned.keys().map(String::as_str).collect();
        Some(format!(
            "left out {fields} image field(s) of {} (not a pod spec): pass \
             --scan-all-image-fields to take them",
            kinds.join(", ")
        ))
    }
}

/// The images of one object whose kind is known (items of an API list carry no `kind`).
pub fn images_in_object(
    kind: &str,
    object: &Value,
    options: ManifestOptions,
    origin: &str,
    found: &mut Found,
) -> Result<(), InputError> {
    let out = &mut found.images;
    let what = match object.pointer("/metadata/name").and_then(Value::as_str) {
        Some(name) => format!("{origin} ({kind} {name})"),
        None => format!("{origin} ({kind})"),
    };
    if let Some((_, path)) = POD_SPEC_PATHS.iter().find(|(k, _)| *k == kind) {
        let spec = path.iter().try_fold(object, |v, key| v.get(key));
        for list in CONTAINER_LISTS {
            let containers = spec.and_then(|s| s.get(list)).and_then(Value::as_array);
            for c in containers.into_iter().flatten() {
                if let Some(image) = c.get("image") {
                    out.push(parse(image, &what)?);
                }
            }
        }
    } else if options.scan_all_image_fields {
        scan(object, &what, out)?;
    } else {
        let mut left = Vec::new();
        // A field that is no reference is not counted: it would not have been taken either.
        if scan(object, &what, &mut left).is_ok() && !left.is_empty() {
            let kind = crate::untrusted::printable(kind).to_string();
            *found.unscanned.entry(kind).or_default() += left.len();
        }
    }
    Ok(())
}

fn parse(image: &Value, what: &str) -> Result<ImageRef, InputError> {
    let text = image.as_str().unwrap_or_default();
    text.parse().map_err(|source| InputError::Reference {
        origin: what.to_owned(),
        source,
    })
}

/// Every string field named `image`, anywhere in the object.
fn scan(v: &Value, what: &str, out: &mut Vec<ImageRef>) -> Result<(), InputError> {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == "image" && child.is_string() {
                    out.push(parse(child, what)?);
                } else {
                    scan(child, what, out)?;
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                scan(item, what, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The images of one parsed document: an object, a `List` (or `…List` with `items`), or a
/// bare array of objects.
fn images_in_document(
    doc: &Value,
    options: ManifestOptions,
    origin: &str,
    out: &mut Found,
) -> Result<(), InputError> {
    match doc {
        Value::Array(items) => {
            for item in items {
                images_in_document(item, options, origin, out)?;
            }
        }
        Value::Object(_) => {
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
            match doc.get("items").and_then(Value::as_array) {
                Some(items) if kind == "List" || kind.ends_with("List") => {
                    // kubectl's lists of one kind leave `kind` out of their items.
                    let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
                    for item in items {
                        match (item.get("kind"), item_kind) {
                            (None, Some(k)) => images_in_object(k, item, options, origin, out)?,
                            _ => images_in_document(item, options, origin, out)?,
                        }
                    }
                }
                _ => images_in_object(kind, doc, options, origin, out)?,
            }
        }
        _ => {}
    }
    Ok(())
}

/// The images in a manifest file's text (`name` is used in messages).
pub fn images_in_text(
    text: &str,
    name: &str,
    options: ManifestOptions,
) -> Result<Vec<ImageRef>, InputError> {
    found_in_text(text, name, options).map(|f| f.images)
}

/// What a manifest file's text yields (`name` is used in messages).
pub fn found_in_text(
    text: &str,
    name: &str,
    options: ManifestOptions,
) -> Result<Found, InputError> {
    let mut out = Found::default();
    let bad = |n: usize, e: String| InputError::Manifest {
        origin: format!("{name}: document {n}"),
        // Parsers quote the text they choke on, which may be a reference with a password.
        reason: crate::redact::redact(&e),
    };
    // JSON first (kubectl -o json, possibly several values): YAML refuses tab indentation.
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let docs = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let mut parsed = Vec::new();
        let mut json_ok = true;
        for d in docs {
            match d {
                Ok(v) => parsed.push(v),
                Err(_) => {
                    json_ok = false;
                    break;
                }
            }
        }
        if json_ok {
            for (i, doc) in parsed.iter().enumerate() {
                images_in_document(
                    doc,
                    options,
                    &format!("{name}: document {}", i + 1),
                    &mut out,
                )?;
            }
            return Ok(out);
        }
    }
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let mut yaml = serde_yaml_ng::Value::deserialize(doc)
            .map_err(|e| bad(i + 1, format!("not YAML or JSON: {e}")))?;
        // `<<: *base` merge keys are how charts share container fields.
        yaml.apply_merge()
            .map_err(|e| bad(i + 1, format!("YAML merge key: {e}")))?;
        let value = serde_json::to_value(&yaml)
            .map_err(|e| bad(i + 1, format!("not JSON-shaped YAML: {e}")))?;
        images_in_document(
            &value,
            options,
            &format!("{name}: document {}", i + 1),
            &mut out,
        )?;
    }
    Ok(out)
}

/// Files under `path` to read: the file itself, or the `.yaml`/`.yml`/`.json` files of a
/// folder, recursively, in sorted order.
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, InputError> {
    let io = |e: std::io::Error| InputError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            out.extend(manifest_files(&e)?);
        } else if matches!(
            e.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(e);
        }
    }
    Ok(out)
}

/// What manifest files and folders yield; `-` reads stdin.
pub fn read_manifests(
    paths: &[PathBuf],
    options: ManifestOptions,
    stdin: &mut dyn FnMut() -> Result<String, InputError>,
) -> Result<Found, InputError> {
    let mut out = Found::default();
    let mut add = |more: Found| {
        out.images.extend(more.images);
        for (kind, n) in more.unscanned {
            *out.unscanned.entry(kind).or_default() += n;
        }
    };
    for p in paths {
        if p.as_os_str() == "-" {
            add(found_in_text(&stdin()?, "stdin", options)?);
            continue;
        }
        for f in manifest_files(p)? {
            let text = std::fs::read_to_string(&f).map_err(|e| InputError::Io {
                path: f.display().to_string(),
                source: e,
            })?;
            add(found_in_text(&text, &f.display().to_string(), options)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(text: &str, scan_all: bool) -> Vec<String> {
        let opts = ManifestOptions {
            scan_all_image_fields: scan_all,
        };
        let mut v: Vec<String> = images_in_text(text, "t.yaml", opts)
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn kubectl_list_json_with_tabs() {
        let text = "{\n\t\"apiVersion\": \"v1\",\n\t\"kind\": \"PodList\",\n\t\"items\": [{\"metadata\": {\"name\": \"p\"}, \"spec\": {\"containers\": [{\"image\": \"nginx:1.27\"}]}}]\n}";
        assert_eq!(images(text, false), ["docker.io/library/nginx:1.27"]);
    }

    #[test]
    fn errors_name_file_document_and_object() {
        let text = "kind: Pod\nmetadata: {name: ok}\nspec: {containers: [{image: a}]}\n---\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: [{image: 'Bad Image'}]\n";
        let err = images_in_text(text, "t.yaml", ManifestOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.yaml: document 2 (Deployment web): invalid image reference"),
            "{err}"
        );
    }

    #[test]
    fn yaml_anchors_and_merge_keys() {
        let text = "kind: Pod\nspec:\n  containers:\n    - &base {name: a, image: nginx:1.25}\n    - <<: *base\n      name: b\n  initContainers:\n    - <<: {image: busybox:1}\n";
        // Container b takes its image from the anchor it merges.
        assert_eq!(
            images(text, false),
            [
                "docker.io/library/busybox:1",
                "docker.io/library/nginx:1.25",
                "docker.io/library/nginx:1.25"
            ]
        );
    }
}
