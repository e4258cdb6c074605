//! Image lists from a node's containerd (the real one, started by the project's script), from
//! a cluster (a fake Kubernetes API over HTTPS: kubeconfig and in-cluster service account), and
//! lock files against the real registry.

use crate::common;

use std::process::Command;

use common::*;

#[test]
fn a_golden_nodes_containerd() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    let refs = [reg.image("sample/hello:1.0"), reg.image("sample/multi:1.0")];
    let (code, _, stderr) = ferry_out(&["bundle", "-o", b.to_str().unwrap(), &refs[0], &refs[1]]);
    assert_eq!(code, 0, "{stderr}");
    let node = Containerd::start();
    node.import_bundle(&b);

    let env = [("CONTAINERD_ADDRESS", node.socket.as_str())];
    // `-n` is containerd's namespace, as with ctr.
    let (code, stdout, stderr) = ferry_env(&["images", "--from-containerd", "-n", "k8s.io"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        refs.iter().map(String::as_str).collect::<Vec<_>>()
    );

    // An empty namespace lists nothing; a containerd that is not there says what to check.
    let (code, stdout, _) = ferry_env(
        &["images", "--from-containerd", "--namespace", "default"],
        &env,
    );
    assert_eq!((code, stdout.as_str()), (0, ""));
    let (code, _, stderr) = ferry_env(
        &["images", "--from-containerd"],
        &[("CONTAINERD_ADDRESS", "/nonexistent.sock")],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("is containerd running at /nonexistent.sock?"),
        "{stderr}"
    );
}

const CLUSTER_ALL: &[&str] = &[
    "docker.io/library/alpine:3.20",
    "docker.io/library/busybox:1.36",
    "docker.io/library/nginx:1.27",
    "docker.io/library/postgres:16",
    "ghcr.io/shop/migrate:1.4.2",
    "ghcr.io/shop/report:7",
    "ghcr.io/shop/seed:1",
    "ghcr.io/shop/web:1.4.1",
    "ghcr.io/shop/web:1.4.2",
    "registry.k8s.io/coredns/coredns:v1.11.1",
    "registry.k8s.io/kube-proxy:v1.30.2",
];

const CLUSTER_SHOP: &[&str] = &[
    "docker.io/library/busybox:1.36",
    "docker.io/library/nginx:1.27",
    "docker.io/library/postgres:16",
    "ghcr.io/shop/migrate:1.4.2",
    "ghcr.io/shop/report:7",
    "ghcr.io/shop/seed:1",
    "ghcr.io/shop/web:1.4.1",
    "ghcr.io/shop/web:1.4.2",
];

/// A cluster from before Kubernetes 1.21 has CronJobs under batch/v1beta1 only: their images
/// are listed all the same.
#[test]
fn cronjobs_of_an_old_cluster_come_from_batch_v1beta1() {
    let api = FakeKubeApi::start_with("old-cronjobs");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let (code, stdout, stderr) = ferry_env(&["images", "--from-cluster"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().collect::<Vec<_>>(), CLUSTER_ALL);
    let asked = api.requests();
    assert!(
        asked
            .iter()
            .any(|r| r.starts_with("/apis/batch/v1beta1/cronjobs")),
        "{asked:?}"
    );
}

#[test]
fn a_cluster_through_a_kubeconfig() {
    let api = FakeKubeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let (code, stdout, stderr) = ferry_env(&["images", "--from-cluster"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        CLUSTER_ALL,
        "pods, every controller (scaled to zero too), cronjobs, pod templates"
    );

    let (code, stdout, stderr) = ferry_env(
        &["images", "--from-cluster", "--kube-namespace", "shop"],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().collect::<Vec<_>>(), CLUSTER_SHOP);
    // `-n` no longer means the Kubernetes namespace: it is containerd's, and wants
    // --from-containerd.
    let (code, _, stderr) = ferry_env(&["images", "--from-cluster", "-n", "shop"], &env);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--from-containerd"), "{stderr}");
    assert!(
        api.requests()
            .iter()
            .any(|r| r.starts_with("/apis/apps/v1/namespaces/shop/deployments")),
        "{:?}",
        api.requests()
    );

    // A wrong token: the API refuses, and the message says what was being listed.
    let bad = dir.path().join("bad-kubeconfig");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&kubeconfig)
            .unwrap()
            .replace(&api.token, "wrong"),
    )
    .unwrap();
    let (code, _, stderr) = ferry_env(
        &["images", "--from-cluster"],
        &[("KUBECONFIG", bad.to_str().unwrap())],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--from-cluster: cannot list pods in all namespaces"),
        "{stderr}"
    );
}

#[test]
fn a_cluster_through_the_in_cluster_service_account() {
    let api = FakeKubeApi::start();
    let sa = tempfile::tempdir().unwrap();
    std::fs::write(sa.path().join("token"), &api.token).unwrap();
    std::fs::copy(api.tls.path("ca.crt"), sa.path().join("ca.crt")).unwrap();
    std::fs::write(sa.path().join("namespace"), "shop").unwrap();
    let port = api.addr.rsplit(':').next().unwrap();
    let env = [
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
        ("KUBERNETES_SERVICE_PORT", port),
        ("FERRY_SERVICEACCOUNT_DIR", sa.path().to_str().unwrap()),
    ];
    let (code, stdout, stderr) = ferry_env(&["images", "--from-cluster"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().collect::<Vec<_>>(), CLUSTER_ALL);

    // Neither a kubeconfig nor a pod: a hint, not a stack of client errors.
    let (code, _, stderr) = ferry_out(&["images", "--from-cluster"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no kubeconfig and not running in a pod")
            && stderr.contains("hint: set KUBECONFIG"),
        "{stderr}"
    );
}

#[test]
fn lock_then_bundle_exactly_that_even_after_the_tag_moves() {
    let reg = Registry::seeded_with(&["--accesslog"]);
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("ferry.lock");
    let (hello, multi) = (reg.image("sample/hello:1.0"), reg.image("sample/multi:1.0"));
    let (code, _, stderr) = ferry_out(&[
        "lock",
        &hello,
        &multi,
        "--platform",
        "linux/amd64",
        "-o",
        lock.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let locked: serde_json::Value = serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    let hello_digest = sha256(&reg.manifest("sample/hello", "1.0").0);
    assert_eq!(locked["images"][0]["reference"], hello.as_str());
    assert_eq!(locked["images"][0]["digest"], hello_digest.as_str());
    assert_eq!(
        locked["images"][1]["platforms"].as_array().unwrap().len(),
        1,
        "one platform kept"
    );
    let (code, _, stderr) = ferry_out(&[
        "lock",
        &hello,
        &multi,
        "--platform",
        "linux/amd64",
        "-o",
        lock.to_str().unwrap(),
        "--locked",
    ]);
    assert_eq!(code, 0, "nothing moved yet: {stderr}");

    // Someone pushes world over hello:1.0.
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!(
            "oci:{}:sample/world:1.0",
            sample_layout().display()
        ))
        .arg(format!("docker://{hello}")));
    assert_ne!(sha256(&reg.manifest("sample/hello", "1.0").0), hello_digest);

    // --locked reports the drift, names the reference, fetches nothing.
    let blob_gets = || {
        reg.requests_by_others()
            .iter()
            .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/"))
            .count()
    };
    let gets_before = blob_gets();
    let b = dir.path().join("b");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--lock",
        lock.to_str().unwrap(),
        "--locked",
        "-o",
        b.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "{hello}: locked {hello_digest}, the tag now names"
        )),
        "{stderr}"
    );
    assert!(
        index_json(&b)["manifests"].as_array().unwrap().is_empty(),
        "nothing fetched"
    );
    assert_eq!(
        blob_gets(),
        gets_before,
        "the registry was asked for no blob"
    );
    let stored = std::fs::read_dir(b.join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(stored, 0, "no blob stored");
    let (code, _, stderr) = ferry_out(&[
        "lock",
        &hello,
        &multi,
        "--platform",
        "linux/amd64",
        "-o",
        lock.to_str().unwrap(),
        "--locked",
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("is out of date")
            && stderr.contains(&format!("{hello}: locked {hello_digest}")),
        "{stderr}"
    );

    // Without --locked, the bundle holds exactly what was locked, under the locked names.
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--lock",
        lock.to_str().unwrap(),
        "-o",
        b.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        index_entry(&b, &hello).unwrap()["digest"],
        hello_digest.as_str()
    );
    assert_eq!(
        std::fs::read(b.join("ferry.lock")).unwrap(),
        std::fs::read(&lock).unwrap(),
        "the bundle's lock is the same file"
    );
    assert_eq!(ferry_out(&["verify", b.to_str().unwrap()]).0, 0);
}

#[test]
fn lock_files_that_would_mislead_are_refused() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("ferry.lock");
    let multi = reg.image("sample/multi:1.0");
    // Platforms in another order than the file keeps them: still up to date.
    let (code, _, stderr) = ferry_out(&[
        "lock",
        &multi,
        "--platform",
        "linux/arm64",
        "--platform",
        "linux/amd64",
        "-o",
        lock.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = ferry_out(&[
        "lock",
        &multi,
        "--platform",
        "linux/arm64",
        "--platform",
        "linux/amd64",
        "-o",
        lock.to_str().unwrap(),
        "--locked",
    ]);
    assert_eq!(code, 0, "{stderr}");
    // --lock decides the platforms: another --platform would be silently ignored.
    let b = dir.path().join("b");
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--lock",
        lock.to_str().unwrap(),
        "--platform",
        "linux/s390x",
        "-o",
        b.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");

    // An entry whose reference pins one digest and whose digest field says another.
    let hello = sha256(&reg.manifest("sample/hello", "1.0").0);
    let world = sha256(&reg.manifest("sample/world", "1.0").0);
    let forged = format!(
        r#"{{"lockVersion":1,"images":[{{"reference":"{}/sample/hello@{hello}","digest":"{world}","mediaType":"application/vnd.oci.image.manifest.v1+json","size":559,"platforms":[],"totalSize":0}}]}}"#,
        reg.addr
    );
    std::fs::write(&lock, forged).unwrap();
    let (code, _, stderr) = ferry_out(&[
        "bundle",
        "--lock",
        lock.to_str().unwrap(),
        "-o",
        b.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("pins {hello} but its entry says {world}")),
        "{stderr}"
    );
}
