//! What containerd already holds: a second boot that finds every image present, complete and
//! (when asked) pinned under both its names imports nothing.

use std::collections::{BTreeMap, HashMap};

/// One image name as containerd lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentImage {
    /// The digest the name points at.
    pub digest: String,
    /// Whether its content for the node's platform is all in the content store.
    pub complete: bool,
    /// Its labels, key to value.
    pub labels: BTreeMap<String, String>,
}

impl PresentImage {
    /// Whether it carries the kubelet-GC pin label.
    pub fn pinned(&self) -> bool {
        self.labels.get(PIN_KEY).is_some_and(|v| v == "pinned")
    }

    /// Whether it is pinned, and recorded as pinned by the bundle `record` (a label key) when
    /// one is given.
    pub fn pinned_by(&self, record: Option<&str>) -> bool {
        self.pinned() && record.is_none_or(|key| self.labels.contains_key(key))
    }
}

/// The label key containerd's CRI plugin reads to keep an image from kubelet's image GC.
pub const PIN_KEY: &str = "io.cri-containerd.pinned";

/// That label, set.
pub const PIN_LABEL: &str = "io.cri-containerd.pinned=pinned";

/// Reads `ctr images ls` (REF TYPE DIGEST SIZE PLATFORMS LABELS; SIZE has a space, LABELS is
/// the last column, comma separated or `-`) and `ctr images check` (REF TYPE DIGEST STATUS...,
/// STATUS `complete (n/n)` or `incomplete (..)`) into one map by name.
pub fn parse(ls: &str, check: &str) -> HashMap<String, PresentImage> {
    let mut out = HashMap::new();
    for line in ls.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 {
            continue;
        }
        let labels = fields[fields.len() - 1]
            .split(',')
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        out.insert(
            fields[0].to_owned(),
            PresentImage {
                digest: fields[2].to_owned(),
                complete: false,
                labels,
            },
        );
    }
    for line in check.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [name, _, _, status, ..] = fields.as_slice()
            && let Some(image) = out.get_mut(*name)
        {
            image.complete = *status == "complete";
        }
    }
    out
}

/// Whether `names` all point at `digest`, complete, and when `pin` is given pinned (with that
/// bundle record, when it holds one).
pub fn already_there(
    present: &HashMap<String, PresentImage>,
    names: &[&str],
    digest: &str,
    pin: Option<Option<&str>>,
) -> bool {
    names.iter().all(|n| {
        present.get(*n).is_some_and(|p| {
            p.digest == digest && p.complete && pin.is_none_or(|record| p.pinned_by(record))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn parses_ctr_listings() {
        let ls = format!(
            "REF TYPE DIGEST SIZE PLATFORMS LABELS\n\
             docker.io/library/a:1 application/vnd.oci.image.index.v1+json {D1} 3.5 MiB linux/amd64,linux/arm64 io.cri-containerd.pinned=pinned\n\
             docker.io/library/a@{D1} application/vnd.oci.image.index.v1+json {D1} 3.5 MiB linux/amd64 -\n\
             docker.io/library/b:1 application/vnd.oci.image.manifest.v1+json {D2} 1.0 KiB linux/amd64 x=y,io.cri-containerd.pinned=pinned\n"
        );
        let check = format!(
            "REF TYPE DIGEST STATUS SIZE UNPACKED\n\
             docker.io/library/a:1 application/vnd.oci.image.index.v1+json {D1} complete (2/2) 3.5 MiB/3.5 MiB true\n\
             docker.io/library/a@{D1} application/vnd.oci.image.index.v1+json {D1} complete (2/2) 3.5 MiB/3.5 MiB true\n\
             docker.io/library/b:1 application/vnd.oci.image.manifest.v1+json {D2} incomplete (1/2) 1.0 KiB/2.0 KiB false\n"
        );
        let p = parse(&ls, &check);
        let twin = format!("docker.io/library/a@{D1}");
        assert!(already_there(
            &p,
            &["docker.io/library/a:1", &twin],
            D1,
            None
        ));
        assert!(
            !already_there(&p, &["docker.io/library/a:1", &twin], D1, Some(None)),
            "the twin is not pinned"
        );
        assert!(already_there(
            &p,
            &["docker.io/library/a:1"],
            D1,
            Some(None)
        ));
        assert!(
            !already_there(&p, &["docker.io/library/a:1"], D1, Some(Some("io.ferry.x"))),
            "pinned, but not by that bundle"
        );
        assert!(
            !already_there(&p, &["docker.io/library/a:1"], D2, None),
            "another digest"
        );
        assert!(
            !already_there(&p, &["docker.io/library/b:1"], D2, None),
            "incomplete"
        );
        assert!(
            !already_there(&p, &["docker.io/library/c:1"], D2, None),
            "absent"
        );
        assert!(p["docker.io/library/b:1"].pinned());
        assert_eq!(p["docker.io/library/b:1"].labels["x"], "y");
    }
}
