//! `--mirror-config DIR`: what nodes need to pull the ORIGINAL names from the push target:
//! containerd's `DIR/certs.d/<SRC_HOST>/hosts.toml` and a CRI-O/podman
//! `DIR/registries.conf.d/ferry.conf`, one entry per source registry pushed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::node::mirror_config::{self, Mirror};
use crate::store::StoreError;

use super::Target;

/// How nodes reach the target.
#[derive(Debug, Clone)]
pub struct MirrorSettings {
    /// `https://host:port` or `http://host:port` (as the push reached it).
    pub origin: String,
    /// A CA file for the target (containerd's `ca`), as an absolute path.
    pub ca_file: Option<PathBuf>,
    /// TLS not verified (`--insecure-registry` named the target).
    pub skip_verify: bool,
}

/// One mirror per source registry, at the namespace its repositories were pushed under.
pub fn mirrors(
    target: &Target,
    sources: &BTreeSet<String>,
    keep_registry: bool,
    settings: &MirrorSettings,
) -> Vec<(String, Mirror)> {
    sources
        .iter()
        .map(|source| {
            (
                source.clone(),
                Mirror {
                    origin: settings.origin.clone(),
                    namespace: target.namespace(source, keep_registry),
                    ca_file: settings.ca_file.clone(),
                    skip_verify: settings.skip_verify,
                },
            )
        })
        .collect()
}

/// Writes `DIR/certs.d/<source>/hosts.toml` for every source and
/// `DIR/registries.conf.d/ferry.conf`, the `front` mirrors tried first (in order); returns the
/// files written.
pub fn write(
    dir: &Path,
    mirrors: &[(String, Mirror)],
    front: &[Mirror],
) -> Result<Vec<PathBuf>, StoreError> {
    let routes = mirror_config::in_order(front, mirrors.to_vec());
    let mut files = mirror_config::write_hosts_dir(&dir.join("certs.d"), &routes)?;
    let conf = dir.join("registries.conf.d").join("ferry.conf");
    mirror_config::write_registries_conf(&conf, &routes)?;
    files.push(conf);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mirror_per_source_with_its_namespace() {
        let target: Target = "reg.corp:5000/airgap".parse().unwrap();
        let sources: BTreeSet<String> = ["docker.io".to_owned(), "quay.io".to_owned()].into();
        let settings = MirrorSettings {
            origin: "https://reg.corp:5000".into(),
            ca_file: Some("/etc/ca.pem".into()),
            skip_verify: false,
        };
        let m = mirrors(&target, &sources, true, &settings);
        assert_eq!(m[0].1.namespace, "airgap/docker.io");
        assert_eq!(m[1].1.namespace, "airgap/quay.io");
        let m = mirrors(&target, &sources, false, &settings);
        assert_eq!(m[1].1.namespace, "airgap");
        let dir = tempfile::tempdir().unwrap();
        let files = write(dir.path(), &m, &[]).unwrap();
        assert_eq!(files.len(), 3);
        let hosts = std::fs::read_to_string(dir.path().join("certs.d/quay.io/hosts.toml")).unwrap();
        assert!(hosts.contains("https://reg.corp:5000/v2/airgap"), "{hosts}");
        assert!(hosts.contains("override_path = true"), "{hosts}");
        assert!(hosts.contains("/etc/ca.pem"), "{hosts}");
        let conf =
            std::fs::read_to_string(dir.path().join("registries.conf.d/ferry.conf")).unwrap();
        assert!(conf.contains("reg.corp:5000/airgap"), "{conf}");
    }
}
