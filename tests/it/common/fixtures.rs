//! Fixtures made once per test run and shared by every test of the binary: the run's own
//! scratch folder, registry storage folders seeded once (each test's registry starts on a copy
//! of one, `registry.sh start --data-from`), and openssl TLS material.
//!
//! Seeding a registry with skopeo costs seconds; copying its storage folder costs milliseconds,
//! and each test still gets its own registry process and its own storage to change at will.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use super::{Registry, require, root, run};

/// This run's scratch folder (fixtures, the isolated home). Folders of earlier runs whose
/// process is gone are removed first, since a static is never dropped.
pub fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::temp_dir();
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = name
                .strip_prefix("ferry-it-")
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if stale {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = base.join(format!("ferry-it-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// A value made once per run under `key`: callers of one key wait for the first to finish it,
/// different keys are made in parallel.
fn once_per_run(key: &str, make: impl FnOnce(&Path)) -> PathBuf {
    static MADE: Mutex<BTreeMap<String, Arc<OnceLock<PathBuf>>>> = Mutex::new(BTreeMap::new());
    let cell = lock(&MADE).entry(key.to_owned()).or_default().clone();
    cell.get_or_init(|| {
        let dest = run_dir().join(key);
        let _ = std::fs::remove_dir_all(&dest); // a panicked earlier attempt
        std::fs::create_dir_all(&dest).unwrap();
        make(&dest);
        dest
    })
    .clone()
}

/// A fixture shared by the tests that use it at the same time, made again when none is alive:
/// unlike a static it is dropped (its registry stopped, its folders removed) when the last of
/// them ends. Callers wait while the first makes it.
pub fn shared_while_used<T>(now: &Mutex<Weak<T>>, make: impl FnOnce() -> T) -> Arc<T> {
    let mut slot = lock(now);
    if let Some(alive) = slot.upgrade() {
        return alive;
    }
    let made = Arc::new(make());
    *slot = Arc::downgrade(&made);
    made
}

/// A registry storage folder seeded once per run by `seed` (run against a fresh registry),
/// to start registries on with [`Registry::start_on_copy`].
pub fn seeded_storage(key: &str, seed: impl FnOnce(&Registry)) -> PathBuf {
    once_per_run(&format!("storage-{key}"), |dest| {
        let reg = Registry::start();
        seed(&reg);
        reg.stop();
        run(Command::new("cp")
            .arg("-a")
            .arg(reg.storage().join("."))
            .arg(dest));
    })
}

/// A layout made by make_fixtures.py with `args` and `env`, once per run.
pub fn fixture_layout(key: &str, args: &[&str], env: &[(&str, &str)]) -> PathBuf {
    once_per_run(&format!("layout-{key}"), |dest| {
        require("python3", "python3");
        require("zstd", "zstd");
        let mut cmd = Command::new("python3");
        cmd.arg(root().join("testdata/make_fixtures.py"))
            .arg(dest)
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd);
    })
}

/// A CA, a server certificate for 127.0.0.1 and localhost and a client certificate, made with
/// openssl once per run (see `Tls::new`, which hands each test a copy).
pub fn tls_material() -> PathBuf {
    once_per_run("tls", |dir| {
        require("openssl", "openssl");
        let sh = |script: &str| run(Command::new("sh").arg("-c").arg(script).current_dir(dir));
        sh(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ferry-test-ca -keyout ca.key -out ca.crt 2>/dev/null",
        );
        for (name, subj, ext) in [
            (
                "server",
                "/CN=127.0.0.1",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ),
            ("client", "/CN=ferry-client", "extendedKeyUsage=clientAuth"),
        ] {
            sh(&format!(
                "openssl req -newkey rsa:2048 -nodes -subj {subj} -keyout {name}.key -out {name}.csr 2>/dev/null && \
                 printf '%s\\n' '{ext}' > {name}.ext && \
                 openssl x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile {name}.ext -out {name}.crt 2>/dev/null"
            ));
        }
    })
}

/// Held by a test that changes machine-wide state other tests can see (a k3s or RKE2 socket
/// or ctr under /run or /var/lib), and by the tests that look at it: one at a time.
pub fn machine_wide() -> MutexGuard<'static, ()> {
    static MACHINE: Mutex<()> = Mutex::new(());
    lock(&MACHINE)
}

/// A lock that a panicked holder (a failed test) does not poison for the others.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
