//! Mirrors with two real registries: the mirror serves, the mirror lacks the image, the mirror
//! is down. The bundle always records the original names.

use crate::common;

use common::*;

/// A loopback address where nothing listens (an unreachable registry).
fn dead_registry() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

fn bundle(args: &[&str]) -> (i32, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let mut all = vec!["bundle", "-o", b.to_str().unwrap()];
    all.extend(args);
    let (code, _, stderr) = ferry_out(&all);
    (code, dir, stderr)
}

#[test]
fn the_mirror_serves_and_the_bundle_keeps_the_source_name() {
    let mirror = Registry::seeded();
    let source = dead_registry();
    let image = format!("{source}/sample/hello:1.0");
    let (code, dir, stderr) = bundle(&["--mirror", &format!("{source}={}", mirror.addr), &image]);
    assert_eq!(code, 0, "{stderr}");
    let b = dir.path().join("b");
    let entry = index_entry(&b, &image).expect("recorded under the source name");
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        image.as_str()
    );
    assert_eq!(
        entry["digest"],
        sha256(&mirror.manifest("sample/hello", "1.0").0)
    );

    // The same through a registries.conf, with a path prefix on the mirror.
    let prefixed = Registry::start();
    skopeo_push(
        &format!("{}/cache", prefixed.addr),
        "sample/hello:1.0",
        None,
        None,
    );
    let conf = dir.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"{source}\"\n[[registry.mirror]]\nlocation = \"{}/cache\"\n",
            prefixed.addr
        ),
    )
    .unwrap();
    let (code, _, stderr) = bundle(&["--registries-conf", conf.to_str().unwrap(), &image]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn the_mirror_lacks_the_image_and_the_source_has_it() {
    let mirror = Registry::start_with(&["--accesslog"]);
    let source = Registry::seeded_with(&["--accesslog"]);
    let image = source.image("sample/multi:1.0");
    let (code, dir, stderr) = bundle(&[
        "--mirror",
        &format!("{}={}", source.addr, mirror.addr),
        &image,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(index_entry(&dir.path().join("b"), &image).is_some());
    // The mirror was asked for the manifest (and had none); the source served it.
    let asked = |reg: &Registry, status: &str| {
        reg.requests_by_others().iter().any(|l| {
            l.contains("/v2/sample/multi/manifests/1.0 HTTP/")
                && l.contains(&format!("\" {status} "))
        })
    };
    assert!(asked(&mirror, "404"), "{}", mirror.log());
    assert!(asked(&source, "200"), "{}", source.log());
}

#[test]
fn a_mirror_that_is_down_is_passed_over_quickly() {
    let source = Registry::seeded();
    let image = source.image("sample/hello:1.0");
    let dead = dead_registry();
    let (code, _, stderr) = bundle(&["-v", "--mirror", &format!("{}={dead}", source.addr), &image]);
    assert_eq!(code, 0, "{stderr}");
    // Passed over quickly: a refused connection to a mirror is retried once at most (the
    // source is asked instead), not through the whole retry budget with its backoff. It was
    // tried, though (nothing listens there to witness it: ferry's request log says so).
    assert!(
        stderr.contains(&format!("GET http://{dead}/v2/")),
        "{stderr}"
    );
    let retries = stderr
        .lines()
        .filter(|l| l.starts_with("retry:") && l.contains(&dead))
        .count();
    assert!(retries <= 1, "{stderr}");

    // Both down: the source's error, naming the mirror that was tried first.
    let source = dead_registry();
    let mirror = dead_registry();
    let (code, _, stderr) = bundle(&[
        "--retries",
        "0",
        "--mirror",
        &format!("{source}={mirror}"),
        &format!("{source}/app:1"),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("cannot reach {source}"))
            && stderr.contains(&format!("after mirror {mirror}")),
        "{stderr}"
    );
}
