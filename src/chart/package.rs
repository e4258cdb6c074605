//! A chart archive's Chart.yaml, read with limits, and the config and manifest `helm push`
//! writes for it.

use std::io::Read;

use crate::resolve::BlobRef;

/// The most bytes a chart archive may inflate to while Chart.yaml is looked for.
const MAX_INFLATED: u64 = 256 * 1024 * 1024;
/// The largest Chart.yaml read.
const MAX_CHART_YAML: u64 = 1024 * 1024;
/// The most entries looked at.
const MAX_ENTRIES: usize = 100_000;

/// Chart.yaml's fields, in the order helm's `chart.Metadata` marshals them to JSON (Go struct
/// order), so the config matches what `helm push` writes for the same chart.
const METADATA_FIELDS: [&str; 17] = [
    "name",
    "home",
    "sources",
    "version",
    "description",
    "keywords",
    "maintainers",
    "icon",
    "apiVersion",
    "condition",
    "tags",
    "appVersion",
    "deprecated",
    "annotations",
    "kubeVersion",
    "dependencies",
    "type",
];
const MAINTAINER_FIELDS: [&str; 3] = ["name", "email", "url"];
const DEPENDENCY_FIELDS: [&str; 8] = [
    "name",
    "version",
    "repository",
    "condition",
    "tags",
    "enabled",
    "import-values",
    "alias",
];

/// A chart's Chart.yaml.
#[derive(Debug, Clone)]
pub struct ChartMeta {
    /// Chart.yaml as JSON values.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// The top-level files of a chart archive ferry reads.
#[derive(Debug, Default)]
pub struct TopFiles {
    /// `<chart>/Chart.yaml`.
    pub chart_yaml: Option<String>,
    /// `<chart>/values.yaml`.
    pub values_yaml: Option<String>,
    /// Subchart archives and folders under `<chart>/charts/` (not read).
    pub subcharts: Vec<String>,
}

/// Reads the top-level Chart.yaml and values.yaml of a chart `.tgz` (gzip'd tar, first-level
/// folder only), no more than [`MAX_INFLATED`] bytes inflated nor [`MAX_CHART_YAML`] a file.
pub fn read_top_files(tgz: &[u8]) -> Result<TopFiles, String> {
    let inflated = flate2::read::GzDecoder::new(tgz).take(MAX_INFLATED);
    let mut archive = tar::Archive::new(inflated);
    let entries = archive
        .entries()
        .map_err(|e| format!("not a chart archive: {e}"))?;
    let mut out = TopFiles::default();
    for entry in entries.take(MAX_ENTRIES) {
        let entry = entry.map_err(|e| format!("not a chart archive (gzip'd tar): {e}"))?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if parts.first().is_none_or(|p| *p == ".." || *p == ".") {
            continue;
        }
        if parts.len() == 3 && parts[1] == "charts" {
            out.subcharts.push(crate::untrusted::shown(parts[2]));
            continue;
        }
        let slot = match (parts.len(), parts.get(1)) {
            (2, Some(&"Chart.yaml")) => &mut out.chart_yaml,
            (2, Some(&"values.yaml")) => &mut out.values_yaml,
            _ => continue,
        };
        if !entry.header().entry_type().is_file() || slot.is_some() {
            continue;
        }
        if entry.size() > MAX_CHART_YAML {
            return Err(format!(
                "{} is {} bytes; more than {MAX_CHART_YAML} is refused",
                crate::untrusted::shown(&path),
                entry.size()
            ));
        }
        let mut text = String::new();
        entry
            .take(MAX_CHART_YAML)
            .read_to_string(&mut text)
            .map_err(|e| format!("{}: {e}", crate::untrusted::shown(&path)))?;
        *slot = Some(text);
    }
    Ok(out)
}

/// Reads and parses a chart archive's Chart.yaml (see [`read_top_files`]).
pub fn read_chart_yaml(tgz: &[u8]) -> Result<ChartMeta, String> {
    let text = read_top_files(tgz)?
        .chart_yaml
        .ok_or("no Chart.yaml in the chart archive's top folder")?;
    parse_chart_yaml(&text).map_err(|e| format!("Chart.yaml: {e}"))
}

/// Parses Chart.yaml's text.
pub fn parse_chart_yaml(text: &str) -> Result<ChartMeta, String> {
    let value: serde_json::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let serde_json::Value::Object(fields) = value else {
        return Err("not a mapping".into());
    };
    for key in ["name", "version"] {
        if !fields.get(key).is_some_and(serde_json::Value::is_string) {
            return Err(format!("no `{key}`"));
        }
    }
    Ok(ChartMeta { fields })
}

impl ChartMeta {
    /// A string field.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.fields
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The config `helm push` writes: Chart.yaml as JSON, keys in helm's order, empty fields
    /// left out (Go's `omitempty`), `<`, `>` and `&` escaped as Go's encoder does.
    pub fn config_json(&self) -> Vec<u8> {
        go_json(&ordered(
            &self.fields,
            &METADATA_FIELDS,
            |key, value| match (key, value) {
                ("maintainers", serde_json::Value::Array(list)) => {
                    each_ordered(list, &MAINTAINER_FIELDS)
                }
                ("dependencies", serde_json::Value::Array(list)) => {
                    each_ordered(list, &DEPENDENCY_FIELDS)
                }
                _ => value.to_string(),
            },
        ))
        .into_bytes()
    }

    /// The manifest: OCI image manifest, the helm config and the chart layer, and the
    /// annotations helm derives from Chart.yaml (no creation time: the same chart always gives
    /// the same manifest).
    pub fn manifest_json(&self, config: &BlobRef, layer: &BlobRef) -> Vec<u8> {
        let mut annotations = serde_json::Map::new();
        if let Some(serde_json::Value::Object(a)) = self.fields.get("annotations") {
            for (k, v) in a {
                if let Some(v) = v.as_str() {
                    annotations.insert(k.clone(), v.into());
                }
            }
        }
        let oci = |name: &str| format!("org.opencontainers.image.{name}");
        for (name, key) in [
            ("title", "name"),
            ("version", "version"),
            ("description", "description"),
            ("url", "home"),
        ] {
            if let Some(v) = self.text(key) {
                annotations.insert(oci(name), v.into());
            }
        }
        let doc = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::manifest::OCI_MANIFEST,
            "config": {
                "mediaType": crate::artifact::HELM_CONFIG,
                "digest": config.digest.to_string(),
                "size": config.size,
            },
            "layers": [{
                "mediaType": crate::artifact::HELM_CHART_LAYER,
                "digest": layer.digest.to_string(),
                "size": layer.size,
            }],
            "annotations": annotations,
        });
        serde_json::to_vec(&doc).expect("JSON")
    }
}

/// `{"k":v,...}` with `keys` in their order, each present non-empty value rendered by `render`.
fn ordered(
    fields: &serde_json::Map<String, serde_json::Value>,
    keys: &[&str],
    render: impl Fn(&str, &serde_json::Value) -> String,
) -> String {
    let items: Vec<String> = keys
        .iter()
        .filter_map(|k| {
            let v = fields.get(*k).filter(|v| !is_empty(v))?;
            Some(format!("{}:{}", serde_json::Value::from(*k), render(k, v)))
        })
        .collect();
    format!("{{{}}}", items.join(","))
}

/// A list of objects, each with `keys` in their order.
fn each_ordered(list: &[serde_json::Value], keys: &[&str]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|v| match v {
            serde_json::Value::Object(m) => ordered(m, keys, |_, v| v.to_string()),
            other => other.to_string(),
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// Go's `omitempty`: false, 0, "", empty arrays and maps, null.
fn is_empty(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(b) => !b,
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        serde_json::Value::Number(_) => false,
    }
}

/// Go's encoding/json escapes `<`, `>` and `&` (inside strings, the only place they occur).
fn go_json(s: &str) -> String {
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_follows_helms_field_order() {
        let meta = parse_chart_yaml(
            "version: 1.2.3\nname: web\napiVersion: v2\ndescription: a <b> & c\n\
             annotations:\n  z: '1'\n  a: '2'\nmaintainers:\n- email: e@x\n  name: n\n\
             deprecated: false\nkeywords: []\n",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(meta.config_json()).unwrap(),
            r#"{"name":"web","version":"1.2.3","description":"a \u003cb\u003e \u0026 c","maintainers":[{"name":"n","email":"e@x"}],"apiVersion":"v2","annotations":{"a":"2","z":"1"}}"#
        );
        assert!(parse_chart_yaml("name: x\n").is_err());
        assert!(parse_chart_yaml("- a\n").is_err());
    }

    #[test]
    fn a_tgz_without_chart_yaml_or_not_gzip_is_refused() {
        assert!(read_chart_yaml(b"not gzip").is_err());
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "x/other.yaml", &b"a: 1"[..3])
            .unwrap();
        let raw = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        let err = read_chart_yaml(&gz.finish().unwrap()).unwrap_err();
        assert!(err.contains("no Chart.yaml"), "{err}");
    }
}
