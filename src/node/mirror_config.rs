//! containerd `hosts.toml` and containers-registries.conf(5) drop-ins that send pulls of a
//! source registry's images to a mirror first, falling back to the source itself.
//!
//! Every string written comes from validated references or from the user's own options, and is
//! still written through TOML's own quoting (the `toml` crate), never pasted into the file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::store::{InsideDir, StoreError};

/// Where nodes find one source registry's images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The mirror's scheme and authority: `https://registry.corp:5000`, `http://127.0.0.1:5050`.
    pub origin: String,
    /// The repository path under which the source's repositories live on the mirror
    /// (`airgap` or `airgap/docker.io`); empty when they sit at the root.
    pub namespace: String,
    /// A CA certificate file nodes should trust for the mirror (containerd's `ca`).
    pub ca_file: Option<PathBuf>,
    /// Skip TLS verification (containerd `skip_verify`; registries.conf `insecure`).
    pub skip_verify: bool,
}

impl Mirror {
    fn is_plain_http(&self) -> bool {
        self.origin.starts_with("http://")
    }

    /// `host[:port][/namespace]`, as registries.conf names a location.
    fn location(&self) -> String {
        let authority = self
            .origin
            .split_once("://")
            .map_or(self.origin.as_str(), |(_, a)| a)
            .trim_end_matches('/');
        join_path(authority, &self.namespace)
    }

    /// The URL containerd is given: with a namespace, the full API root (`override_path`).
    fn containerd_url(&self) -> String {
        let origin = self.origin.trim_end_matches('/');
        if self.namespace.is_empty() {
            origin.to_owned()
        } else {
            format!("{origin}/v2/{}", self.namespace.trim_matches('/'))
        }
    }
}

fn join_path(a: &str, b: &str) -> String {
    let b = b.trim_matches('/');
    if b.is_empty() {
        a.to_owned()
    } else {
        format!("{a}/{b}")
    }
}

/// A TOML basic string (quoted and escaped by the toml crate).
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The URL containerd falls back to for a source registry (Docker Hub's API host for docker.io;
/// plain HTTP for a registry on loopback, as containerd itself assumes).
fn source_server(source: &str) -> String {
    let scheme = if crate::registry::is_loopback(source) {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{}", crate::docker_hub::api_host(source))
}

/// The `hosts.toml` for `source`: the mirror for pull and resolve, then the source itself.
/// Serialized by the toml crate as a whole: a key (the mirror's URL) needs other quoting
/// than a value, and a `\n` in one would otherwise become a multi-line string, which no key
/// may be.
pub fn hosts_toml(source: &str, mirror: &Mirror) -> String {
    let mut host = toml::Table::new();
    host.insert("capabilities".into(), vec!["pull", "resolve"].into());
    if !mirror.namespace.is_empty() {
        host.insert("override_path".into(), true.into());
    }
    if let Some(ca) = &mirror.ca_file {
        host.insert("ca".into(), ca.display().to_string().into());
    }
    if mirror.skip_verify && !mirror.is_plain_http() {
        host.insert("skip_verify".into(), true.into());
    }
    let mut doc = toml::Table::new();
    doc.insert("server".into(), source_server(source).into());
    doc.insert(
        "host".into(),
        toml::Table::from_iter([(mirror.containerd_url(), host.into())]).into(),
    );
    // A comment ends at a line break: a `\r` or `\n` in a name would start a TOML line.
    let source_shown = source.escape_debug();
    format!(
        "# Written by ferry: pull {source_shown}'s images from {} first, then from {source_shown}.\n{doc}",
        mirror.location().escape_debug()
    )
}

/// A registries.conf drop-in: one `[[registry]]` per source with its `[[registry.mirror]]`.
pub fn registries_conf(mirrors: &[(String, Mirror)]) -> String {
    let mut out = String::from(
        "# Written by ferry: pull these registries' images from their mirror first.\n",
    );
    for (source, mirror) in mirrors {
        let source = crate::docker_hub::canonical(source);
        let _ = writeln!(out, "\n[[registry]]");
        let _ = writeln!(out, "prefix = {}", quoted(source));
        let _ = writeln!(out, "location = {}", quoted(source));
        let _ = writeln!(out, "\n[[registry.mirror]]");
        let _ = writeln!(out, "location = {}", quoted(&mirror.location()));
        if mirror.skip_verify || mirror.is_plain_http() {
            let _ = writeln!(out, "insecure = true");
        }
    }
    out
}

/// Writes `DIR/<source>/hosts.toml` for every source (containerd's `config_path` layout, also
/// what `ctr images pull --hosts-dir DIR` reads). Returns the files written.
pub fn write_hosts_dir(
    dir: &Path,
    mirrors: &[(String, Mirror)],
) -> Result<Vec<PathBuf>, StoreError> {
    let mut written = Vec::new();
    for (source, mirror) in mirrors {
        // The folder name is a registry name from a validated reference: host[:port] only.
        // The host folder and the temp folder in it must be real folders: a link planted
        // there would carry the file (and the temp file) somewhere else.
        let name = crate::docker_hub::canonical(source);
        let host = InsideDir::create(dir, &[name], 0o755)?;
        let tmp = InsideDir::create(dir, &[name, ".ferry-tmp"], 0o755)?;
        crate::fsutil::write_atomic(
            &host.path().join("hosts.toml"),
            hosts_toml(source, mirror).as_bytes(),
            Some(tmp.path()),
        )?;
        let _ = host.remove_dir(std::ffi::OsStr::new(".ferry-tmp"));
        written.push(host.path().join("hosts.toml"));
    }
    Ok(written)
}

/// Writes a registries.conf drop-in at `path`.
pub fn write_registries_conf(path: &Path, mirrors: &[(String, Mirror)]) -> Result<(), StoreError> {
    let dir = crate::fsutil::folder_of(path);
    let tmp = InsideDir::create(dir, &[".ferry-tmp"], 0o755)?;
    crate::fsutil::write_atomic(path, registries_conf(mirrors).as_bytes(), Some(tmp.path()))?;
    let _ = std::fs::remove_dir(tmp.path());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(origin: &str, namespace: &str) -> Mirror {
        Mirror {
            origin: origin.into(),
            namespace: namespace.into(),
            ca_file: None,
            skip_verify: false,
        }
    }

    #[test]
    fn hosts_toml_with_prefix_overrides_the_path() {
        let mut m = mirror("https://reg.corp:5000", "airgap");
        m.ca_file = Some("/etc/ferry/ca.crt".into());
        let text = hosts_toml("docker.io", &m);
        let v: toml::Table = text.parse().unwrap();
        assert_eq!(v["server"].as_str(), Some("https://registry-1.docker.io"));
        let host = &v["host"]["https://reg.corp:5000/v2/airgap"];
        assert_eq!(host["override_path"].as_bool(), Some(true));
        assert_eq!(host["ca"].as_str(), Some("/etc/ferry/ca.crt"));
        assert_eq!(host["capabilities"].as_array().unwrap().len(), 2);
        assert!(host.get("skip_verify").is_none());
    }

    #[test]
    fn hosts_toml_plain_http_at_the_root() {
        let text = hosts_toml("127.0.0.1:5000", &mirror("http://127.0.0.1:5050", ""));
        let v: toml::Table = text.parse().unwrap();
        assert_eq!(v["server"].as_str(), Some("http://127.0.0.1:5000"));
        let host = &v["host"]["http://127.0.0.1:5050"];
        assert!(host.get("override_path").is_none());
    }

    #[test]
    fn hosts_toml_comment_cannot_start_a_line() {
        // Found by tests/parsers: a line break in the namespace ended the comment.
        let text = hosts_toml("a\nserver = 1", &mirror("https://m", "\r[x]"));
        let v: toml::Table = text.parse().unwrap();
        assert_eq!(v.len(), 2, "{text}");
        assert_eq!(v["server"].as_str(), Some("https://a\nserver = 1"));
        assert!(v["host"].get("https://m/v2/\r[x]").is_some(), "{text}");
    }

    #[test]
    fn registries_conf_parses_and_marks_http_insecure() {
        let text = registries_conf(&[
            (
                "docker.io".into(),
                mirror("http://127.0.0.1:5050", "docker.io"),
            ),
            ("quay.io".into(), mirror("https://reg.corp", "")),
        ]);
        let v: toml::Table = text.parse().unwrap();
        let regs = v["registry"].as_array().unwrap();
        assert_eq!(regs.len(), 2);
        assert_eq!(regs[0]["prefix"].as_str(), Some("docker.io"));
        let m0 = &regs[0]["mirror"].as_array().unwrap()[0];
        assert_eq!(m0["location"].as_str(), Some("127.0.0.1:5050/docker.io"));
        assert_eq!(m0["insecure"].as_bool(), Some(true));
        let m1 = &regs[1]["mirror"].as_array().unwrap()[0];
        assert_eq!(m1["location"].as_str(), Some("reg.corp"));
        assert!(m1.get("insecure").is_none());
    }

    #[test]
    fn writes_one_folder_per_source() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_hosts_dir(
            dir.path(),
            &[(
                "registry-1.docker.io".into(),
                mirror("http://127.0.0.1:1", ""),
            )],
        )
        .unwrap();
        assert_eq!(files, [dir.path().join("docker.io/hosts.toml")]);
        assert!(files[0].is_file());
        assert!(!dir.path().join("docker.io/.ferry-tmp").exists());
    }
}
