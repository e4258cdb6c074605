//! `ferry preload-manifests`: the printed objects deserialize into the Kubernetes API types
//! and carry the selectors, tolerations, sockets, security context and command asked for
//! (vanilla and openshift); examples/ holds one rendered example per flavor, checked here; the
//! init container's exact command, run as a process against a real containerd with
//! `ferry serve` as the source, restores every image with the bundle's digests, pinned.

use crate::common;
use crate::served;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Container, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;

use common::*;
use served::*;

/// A toleration as (key, operator, value, effect).
type Tol<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

const IMAGE: &str = "registry.example/ferry:0.1.0";

/// The command lines the examples were rendered with (and are checked against).
const VANILLA: &[&str] = &[
    "preload-manifests",
    "preload",
    "--image",
    IMAGE,
    "--from",
    "http://10.0.0.5:5000",
    "--node-selector",
    "kubernetes.io/os=linux",
    "--toleration",
    "node-role.kubernetes.io/control-plane:NoSchedule",
    "--toleration",
    "dedicated=infra:NoExecute",
    "--pull-secret",
    "corp-registry",
];
const OPENSHIFT: &[&str] = &[
    "preload-manifests",
    "preload",
    "--image",
    IMAGE,
    "--flavor",
    "openshift",
    "--namespace",
    "ferry",
    "--serve-from-pvc",
    "bundle-v2",
    "--node-selector",
    "node-role.kubernetes.io/worker=",
];

/// The documents of a YAML stream, each with its kind.
fn documents(text: &str) -> Vec<(String, serde_json::Value)> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            (v["kind"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

/// The one document of `kind`, as its API type.
fn one<T: serde::de::DeserializeOwned>(docs: &[(String, serde_json::Value)], kind: &str) -> T {
    let found: Vec<&serde_json::Value> = docs
        .iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} in {docs:?}");
    serde_json::from_value(found[0].clone()).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

fn render(args: &[&str]) -> String {
    let (code, stdout, stderr) = ferry_out(args);
    assert_eq!(code, 0, "{stderr}");
    stdout
}

fn pod(ds: &DaemonSet) -> PodSpec {
    ds.spec.clone().unwrap().template.spec.unwrap()
}

fn host_paths(pod: &PodSpec) -> Vec<String> {
    pod.volumes
        .iter()
        .flatten()
        .filter_map(|v| v.host_path.as_ref().map(|h| h.path.clone()))
        .collect()
}

fn mount_paths(c: &Container) -> Vec<String> {
    c.volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.clone())
        .collect()
}

/// What every preload DaemonSet must be: pods its selector selects, a token-less
/// ServiceAccount, a privileged init container running `ferry restore --from URL --pin`, a
/// pause container with no rights.
fn check_common(docs: &[(String, serde_json::Value)], from: &str) -> DaemonSet {
    let sa: ServiceAccount = one(docs, "ServiceAccount");
    assert_eq!(sa.automount_service_account_token, Some(false));
    assert!(
        !docs
            .iter()
            .any(|(k, _)| matches!(k.as_str(), "Role" | "ClusterRole" | "ClusterRoleBinding")),
        "no API rights: {docs:?}"
    );
    let ds: DaemonSet = one(docs, "DaemonSet");
    let spec = ds.spec.clone().unwrap();
    let template_labels = spec.template.metadata.clone().unwrap().labels.unwrap();
    for (k, v) in spec.selector.match_labels.clone().unwrap() {
        assert_eq!(template_labels.get(&k), Some(&v), "selector {k}");
    }
    let pod = pod(&ds);
    assert_eq!(pod.service_account_name, sa.metadata.name);
    assert_eq!(pod.automount_service_account_token, Some(false));
    let init = &pod.init_containers.as_ref().unwrap()[0];
    let command = init.command.clone().unwrap();
    assert_eq!(command[..5], ["ferry", "restore", "--from", from, "--pin"]);
    assert_eq!(init.image.as_deref(), Some(IMAGE));
    let sc = init.security_context.clone().unwrap();
    assert_eq!(sc.privileged, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert!(mount_paths(init).contains(&"/tmp".to_owned()));
    let pause = &pod.containers[0];
    assert!(
        pause.image.as_deref().unwrap().contains("pause"),
        "{pause:?}"
    );
    let sc = pause.security_context.clone().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    ds
}

fn check_vanilla(text: &str) {
    let docs = documents(text);
    let ds = check_common(&docs, "http://10.0.0.5:5000");
    assert_eq!(ds.metadata.namespace.as_deref(), Some("kube-system"));
    let pod = pod(&ds);
    assert_eq!(
        pod.node_selector.clone().unwrap()["kubernetes.io/os"],
        "linux"
    );
    let tolerations = pod.tolerations.clone().unwrap();
    let seen: Vec<Tol> = tolerations
        .iter()
        .map(|t| {
            (
                t.key.as_deref(),
                t.operator.as_deref(),
                t.value.as_deref(),
                t.effect.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                Some("node-role.kubernetes.io/control-plane"),
                Some("Exists"),
                None,
                Some("NoSchedule")
            ),
            (
                Some("dedicated"),
                Some("Equal"),
                Some("infra"),
                Some("NoExecute")
            ),
        ]
    );
    assert_eq!(
        pod.image_pull_secrets.clone().unwrap()[0].name,
        "corp-registry"
    );
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        init.command.clone().unwrap()[5..],
        ["--runtime", "containerd"]
    );
    let env = init.env.clone().unwrap();
    assert_eq!(env[0].name, "CONTAINERD_ADDRESS");
    assert_eq!(
        env[0].value.as_deref(),
        Some("/run/containerd/containerd.sock")
    );
    assert_eq!(host_paths(&pod), ["/run/containerd"]);
    assert!(mount_paths(init).contains(&"/run/containerd".to_owned()));
    assert!(
        !docs
            .iter()
            .any(|(k, _)| k == "RoleBinding" || k == "Deployment")
    );
}

fn check_openshift(text: &str) {
    let docs = documents(text);
    let from = "http://preload-serve.ferry.svc:5000";
    let ds = check_common(&docs, from);
    let rb: RoleBinding = one(&docs, "RoleBinding");
    assert_eq!(rb.role_ref.kind, "ClusterRole");
    assert_eq!(rb.role_ref.name, "system:openshift:scc:privileged");
    let subject = &rb.subjects.unwrap()[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", "preload", Some("ferry"))
    );
    let pod = pod(&ds);
    assert_eq!(
        pod.node_selector.clone().unwrap()["node-role.kubernetes.io/worker"],
        ""
    );
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        init.command.clone().unwrap()[5..],
        [
            "--runtime",
            "cri-o",
            "--storage",
            "[overlay@/var/lib/containers/storage+/run/containers/storage]",
            "--crio-conf-dir",
            "/etc/crio/crio.conf.d"
        ]
    );
    for path in [
        "/var/lib/containers/storage",
        "/run/containers/storage",
        "/etc/crio/crio.conf.d",
    ] {
        assert!(host_paths(&pod).contains(&path.to_owned()), "{path}");
        assert!(mount_paths(init).contains(&path.to_owned()), "{path}");
    }
    // ferry serve on the PVC, read-only, behind the Service the nodes pull from.
    let deploy: Deployment = one(&docs, "Deployment");
    let serve_pod = deploy.spec.clone().unwrap().template.spec.unwrap();
    let claim = serve_pod.volumes.clone().unwrap()[0]
        .persistent_volume_claim
        .clone()
        .unwrap();
    assert_eq!(
        (claim.claim_name.as_str(), claim.read_only),
        ("bundle-v2", Some(true))
    );
    let serve = &serve_pod.containers[0];
    assert_eq!(
        serve.command.clone().unwrap(),
        ["ferry", "serve", "/bundle", "--addr", "0.0.0.0:5000"]
    );
    assert_eq!(
        serve.volume_mounts.clone().unwrap()[0].read_only,
        Some(true)
    );
    let sc = serve.security_context.clone().unwrap();
    assert_eq!(
        (sc.run_as_non_root, sc.privileged, sc.run_as_user),
        (Some(true), None, None),
        "OpenShift assigns the user"
    );
    let svc: Service = one(&docs, "Service");
    assert_eq!(svc.metadata.name.as_deref(), Some("preload-serve"));
    let pod_labels = deploy
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    for (k, v) in svc.spec.unwrap().selector.unwrap() {
        assert_eq!(pod_labels.get(&k), Some(&v), "service selector {k}");
    }
}

#[test]
fn vanilla_manifests_carry_what_was_asked() {
    check_vanilla(&render(VANILLA));
}

#[test]
fn openshift_manifests_bind_the_scc_use_crio_and_serve_from_the_pvc() {
    check_openshift(&render(OPENSHIFT));
}

/// The example after its comment header: regenerate with the command its first line shows.
fn example(name: &str) -> String {
    let text = std::fs::read_to_string(root().join("examples").join(name)).unwrap();
    text.lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn the_examples_are_what_ferry_prints_and_pass_the_same_checks() {
    for (file, args, check) in [
        ("preload-vanilla.yaml", VANILLA, check_vanilla as fn(&str)),
        ("preload-openshift.yaml", OPENSHIFT, check_openshift),
    ] {
        let text = example(file);
        check(&text);
        assert_eq!(
            text,
            render(args),
            "examples/{file} is stale: regenerate it with the command in its header"
        );
    }
}

#[test]
fn values_kubernetes_would_refuse_are_usage_errors() {
    for bad in [
        &["--toleration", "dedicated=infra:Sometimes"][..],
        &["--toleration", "dedicated=$(id):NoSchedule"],
        &["--node-selector", "nokey"],
        &["--namespace", "Kube_System"],
        &["--cpu", "lots"],
        &["--from", "ftp://10.0.0.5/"],
        &["--flavor", "openshift", "--runtime", "containerd"],
    ] {
        let mut args = vec!["preload-manifests", "preload", "--image", IMAGE];
        if !bad.contains(&"--from") {
            args.extend(["--from", "http://10.0.0.5:5000"]);
        }
        args.extend(bad);
        let (code, stdout, stderr) = ferry_out(&args);
        assert_eq!(code, 2, "{bad:?}: {stderr}");
        assert!(stdout.is_empty(), "{bad:?}: nothing printed: {stdout}");
    }
    let (code, _, stderr) = ferry_out(&[
        "preload-manifests",
        "Preload",
        "--image",
        IMAGE,
        "--from",
        "http://h:1",
    ]);
    assert_eq!(code, 2, "{stderr}");
}

/// The init container's command and environment, run as they are (the program `ferry` being
/// this build, CONTAINERD_ADDRESS the test containerd's socket) against a real containerd,
/// with `ferry serve` as the source: every image arrives with the registry's digests, pinned;
/// the same command again pulls nothing.
#[test]
fn the_init_containers_command_restores_every_image_into_containerd() {
    let reg = Registry::seeded();
    let dir = tempfile::tempdir().unwrap();
    let tags = &SAMPLES[..3];
    let b = bundle(&reg, &dir.path().join("b"), tags, &[]);
    let expected: Vec<(String, String)> =
        tags.iter().map(|t| (reg.image(t), reg.digest(t))).collect();
    drop(reg);
    let served = Served::start(&b, &[]);
    let node = Containerd::start();
    let url = served.url("");
    let docs = documents(&render(&[
        "preload-manifests",
        "preload",
        "--image",
        IMAGE,
        "--from",
        &url,
    ]));
    let ds: DaemonSet = one(&docs, "DaemonSet");
    let init = pod(&ds).init_containers.unwrap().remove(0);
    let command = init.command.unwrap();
    assert_eq!(command[0], "ferry");
    let env = init.env.unwrap();
    for round in 0..2 {
        let mut run = ferry();
        run.args(&command[1..]);
        for e in &env {
            assert_eq!(e.name, "CONTAINERD_ADDRESS", "{e:?}");
            run.env(&e.name, &node.socket);
        }
        let out = run.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        if round == 1 {
            assert!(
                stderr.contains(&format!("0 of {} image(s) restored", tags.len())),
                "{stderr}"
            );
        }
        let listed = containerd_images(&node);
        for (name, digest) in &expected {
            assert_pinned(&listed, name, digest);
        }
    }
}
