//! What containerd already holds: a second boot that finds every image present, complete and
//! (when asked) pinned under both its names imports nothing.

use std::collections::HashMap;

/// One image name as containerd lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentImage {
    /// The digest the name points at.
    pub digest: String,
    /// Whether its content for the node's platform is all in the content store.
    pub complete: bool,
    /// Whether it carries the kubelet-GC pin label.
    pub pinned: bool,
}

/// The label containerd's CRI plugin reads to keep an image from kubelet's image GC.
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
        let labels = fields[fields.len() - 1];
        out.insert(
            fields[0].to_owned(),
            PresentImage {
                digest: fields[2].to_owned(),
                complete: false,
                pinned: labels.split(',').any(|l| l == PIN_LABEL),
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

/// Whether `names` all point at `digest`, complete, and pinned when `pin`.
pub fn already_there(
    present: &HashMap<String, PresentImage>,
    names: &[&str],
    digest: &str,
    pin: bool,
) -> bool {
    names.iter().all(|n| {
        present
            .get(*n)
            .is_some_and(|p| p.digest == digest && p.complete && (p.pinned || !pin))
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
            false
        ));
        assert!(
            !already_there(&p, &["docker.io/library/a:1", &twin], D1, true),
            "the twin is not pinned"
        );
        assert!(
            !already_there(&p, &["docker.io/library/a:1"], D2, false),
            "another digest"
        );
        assert!(
            !already_there(&p, &["docker.io/library/b:1"], D2, false),
            "incomplete"
        );
        assert!(
            !already_there(&p, &["docker.io/library/c:1"], D2, false),
            "absent"
        );
        assert!(p["docker.io/library/b:1"].pinned);
    }
}
