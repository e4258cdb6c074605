//! `ferry snapshot` against a fake Kubernetes API (no API server runs on these machines): the
//! VolumeSnapshot is created, waited for, and its content's handle printed; missing PVC,
//! missing snapshot API, no permission and a snapshot that never gets ready each fail clearly.

use crate::common;

use common::*;

const ARGS: [&str; 8] = [
    "snapshot",
    "--pvc",
    "ferry-bundle",
    "--class",
    "csi-standard",
    "-n",
    "preload",
    "--name",
];

fn run(api: &FakeKubeApi, extra: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let mut args: Vec<&str> = ARGS.to_vec();
    args.extend_from_slice(extra);
    ferry_env(&args, &[("KUBECONFIG", kubeconfig.to_str().unwrap())])
}

fn posts(api: &FakeKubeApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.starts_with("POST "))
        .count()
}

#[test]
fn creates_waits_and_prints_the_handle() {
    let api = FakeKubeApi::start();
    let (code, stdout, stderr) = run(&api, &["seed-1"]);
    assert_eq!(code, 0, "{stderr}");
    // The handle is the content's, which the fake derives from the bound content's name.
    assert_eq!(stdout, "snap-preload-seed-1\n", "{stderr}");
    assert!(stderr.contains("created VolumeSnapshot seed-1"), "{stderr}");
    let requests = api.requests();
    assert!(
        requests.contains(&"/api/v1/namespaces/preload/persistentvolumeclaims/ferry-bundle".into()),
        "{requests:?}"
    );
    assert!(
        requests.contains(
            &"/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/snapcontent-preload-seed-1"
                .into()
        ),
        "{requests:?}"
    );
    assert_eq!(posts(&api), 1);

    // Again with the same name: the snapshot is reused, not created twice.
    let (code, stdout, stderr) = run(&api, &["seed-1", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["snapshotHandle"], "snap-preload-seed-1");
    assert_eq!(v["content"], "snapcontent-preload-seed-1");
    assert_eq!(v["restoreSize"], "1Gi");
    assert_eq!(v["reused"], true);
    assert_eq!(
        posts(&api),
        2,
        "the second POST met 409 and the existing one was used"
    );
}

#[test]
fn a_missing_pvc_creates_nothing() {
    let api = FakeKubeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let (code, stdout, stderr) = ferry_env(
        &[
            "snapshot", "--pvc", "nope", "--class", "c", "--name", "s", "-n", "preload",
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("PersistentVolumeClaim preload/nope not found"),
        "{stderr}"
    );
    assert_eq!(posts(&api), 0);
}

#[test]
fn no_snapshot_api_and_no_permission_say_so() {
    let api = FakeKubeApi::start_with("no-crd");
    let (code, _, stderr) = run(&api, &["s"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no VolumeSnapshot API"), "{stderr}");
    assert!(stderr.contains("external-snapshotter"), "{stderr}");

    let api = FakeKubeApi::start_with("forbidden");
    let (code, _, stderr) = run(&api, &["s"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("not allowed to create volumesnapshots in namespace preload"),
        "{stderr}"
    );
    assert!(
        stderr.contains("system:serviceaccount:default:ferry"),
        "{stderr}"
    );
}

#[test]
fn a_snapshot_that_never_gets_ready_times_out_with_its_message() {
    let api = FakeKubeApi::start_with("stuck");
    let (code, stdout, stderr) = run(&api, &["s", "--timeout", "2s"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("was not ready to use after"), "{stderr}");
    assert!(stderr.contains("volume is busy"), "{stderr}");
}

#[test]
fn bad_names_and_no_cluster_are_usage_errors() {
    let api = FakeKubeApi::start();
    let (code, _, stderr) = run(&api, &["Not_A_Name"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--name"), "{stderr}");
    assert!(api.requests().is_empty(), "nothing was asked of the API");
    // The same API logs what a valid run asks of it.
    let (code, _, stderr) = run(&api, &["valid-name"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!api.requests().is_empty());

    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = ferry_env(
        &["snapshot", "--pvc", "p", "--class", "c", "--name", "s"],
        &[
            ("KUBECONFIG", ""),
            ("HOME", dir.path().to_str().unwrap()),
            ("KUBERNETES_SERVICE_HOST", ""),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no kubeconfig"), "{stderr}");
}

/// An API server that does not answer: one line naming what ferry was doing and the cause,
/// a hint, exit 1; no client-library wording ("ServiceError", "client error (Connect)").
#[test]
fn an_api_server_that_does_not_answer_is_named_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: \
             https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  \
             context: {{cluster: c, user: u, namespace: default}}\ncurrent-context: c\nusers:\n- \
             name: u\n  user: {{token: t}}\n"
        ),
    )
    .unwrap();
    let mut args: Vec<&str> = ARGS.to_vec();
    args.push("s");
    let (code, _, stderr) = ferry_env(&args, &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("the Kubernetes API server did not answer")
            && stderr.contains("Connection refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: check the server address"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("ServiceError") && !stderr.contains("client error"),
        "{stderr}"
    );
}
