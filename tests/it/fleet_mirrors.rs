//! #22: an ordered list of mirrors in front of `ferry serve` (a P2P engine's node-local
//! endpoint, a Harbor proxy-cache): `--prefer-mirror` writes them into hosts.toml and
//! registries.conf in the order given, and containerd and skopeo honour that order: with the
//! first mirror down, the next one serves, and ferry serve (last) is not asked.

use crate::common;
use crate::served;

use std::process::Command;

use common::*;
use served::*;

/// A loopback address nothing listens on.
fn closed_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[test]
fn with_the_first_mirror_down_the_next_one_serves_containerd_and_skopeo() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let tags = ["sample/hello:1.0", "sample/multi:1.0"];
    let b = bundle(&reg, &dir.path().join("b"), &tags, &[]);
    let names: Vec<String> = tags.iter().map(|t| reg.image(t)).collect();
    let digests: Vec<String> = tags.iter().map(|t| reg.digest(t)).collect();
    let source = reg.addr.clone();
    drop(reg);
    // The second mirror: another server of the same images, whose log shows what it served.
    let second = Served::start(&b, &[]);
    let down = closed_addr();
    let hosts = dir.path().join("certs.d");
    let conf = dir.path().join("ferry.conf");
    let last = Served::start(
        &b,
        &[
            "--hosts-dir",
            hosts.to_str().unwrap(),
            "--registries-conf",
            conf.to_str().unwrap(),
            "--containerd-config",
            dir.path().join("absent.toml").to_str().unwrap(),
            "--prefer-mirror",
            &format!("http://{down}"),
            "--prefer-mirror",
            &format!("http://{}", second.addr),
        ],
    );
    // Both files list the mirrors in the order given, ferry serve last.
    let hosts_toml = std::fs::read_to_string(hosts.join(&source).join("hosts.toml")).unwrap();
    let registries = std::fs::read_to_string(&conf).unwrap();
    for (file, text) in [
        ("hosts.toml", &hosts_toml),
        ("registries.conf", &registries),
    ] {
        let at = |addr: &str| {
            text.find(&format!("\"{addr}"))
                .or_else(|| text.find(&format!("\"http://{addr}")))
                .unwrap_or_else(|| panic!("{addr} not in {file}:\n{text}"))
        };
        assert!(
            at(&down) < at(&second.addr) && at(&second.addr) < at(&last.addr),
            "{file}:\n{text}"
        );
    }

    let node = Containerd::start();
    for name in &names {
        node.ctr(&[
            "images",
            "pull",
            "--hosts-dir",
            hosts.to_str().unwrap(),
            name,
        ]);
    }
    let listed = containerd_images(&node);
    for (name, digest) in names.iter().zip(&digests) {
        assert!(
            listed.iter().any(|(n, d, _)| n == name && d == digest),
            "{name} {digest}: {listed:?}"
        );
    }
    let served_manifest = |log: &str| log.contains("/v2/sample/hello/manifests/1.0 200");
    assert!(served_manifest(&second.log()), "{}", second.log());
    // The CRI-O path: skopeo with the drop-in, same order.
    let raw = run(Command::new("skopeo")
        .arg("--registries-conf")
        .arg(&conf)
        .args(["inspect", "--raw", &format!("docker://{}", names[0])]));
    assert_eq!(sha256(&raw.stdout), digests[0]);
    assert!(
        !last.log().contains("/manifests/"),
        "ferry serve, last in the list, was not asked:\n{}",
        last.log()
    );
}

/// restore.sh --mirror in the background on `addr`, with the bundle's env; (success, stderr).
fn restore_mirror(b: &std::path::Path, addr: &str, env: &[(&str, &str)]) -> (bool, String) {
    let state = b.parent().unwrap().join("state");
    let out = Command::new(b.join("restore.sh"))
        .arg("--mirror")
        .env("FERRY_BIN", env!("CARGO_BIN_EXE_ferry"))
        .env("FERRY_MIRROR_ADDR", addr)
        .env("FERRY_SERVICE", "background")
        .env("FERRY_STATE_DIR", &state)
        .env(
            "FERRY_REGISTRIES_CONF",
            b.parent().unwrap().join("ferry.conf"),
        )
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Stops the server whose pid file restore.sh wrote, however the test ends.
struct StopServer(std::path::PathBuf);

impl Drop for StopServer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0)
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

#[test]
fn restore_sh_mirror_says_config_path_is_missing_refuses_a_held_port_and_orders_mirrors() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&reg, &dir.path().join("b"), &["sample/hello:1.0"], &[]);
    let other = bundle(
        &reg,
        &dir.path().join("other/b"),
        &["sample/world:1.0"],
        &[],
    );
    let source = reg.addr.clone();
    let hosts = dir.path().join("certs.d");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"\"\n",
    )
    .unwrap();
    let env = [
        ("FERRY_HOSTS_DIR", hosts.to_str().unwrap()),
        ("FERRY_CONTAINERD_CONFIG", config.to_str().unwrap()),
        (
            "FERRY_PREFER_MIRRORS",
            "http://127.0.0.1:30020  https://harbor.example/proxy",
        ),
    ];

    // Held by a registry that is not ferry serve: refused, nothing started.
    let (ok, log) = restore_mirror(&b, &reg.addr, &env);
    assert!(!ok, "{log}");
    assert!(log.contains("not ferry serve"), "{log}");
    assert!(!dir.path().join("state/serve.pid").exists());
    // Held by a ferry serve of another bundle: refused too.
    let foreign = Served::start(&other, &[]);
    let (ok, log) = restore_mirror(&b, &foreign.addr, &env);
    assert!(!ok, "{log}");
    assert!(log.contains("another bundle"), "{log}");
    drop(foreign);

    let port = closed_port();
    let addr = format!("127.0.0.1:{port}");
    let _server = StopServer(dir.path().join("state/serve.pid"));
    let (ok, log) = restore_mirror(&b, &addr, &env);
    assert!(ok, "{log}");
    // containerd's missing config_path, on restore.sh's own stderr, with the fix.
    assert!(log.contains("sets no registry config_path"), "{log}");
    assert!(
        log.contains(&format!("config_path = \"{}\"", hosts.display())),
        "{log}"
    );
    // The preferred mirrors first, in order, then this server.
    let toml = std::fs::read_to_string(hosts.join(&source).join("hosts.toml")).unwrap();
    let spegel = toml.find("\"http://127.0.0.1:30020\"").expect(&toml);
    let harbor = toml
        .find("\"https://harbor.example/v2/proxy\"")
        .expect(&toml);
    let ferry = toml.find(&format!("\"http://{addr}\"")).expect(&toml);
    assert!(spegel < harbor && harbor < ferry, "{toml}");
    // Again: the running server of this bundle is kept.
    let (ok, log) = restore_mirror(&b, &addr, &env);
    assert!(ok, "{log}");
    assert!(log.contains("already answers"), "{log}");
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
