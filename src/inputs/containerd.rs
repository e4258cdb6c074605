//! The images a node's containerd holds, through `ctr` (which honours `CONTAINERD_ADDRESS`), to
//! rebuild a bundle from a golden node. Only the names are taken: the content is pulled fresh
//! from the registries, since containerd may have pruned layers.

use std::process::Command;

use super::InputError;
use crate::reference::{ImageRef, starts_with_registry};

/// What `ctr images ls` gave.
#[derive(Debug, Default)]
pub struct ContainerdImages {
    /// Image names that are references.
    pub references: Vec<ImageRef>,
    /// Names that are not (image IDs, `import-…` names without a registry are kept): shown to
    /// the user, not fetched.
    pub skipped: Vec<String>,
}

/// Lists the images of containerd namespace `namespace`.
pub fn list(namespace: &str) -> Result<ContainerdImages, InputError> {
    let out = Command::new("ctr")
        .args(["-n", namespace, "images", "ls", "-q"])
        .output()
        .map_err(|e| InputError::Source {
            source_name: "--from-containerd".into(),
            reason: format!("cannot run ctr: {e}"),
            hint: Some("ctr comes with containerd (apt-get install containerd)".into()),
        })?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let address = std::env::var("CONTAINERD_ADDRESS")
            .unwrap_or_else(|_| "/run/containerd/containerd.sock".into());
        return Err(InputError::Source {
            source_name: "--from-containerd".into(),
            reason: format!("ctr -n {namespace} images ls failed: {said}"),
            hint: Some(format!(
                "is containerd running at {address}? (set CONTAINERD_ADDRESS)"
            )),
        });
    }
    Ok(parse(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `ctr images ls -q` output.
pub fn parse(text: &str) -> ContainerdImages {
    let mut out = ContainerdImages::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // CRI registers every image under its ID (`sha256:<config digest>`) too: not pullable.
        if line.starts_with("sha256:") {
            out.skipped.push(line.to_owned());
            continue;
        }
        // containerd records pulled images under full names; a name without a registry
        // (`import-2024-01-01@sha256:…` from ctr import) names no registry to pull from.
        match line.parse::<ImageRef>() {
            Ok(r) if starts_with_registry(line) => out.references.push(r),
            _ => out.skipped.push(line.to_owned()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ids_and_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let text = format!(
            "docker.io/library/alpine:3.20\n{d}\nregistry.k8s.io/pause@{d}\nNot A Name\nimport-2026-11-23@{d}\n\n"
        );
        let got = parse(&text);
        let names: Vec<String> = got.references.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "docker.io/library/alpine:3.20".to_owned(),
                format!("registry.k8s.io/pause@{d}")
            ]
        );
        assert_eq!(
            got.skipped,
            [
                d.clone(),
                "Not A Name".to_owned(),
                format!("import-2026-11-23@{d}")
            ]
        );
    }
}
