//! Node configuration for a local `ferry serve`: containerd hosts.toml files and a CRI-O/podman
//! registries.conf drop-in pointing every source registry of the bundle at the server (after
//! any preferred mirrors, in order), a check that containerd's CRI will read the hosts.toml
//! files at all, and who holds the address the server is to listen on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::digest::Digest;
use crate::node::mirror_config::{self, Mirror};
use crate::store::StoreError;

/// The origin nodes reach the server at: an unspecified bind address (0.0.0.0, ::) is reached
/// on loopback.
pub fn origin(addr: SocketAddr, tls: bool) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{ip}:{}", addr.port())
}

fn mirror(origin: &str, namespace: String, ca: Option<&Path>) -> Mirror {
    Mirror {
        origin: origin.to_owned(),
        namespace,
        ca_file: ca.map(Path::to_path_buf),
        skip_verify: false,
    }
}

/// Writes `DIR/<registry>/hosts.toml` for every source registry: the `front` mirrors in order,
/// then the server (containerd adds `?ns=<registry>` to its requests), then the registry
/// itself.
pub fn write_hosts_dir(
    dir: &Path,
    registries: &[String],
    origin: &str,
    ca: Option<&Path>,
    front: &[Mirror],
) -> Result<Vec<PathBuf>, StoreError> {
    let mirrors: Vec<(String, Mirror)> = registries
        .iter()
        .map(|r| (r.clone(), mirror(origin, String::new(), ca)))
        .collect();
    mirror_config::write_hosts_dir(dir, &mirror_config::in_order(front, mirrors))
}

/// Writes a registries.conf drop-in: each source registry mirrored by the `front` mirrors in
/// order, then at `HOST:PORT/<registry>` (c/image sends no `ns` parameter, so the source is in
/// the path; a port is written `_PORT`, see [`super::host_component`]).
pub fn write_registries_conf(
    path: &Path,
    registries: &[String],
    origin: &str,
    front: &[Mirror],
) -> Result<(), StoreError> {
    let mirrors: Vec<(String, Mirror)> = registries
        .iter()
        .map(|r| (r.clone(), mirror(origin, super::host_component(r), None)))
        .collect();
    mirror_config::write_registries_conf(path, &mirror_config::in_order(front, mirrors))
}

/// Who holds the address a server is to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nobody: it can be bound.
    Free,
    /// A `ferry serve` of the bundle whose ferry.lock has this digest (its `/v2/` says so in
    /// `Ferry-Bundle`).
    ThisBundle,
    /// Something else: what it is, as far as can be told.
    Other(String),
}

/// Tells who holds `addr`: free when it can be bound; else what answers `GET /v2/` there (over
/// plain HTTP, for at most 3 s), a `ferry serve` of the bundle whose lock digest is `lock`
/// being the one holder a node may keep.
pub fn who_holds(addr: SocketAddr, lock: &Digest) -> Holder {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => return Holder::Free,
        Err(e) if e.kind() != std::io::ErrorKind::AddrInUse => {
            return Holder::Other(format!("cannot listen there: {e}"));
        }
        Err(_) => {}
    }
    match ferry_bundle_header(addr) {
        Err(e) => Holder::Other(format!("something that does not answer plain HTTP ({e})")),
        Ok(None) => {
            Holder::Other("a server that is not ferry serve (no Ferry-Bundle on /v2/)".into())
        }
        Ok(Some(v)) if v == lock.to_string() => Holder::ThisBundle,
        Ok(Some(v)) => Holder::Other(format!(
            "ferry serve of another bundle (its ferry.lock is {})",
            crate::untrusted::printable(&v)
        )),
    }
}

/// The `Ferry-Bundle` header of `GET /v2/` at `addr`. Written by hand over a plain socket: one
/// request line and a header search, where an HTTP client would bring TLS, pools and retries
/// that a local probe has no use for.
fn ferry_bundle_header(addr: SocketAddr) -> std::io::Result<Option<String>> {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let limit = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&SocketAddr::new(ip, addr.port()), limit)?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    write!(
        stream,
        "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        SocketAddr::new(ip, addr.port())
    )?;
    // The response head only, and at most 16 KiB of it.
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    if !text.starts_with("HTTP/1.") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no HTTP response",
        ));
    }
    Ok(text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("ferry-bundle")
            .then(|| value.trim().to_owned())
    }))
}

/// Where containerd's CRI plugin reads hosts.toml files from, per its config file: `Ok(None)`
/// when the file sets no `config_path` (so hosts.toml files are ignored by kubelet's pulls).
fn cri_config_path(config: &Path) -> Result<Option<String>, String> {
    let text = std::fs::read_to_string(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let value: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: not TOML: {e}", config.display()))?;
    // containerd 1.x (config version 2) and 2.x (version 3) keep it in different plugins.
    let paths = [
        [
            "plugins",
            "io.containerd.grpc.v1.cri",
            "registry",
            "config_path",
        ],
        [
            "plugins",
            "io.containerd.cri.v1.images",
            "registry",
            "config_path",
        ],
    ];
    for keys in paths {
        let mut at = value.get(keys[0]);
        for k in &keys[1..] {
            at = at.and_then(|v| v.get(*k));
        }
        if let Some(p) = at.and_then(|v| v.as_str()).filter(|p| !p.is_empty()) {
            return Ok(Some(p.to_owned()));
        }
    }
    Ok(None)
}

/// A warning (and what to do about it) when containerd's CRI will not read `hosts_dir`; none
/// when it will.
pub fn containerd_warning(config: &Path, hosts_dir: &Path) -> Option<(String, Option<String>)> {
    let set_it = |extra: &str| {
        format!(
            "set [plugins.\"io.containerd.grpc.v1.cri\".registry] config_path = \"{}\" and \
             restart containerd{extra}",
            hosts_dir.display()
        )
    };
    match cri_config_path(config) {
        Err(e) if !config.exists() => Some((
            e,
            Some(format!(
                "without a config file containerd 1.x's CRI sets no registry config_path and \
                 ignores hosts.toml files (containerd 2.x reads /etc/containerd/certs.d); {}",
                set_it("")
            )),
        )),
        Err(e) => Some((format!("cannot check containerd's config: {e}"), None)),
        Ok(None) => Some((
            format!(
                "{} sets no registry config_path for the CRI plugin: kubelet's pulls will ignore \
                 the hosts.toml files written in {}",
                config.display(),
                hosts_dir.display(),
            ),
            Some(set_it(" (ctr --hosts-dir reads them regardless)")),
        )),
        Ok(Some(p)) if !p.split(':').any(|d| Path::new(d) == hosts_dir) => Some((
            format!(
                "containerd's CRI reads hosts.toml files from {p} (per {}), not from {}",
                config.display(),
                hosts_dir.display(),
            ),
            Some(format!(
                "use --hosts-dir {}",
                p.split(':').next().unwrap_or(&p)
            )),
        )),
        Ok(Some(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin("0.0.0.0:5050".parse().unwrap(), false),
            "http://127.0.0.1:5050"
        );
        assert_eq!(
            origin("[::]:443".parse().unwrap(), true),
            "https://[::1]:443"
        );
    }

    #[test]
    fn config_path_is_found_or_missing() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.toml");
        std::fs::write(
            &cfg,
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n",
        )
        .unwrap();
        assert_eq!(
            cri_config_path(&cfg).unwrap().as_deref(),
            Some("/etc/containerd/certs.d")
        );
        assert!(containerd_warning(&cfg, Path::new("/etc/containerd/certs.d")).is_none());
        assert!(containerd_warning(&cfg, Path::new("/tmp/x")).is_some());
        std::fs::write(
            &cfg,
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"\"\n",
        )
        .unwrap();
        assert_eq!(cri_config_path(&cfg).unwrap(), None);
        let (w, hint) = containerd_warning(&cfg, Path::new("/etc/containerd/certs.d")).unwrap();
        assert!(w.contains("no registry config_path"), "{w}");
        assert!(hint.unwrap().contains("config_path = "));
        assert!(containerd_warning(&dir.path().join("absent.toml"), Path::new("/x")).is_some());
    }
}
