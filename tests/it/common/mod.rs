//! Test harness: real components (docker-registry, skopeo) started by the project's scripts,
//! fixtures made by testdata/make_fixtures.py (not by ferry), and the ferry binary.
//! A missing component fails the test with the command that installs it; nothing is skipped.

#![allow(dead_code)]

pub mod access;
pub mod auth;
mod containerd;
pub mod fake;
mod fixtures;
mod kube;
mod silent;
pub mod snapshots;
pub use access::{Tls, credential_helper, docker_config, htpasswd, skopeo_push};
pub use containerd::{Containerd, assert_pinned, containerd_images, containerd_images_in};
#[allow(unused_imports)]
pub use faultproxy as proxy;
pub use fixtures::{machine_wide, run_dir, shared_while_used};
#[allow(unused_imports)] // only the cluster tests use it
pub use kube::FakeKubeApi;
pub use silent::{Reaped, Silent};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails loudly when a component is missing.
pub fn require(command: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{command} is not installed. Install it with `apt-get install -y {package}`, \
         or run scripts/test.sh, which installs every test dependency."
    );
}

/// The full path of an installed command (see [`require`]).
pub fn which(command: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{command} is not installed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The sample images as an OCI layout, built once per test run.
pub fn sample_layout() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| fixtures::fixture_layout("sample", &[], &[]))
}

/// A copy of the sample layout (made by make_fixtures.py, not by ferry) in `dir/name`, its
/// short names (`sample/hello:1.0`) made full (`registry.example/sample/hello:1.0`), as a
/// bundle has them: a bundle to damage at will without a registry.
pub fn sample_bundle(dir: &Path, name: &str) -> PathBuf {
    let b = dir.join(name);
    run(Command::new("cp").arg("-a").arg(sample_layout()).arg(&b));
    let mut index = index_json(&b);
    for m in index["manifests"].as_array_mut().unwrap() {
        let short = m["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap()
            .to_owned();
        m["annotations"]["org.opencontainers.image.ref.name"] =
            format!("registry.example/{short}").into();
    }
    std::fs::write(b.join("index.json"), index.to_string()).unwrap();
    b
}

/// What the fixture script says it built: tag -> description.
pub fn fixture_tags() -> BTreeMap<String, serde_json::Value> {
    let text = std::fs::read_to_string(sample_layout().join("fixtures.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A throwaway docker-registry on loopback, stopped on drop.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    state: tempfile::TempDir,
}

impl Registry {
    /// Copies image `from` to `to` within this registry with skopeo (not ferry), with `extra`
    /// copy options: a second name for an image, or a platform picked out of an index.
    pub fn copy_within(&self, from: &str, to: &str, extra: &[&str]) {
        run(Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ])
            .args(extra)
            .arg(format!("docker://{}", self.image(from)))
            .arg(format!("docker://{}", self.image(to))));
    }

    /// Copies image `from` of this registry to `to` in registry `into`, with skopeo (not ferry).
    pub fn copy_to(&self, from: &str, into: &Registry, to: &str) {
        run(Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ])
            .arg(format!("docker://{}", self.image(from)))
            .arg(format!("docker://{}", into.image(to))));
    }

    /// Starts an empty registry.
    pub fn start() -> Registry {
        Registry::start_with(&[])
    }

    /// Starts an empty registry with extra options for scripts/registry.sh.
    pub fn start_with(options: &[&str]) -> Registry {
        require("docker-registry", "docker-registry");
        require("curl", "curl");
        let state = tempfile::tempdir().unwrap();
        let out = run(Command::new(root().join("scripts/registry.sh"))
            .arg("start")
            .arg(state.path())
            .args(options));
        let addr = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        Registry { addr, state }
    }

    /// Starts a registry on a copy of `storage` (a folder from `fixtures::seeded_storage`).
    pub fn start_on_copy(storage: &Path, options: &[&str]) -> Registry {
        let mut all = vec!["--data-from", storage.to_str().unwrap()];
        all.extend(options);
        Registry::start_with(&all)
    }

    /// Starts a registry holding the sample images (seeded once per run by
    /// scripts/seed-registry.sh, through skopeo), with extra options for scripts/registry.sh.
    pub fn seeded_with(options: &[&str]) -> Registry {
        let storage = fixtures::seeded_storage("sample", |r| {
            require("skopeo", "skopeo");
            run(Command::new(root().join("scripts/seed-registry.sh"))
                .arg(&r.addr)
                .arg(sample_layout()));
        });
        Registry::start_on_copy(&storage, options)
    }

    /// Starts a registry holding the sample images (see [`Registry::seeded_with`]).
    pub fn seeded() -> Registry {
        Registry::seeded_with(&[])
    }

    /// Its storage folder.
    pub fn storage(&self) -> PathBuf {
        self.state.path().join("data")
    }

    /// Stops the registry process (dropping it does too).
    pub fn stop(&self) {
        let _ = Command::new(root().join("scripts/registry.sh"))
            .arg("stop")
            .arg(self.state.path())
            .output();
    }

    /// What the registry logged (requests, when started with `--accesslog`).
    pub fn log(&self) -> String {
        let path = self.state.path().join("registry.log");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The request lines of the access log (`--accesslog`) other than the readiness probes of
    /// scripts/registry.sh (curl). Panics when the log holds no probe: the access log is off or
    /// unread, and an empty list would prove nothing.
    pub fn requests_by_others(&self) -> Vec<String> {
        let log = self.log();
        assert!(
            log.lines().any(|l| l.contains("curl/")),
            "the registry's access log shows no readiness probe (started without --accesslog?): {log}"
        );
        log.lines()
            .filter(|l| l.contains("HTTP/") && !l.contains("curl/"))
            .map(str::to_owned)
            .collect()
    }

    /// `addr/repo:tag`.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }

    /// sha256sum of the manifest bytes the registry serves for `tag` (`repo:reference`): an
    /// image's digest by the registry's word, not ferry's.
    pub fn digest(&self, tag: &str) -> String {
        let (repo, reference) = tag.rsplit_once(':').unwrap();
        sha256(&self.manifest(repo, reference).0)
    }

    /// Every blob (manifests included) an image needs for `platform` (`os/arch[/variant]`),
    /// digest -> size, by walking what the registry serves for `tag` (`repo:reference`): the
    /// blob set a bundle of it must hold, known without ferry. Attestations are left out.
    pub fn blobs_of(&self, tag: &str, platform: &str) -> BTreeMap<String, u64> {
        let (repo, reference) = tag.rsplit_once(':').unwrap();
        let mut out = BTreeMap::new();
        let mut todo = vec![reference.to_owned()];
        while let Some(r) = todo.pop() {
            let (bytes, _) = self.manifest(repo, &r);
            out.insert(sha256(&bytes), bytes.len() as u64);
            let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            for child in doc["manifests"].as_array().into_iter().flatten() {
                let field = |k: &str| child["platform"][k].as_str().unwrap_or("").to_owned();
                let short = format!("{}/{}", field("os"), field("architecture"));
                let full = format!("{short}/{}", field("variant"));
                if platform == short || platform == full {
                    todo.push(child["digest"].as_str().unwrap().to_owned());
                }
            }
            let parts = doc["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(doc.get("config"));
            for d in parts {
                out.insert(
                    d["digest"].as_str().unwrap().to_owned(),
                    d["size"].as_u64().unwrap(),
                );
            }
        }
        out
    }

    /// The manifest bytes and Content-Type the registry serves for `repo` at `reference`.
    pub fn manifest(&self, repo: &str, reference: &str) -> (Vec<u8>, String) {
        let dir = tempfile::tempdir().unwrap();
        let headers = dir.path().join("headers");
        let out = run(Command::new("curl").args([
            "-sf",
            "-D",
            headers.to_str().unwrap(),
            "-H",
            "Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, \
             application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            &format!("http://{}/v2/{repo}/manifests/{reference}", self.addr),
        ]));
        let headers = std::fs::read_to_string(headers).unwrap();
        let content_type = headers
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_default();
        (out.stdout, content_type)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An empty home folder for the process, so that no test reads the machine's own
/// credentials, certs.d or registries.conf.
fn isolated_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let dir = run_dir().join("home");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("registries.conf"), "").unwrap();
        dir
    })
}

/// The ferry binary under test, isolated from the machine's credentials and mirrors, with a
/// short retry backoff.
pub fn ferry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    // Backoff from 10 ms rather than 500 ms: a retry test then waits for what it tests, not
    // for seconds of sleep (a Retry-After is still honoured as the registry gives it).
    c.env("FERRY_RETRY_BASE_MS", "10")
        .env("NO_COLOR", "1")
        .env("HOME", isolated_home())
        .env(
            "CONTAINERS_REGISTRIES_CONF",
            isolated_home().join("registries.conf"),
        )
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("FERRY_AUTHFILE");
    c
}

/// Runs ferry and returns (exit code, stdout, stderr).
pub fn ferry_out(args: &[&str]) -> (i32, String, String) {
    let out = ferry().args(args).output().expect("ferry runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// sha256:<hex> of bytes, computed with the sha256sum tool (independent of ferry's code).
pub fn sha256(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x");
    std::fs::write(&f, bytes).unwrap();
    let out = run(Command::new("sha256sum").arg(&f));
    format!(
        "sha256:{}",
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
    )
}

/// index.json of a bundle.
pub fn index_json(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("index.json")).unwrap()).unwrap()
}

/// The index.json entry named `reference`.
pub fn index_entry(bundle: &Path, reference: &str) -> Option<serde_json::Value> {
    index_json(bundle)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .cloned()
}

/// The references index.json names (`org.opencontainers.image.ref.name`), in its order.
pub fn index_names(bundle: &Path) -> Vec<String> {
    index_json(bundle)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Path of a blob in a bundle.
pub fn blob_path(bundle: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    bundle.join("blobs").join(alg).join(hex)
}

/// Files under blobs/ and their total size.
pub fn blob_files(bundle: &Path) -> (usize, u64) {
    let mut n = 0;
    let mut bytes = 0;
    for alg in std::fs::read_dir(bundle.join("blobs")).unwrap() {
        for f in std::fs::read_dir(alg.unwrap().path()).unwrap() {
            n += 1;
            bytes += f.unwrap().metadata().unwrap().len();
        }
    }
    (n, bytes)
}

/// A registry seeded with one large image (random layers, made by make_fixtures.py --bench):
/// `mib` MiB in two layers plus a small shared base. Returns the registry and the image name.
pub fn big_image_registry(mib: u32) -> (Registry, String) {
    (bench_image_registry(mib, 1), "bench/app00:1.0".to_owned())
}

/// A registry seeded with `bench/app00:1.0` (make_fixtures.py --bench 1): a base layer of
/// `shared_mib` MiB and two layers making `mib_per_image` MiB, all random; seeded once per
/// run, each caller's registry on a copy.
pub fn bench_image_registry(mib_per_image: u32, shared_mib: u32) -> Registry {
    let name = format!("big-{mib_per_image}-{shared_mib}");
    let storage = fixtures::seeded_storage(&name, |r| {
        require("skopeo", "skopeo");
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("big");
        run(Command::new("python3")
            .arg(root().join("testdata/make_fixtures.py"))
            .arg(&layout)
            .args(["--bench", "1"])
            .env("FERRY_BENCH_MIB_PER_IMAGE", mib_per_image.to_string())
            .env("FERRY_BENCH_SHARED_MIB", shared_mib.to_string()));
        run(Command::new(root().join("scripts/seed-registry.sh"))
            .arg(&r.addr)
            .arg(&layout));
    });
    Registry::start_on_copy(&storage, &[])
}

/// Size of the largest file under `.ferry/partial` of a bundle (0 when none).
pub fn partial_bytes(bundle: &Path) -> u64 {
    std::fs::read_dir(bundle.join(".ferry/partial"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Waits until `cond` holds, polling; panics after `secs`.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed().as_secs() < secs,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A non-loopback IPv4 address of this machine (to test what loopback alone is allowed).
pub fn non_loopback_ip() -> String {
    let out = run(Command::new("hostname").arg("-I"));
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
        .unwrap_or_else(|| panic!("this test needs a non-loopback IPv4 address on the machine (hostname -I shows none)"))
        .to_owned()
}

/// A folder `dir/bin` of links to every command of the usual PATH folders but `left_out`: a
/// PATH for a node without those commands.
pub fn path_without(dir: &Path, left_out: &[&str]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    for folder in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        for e in std::fs::read_dir(folder).into_iter().flatten().flatten() {
            let name = e.file_name();
            let left = left_out.iter().any(|l| name == *l);
            if !left && !bin.join(&name).exists() {
                let _ = std::os::unix::fs::symlink(e.path(), bin.join(&name));
            }
        }
    }
    bin
}

/// PATH with `dir` first.
pub fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs ferry with extra environment; returns (exit code, stdout, stderr).
pub fn ferry_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = ferry();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of a folder, as `cp -a` makes it (a bundle to damage, or to apply onto).
pub fn copy_dir(from: &Path, to: &Path) {
    run(Command::new("cp").arg("-a").arg(from).arg(to));
}

/// `ferry bundle` of `tags` from `reg` into DIR/bundle with `extra` flags; asserts success.
pub fn bundle_tags(reg: &Registry, dir: &Path, tags: &[&str], extra: &[&str]) -> PathBuf {
    let b = dir.join("bundle");
    let refs: Vec<String> = tags.iter().map(|t| reg.image(t)).collect();
    let mut args = vec!["bundle", "-o", b.to_str().unwrap()];
    args.extend(extra);
    args.extend(refs.iter().map(String::as_str));
    let (code, _, stderr) = ferry_out(&args);
    assert_eq!(code, 0, "{stderr}");
    b
}

/// The image list of a restore.sh: the lines of its quoted here-document, whatever its
/// delimiter.
pub fn script_images(script: &str) -> Vec<String> {
    let start = script
        .find("cat <<'")
        .expect("restore.sh lists its images in a quoted here-document");
    let rest = &script[start + "cat <<'".len()..];
    let (delimiter, rest) = rest.split_once("'\n").unwrap();
    let end = rest
        .lines()
        .position(|l| l == delimiter)
        .expect("the here-document ends");
    rest.lines().take(end).map(str::to_owned).collect()
}

/// Pushes testdata/push_artifacts.py's Helm chart (`charts/mychart:0.1.0`) and oras-style file
/// (`files/model:v1`) into `reg` (python, not ferry); the chart .tgz and the file land in
/// `out`. Returns its fixtures.json: per artifact the manifest, config and layer digests.
pub fn push_artifacts(reg: &Registry, out: &Path) -> serde_json::Value {
    run(Command::new("python3")
        .arg(root().join("testdata/push_artifacts.py"))
        .arg(&reg.addr)
        .arg(out));
    serde_json::from_slice(&std::fs::read(out.join("fixtures.json")).unwrap()).unwrap()
}
