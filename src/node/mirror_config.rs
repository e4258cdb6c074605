//! containerd `hosts.toml` and containers-registries.conf(5) drop-ins that send pulls of a
//! source registry's images to mirrors first, in order, falling back to the source itself.
//! The order is what puts a P2P engine (Spegel's node-local registry, a Dragonfly dfdaemon
//! proxy) or a pull-through cache (Harbor) in front of `ferry serve` or a pushed registry.
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

/// A mirror named by URL, as `--prefer-mirror` takes it: `http[s]://HOST[:PORT][/PREFIX]`
/// (`https://` when no scheme is given). PREFIX, when given, is the repository path its
/// repositories live under (containerd's `override_path`), such as a Harbor proxy-cache
/// project. Credentials, queries and fragments are refused: they would be written into node
/// files.
pub fn parse_mirror(text: &str) -> Result<Mirror, String> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("https://{text}")
    };
    let bad = |why: &str| format!("mirror {text:?}: {why}");
    let url = url::Url::parse(&with_scheme).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "no credentials in a mirror URL (they would be written into node files)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query string or fragment"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    let path = url.path().trim_matches('/');
    // The API root may be written out: `/v2/PREFIX` is `PREFIX`.
    let prefix = path
        .strip_prefix("v2")
        .filter(|p| p.is_empty() || p.starts_with('/'));
    let prefix = prefix.unwrap_or(path).trim_matches('/');
    if !prefix.is_empty() {
        // The OCI repository grammar, checked by the reference parser.
        let probe = format!("localhost/{prefix}/x:1");
        if probe.parse::<crate::reference::ImageRef>().is_err() || prefix.contains(['@', ':']) {
            return Err(bad(
                "the path must be a lowercase repository prefix (a-z, 0-9, '.', '_', '-' between '/')",
            ));
        }
    }
    Ok(Mirror {
        origin: url.origin().ascii_serialization(),
        namespace: prefix.to_owned(),
        ca_file: None,
        skip_verify: false,
    })
}

/// Every source's mirrors in the order they are tried: `front` (the preferred mirrors, in
/// the order given) before each source's own.
pub fn in_order(front: &[Mirror], routes: Vec<(String, Mirror)>) -> Vec<(String, Vec<Mirror>)> {
    routes
        .into_iter()
        .map(|(source, own)| {
            let mut all = front.to_vec();
            all.push(own);
            (source, all)
        })
        .collect()
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

/// One `[host."URL"]` table of hosts.toml.
fn host_table(mirror: &Mirror) -> toml::Table {
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
    host
}

/// The `hosts.toml` for `source`: the mirrors for pull and resolve, tried in the order given
/// (containerd keeps the file's order), then the source itself. Each table is serialized by
/// the toml crate on its own (a key, the mirror's URL, needs other quoting than a value, and a
/// `\n` in one would otherwise become a multi-line string, which no key may be), and written
/// in order: a TOML table as a whole is sorted by key, which would lose the order.
pub fn hosts_toml(source: &str, mirrors: &[Mirror]) -> String {
    let mut doc = toml::Table::new();
    doc.insert("server".into(), source_server(source).into());
    // A comment ends at a line break: a `\r` or `\n` in a name would start a TOML line.
    let source_shown = source.escape_debug();
    let order: Vec<String> = mirrors
        .iter()
        .map(|m| m.location().escape_debug().to_string())
        .collect();
    let mut out = format!(
        "# Written by ferry: pull {source_shown}'s images from {} (in this order), then from {source_shown}.\n{doc}",
        order.join(", ")
    );
    for mirror in mirrors {
        let table = toml::Table::from_iter([(
            "host".to_owned(),
            toml::Value::from(toml::Table::from_iter([(
                mirror.containerd_url(),
                host_table(mirror).into(),
            )])),
        )]);
        out.push('\n');
        out.push_str(&table.to_string());
    }
    out
}

/// A registries.conf drop-in: one `[[registry]]` per source with its `[[registry.mirror]]`
/// entries in the order they are tried.
pub fn registries_conf(routes: &[(String, Vec<Mirror>)]) -> String {
    let mut out = String::from(
        "# Written by ferry: pull these registries' images from their mirrors first, in order.\n",
    );
    for (source, mirrors) in routes {
        let source = crate::docker_hub::canonical(source);
        let _ = writeln!(out, "\n[[registry]]");
        let _ = writeln!(out, "prefix = {}", quoted(source));
        let _ = writeln!(out, "location = {}", quoted(source));
        for mirror in mirrors {
            let _ = writeln!(out, "\n[[registry.mirror]]");
            let _ = writeln!(out, "location = {}", quoted(&mirror.location()));
            if mirror.skip_verify || mirror.is_plain_http() {
                let _ = writeln!(out, "insecure = true");
            }
        }
    }
    out
}

/// Writes `DIR/<source>/hosts.toml` for every source (containerd's `config_path` layout, also
/// what `ctr images pull --hosts-dir DIR` reads). Returns the files written.
pub fn write_hosts_dir(
    dir: &Path,
    routes: &[(String, Vec<Mirror>)],
) -> Result<Vec<PathBuf>, StoreError> {
    let mut written = Vec::new();
    for (source, mirrors) in routes {
        // The folder name is a registry name from a validated reference: host[:port] only.
        let name = crate::docker_hub::canonical(source);
        let toml = hosts_toml(source, mirrors);
        written.push(write_in_host_folder(
            dir,
            name,
            "hosts.toml",
            toml.as_bytes(),
        )?);
    }
    Ok(written)
}

/// Writes the target's CA certificate as `DIR/HOST/ca.crt`, beside the hosts.toml files, so
/// that installing DIR as the nodes' certs.d puts it where hosts.toml says; returns its path.
pub fn write_ca(dir: &Path, host: &str, pem: &[u8]) -> Result<PathBuf, StoreError> {
    write_in_host_folder(dir, host, "ca.crt", pem)
}

/// Writes `DIR/HOST/FILE` atomically. The host folder and the temp folder in it must be real
/// folders: a link planted there would carry the file (and the temp file) somewhere else.
fn write_in_host_folder(
    dir: &Path,
    host: &str,
    file: &str,
    bytes: &[u8],
) -> Result<PathBuf, StoreError> {
    let folder = InsideDir::create(dir, &[host], 0o755)?;
    let tmp = InsideDir::create(dir, &[host, ".ferry-tmp"], 0o755)?;
    let path = folder.path().join(file);
    crate::fsutil::write_atomic(&path, bytes, Some(tmp.path()))?;
    let _ = folder.remove_dir(std::ffi::OsStr::new(".ferry-tmp"));
    Ok(path)
}

/// Writes a registries.conf drop-in at `path`.
pub fn write_registries_conf(
    path: &Path,
    routes: &[(String, Vec<Mirror>)],
) -> Result<(), StoreError> {
    let dir = crate::fsutil::folder_of(path);
    let tmp = InsideDir::create(dir, &[".ferry-tmp"], 0o755)?;
    crate::fsutil::write_atomic(path, registries_conf(routes).as_bytes(), Some(tmp.path()))?;
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
        let text = hosts_toml("docker.io", &[m]);
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
        let text = hosts_toml("127.0.0.1:5000", &[mirror("http://127.0.0.1:5050", "")]);
        let v: toml::Table = text.parse().unwrap();
        assert_eq!(v["server"].as_str(), Some("http://127.0.0.1:5000"));
        let host = &v["host"]["http://127.0.0.1:5050"];
        assert!(host.get("override_path").is_none());
    }

    #[test]
    fn hosts_toml_comment_cannot_start_a_line() {
        // Found by tests/parsers: a line break in the namespace ended the comment.
        let text = hosts_toml("a\nserver = 1", &[mirror("https://m", "\r[x]")]);
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
                vec![mirror("http://127.0.0.1:5050", "docker.io")],
            ),
            ("quay.io".into(), vec![mirror("https://reg.corp", "")]),
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
                vec![mirror("http://127.0.0.1:1", "")],
            )],
        )
        .unwrap();
        assert_eq!(files, [dir.path().join("docker.io/hosts.toml")]);
        assert!(files[0].is_file());
        assert!(!dir.path().join("docker.io/.ferry-tmp").exists());
    }

    #[test]
    fn mirrors_are_written_in_the_order_given() {
        let front = [
            parse_mirror("http://127.0.0.1:30020").unwrap(),
            parse_mirror("https://harbor.corp/v2/ferry-cache").unwrap(),
        ];
        let routes = in_order(
            &front,
            vec![("docker.io".into(), mirror("http://10.0.0.5:5050", ""))],
        );
        let text = hosts_toml("docker.io", &routes[0].1);
        // Order in the file, not in a parsed (sorted) table: what containerd goes by.
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle}: {text}"))
        };
        let (a, b, c) = (
            at("[host.\"http://127.0.0.1:30020\"]"),
            at("[host.\"https://harbor.corp/v2/ferry-cache\"]"),
            at("[host.\"http://10.0.0.5:5050\"]"),
        );
        assert!(a < b && b < c, "{text}");
        let v: toml::Table = text.parse().unwrap();
        assert_eq!(v["host"].as_table().unwrap().len(), 3, "{text}");
        let harbor = &v["host"]["https://harbor.corp/v2/ferry-cache"];
        assert_eq!(harbor["override_path"].as_bool(), Some(true));
        let conf = registries_conf(&routes);
        let v: toml::Table = conf.parse().unwrap();
        let locations: Vec<&str> = v["registry"][0]["mirror"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["location"].as_str().unwrap())
            .collect();
        assert_eq!(
            locations,
            [
                "127.0.0.1:30020",
                "harbor.corp/ferry-cache",
                "10.0.0.5:5050"
            ]
        );
    }

    #[test]
    fn mirror_urls_are_checked() {
        let m = parse_mirror("registry.corp:5000/airgap").unwrap();
        assert_eq!(
            (m.origin.as_str(), m.namespace.as_str()),
            ("https://registry.corp:5000", "airgap")
        );
        let m = parse_mirror("http://[::1]:30020/").unwrap();
        assert_eq!(
            (m.origin.as_str(), m.namespace.as_str()),
            ("http://[::1]:30020", "")
        );
        for bad in [
            "ftp://x",
            "http://user:pw@x",
            "http://x/?a=1",
            "http://x/Upper",
            "http://",
            "http://x/a b",
        ] {
            assert!(parse_mirror(bad).is_err(), "{bad}");
        }
    }
}
