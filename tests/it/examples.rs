//! examples/ and scripts/demo.sh stay true: every YAML document parses as a Kubernetes
//! object, the Job runs ferry with flags it has, its RBAC grants every request `ferry
//! snapshot` makes (against the fake API), and the demo runs to its end.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;

/// Every document of an examples/ YAML file.
fn documents(name: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(root().join("examples").join(name)).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("examples/{name}: {e}"));
            assert!(
                v["apiVersion"].is_string() && v["kind"].is_string(),
                "examples/{name}: a document without apiVersion and kind: {v}"
            );
            v
        })
        .collect()
}

fn of_kind<'a>(docs: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// (API group, resource, verb, namespace or "" for cluster-scoped) of a request path the fake
/// API logged (`POST ` before the ones that were not GETs).
fn access(line: &str) -> (String, String, String, String) {
    let (method, path) = line.split_once(' ').unwrap_or(("GET", line));
    let path = path.split('?').next().unwrap();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (group, rest) = match parts[0] {
        "api" => ("", &parts[2..]),
        _ => (parts[1], &parts[3..]),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (*ns, rest),
        _ => ("", rest),
    };
    let verb = match (method, rest.len()) {
        ("POST", _) => "create",
        ("GET", 1) if line.contains("watch=") => "watch",
        ("GET", 1) => "list",
        _ => "get",
    };
    (group.into(), rest[0].into(), verb.into(), namespace.into())
}

#[test]
fn every_example_parses_and_the_job_has_the_flags_and_rights_it_needs() {
    let pvc_job = documents("bundle-on-pvc.yaml");
    let preload = documents("kubeadm-preload.yaml");
    assert!(!preload.is_empty());
    let commands = strings(&preload[0]["spec"]["template"]["spec"]["preKubeadmCommands"]);
    assert!(
        commands.iter().any(|c| c.ends_with("/preload/restore.sh")),
        "{commands:?}"
    );

    // The Job's containers run ferry with flags ferry has (clap refuses an unknown one before
    // it reads --help).
    let job = of_kind(&pvc_job, "Job")[0];
    let pod = &job["spec"]["template"]["spec"];
    let containers: Vec<&serde_json::Value> = pod["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pod["containers"].as_array().unwrap())
        .collect();
    for c in &containers {
        let mut args = strings(&c["args"]);
        args.push("--help".into());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = ferry_out(&argv);
        assert_eq!(code, 0, "{}: {args:?}: {stderr}", c["name"]);
    }

    // The snapshot container's run against the fake API, as the Job's service account in its
    // namespace: every request it makes is granted by the example's Role or ClusterRole.
    let namespace = job["metadata"]["namespace"].as_str().unwrap();
    let snapshot = containers.iter().find(|c| c["name"] == "snapshot").unwrap();
    let api = FakeKubeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let mut args = strings(&snapshot["args"]);
    args.extend(["-n".into(), namespace.into()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = ferry_env(&argv, &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("snap-"), "{stdout}");
    let account = pod["serviceAccountName"].as_str().unwrap();
    let mut granted = BTreeSet::new();
    for (role_kind, binding_kind) in [
        ("Role", "RoleBinding"),
        ("ClusterRole", "ClusterRoleBinding"),
    ] {
        for binding in of_kind(&pvc_job, binding_kind) {
            let bound = binding["subjects"].as_array().unwrap().iter().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == account && s["namespace"] == namespace
            });
            if !bound || binding["roleRef"]["kind"] != role_kind {
                continue;
            }
            let role = of_kind(&pvc_job, role_kind)
                .into_iter()
                .find(|r| r["metadata"]["name"] == binding["roleRef"]["name"])
                .expect("the bound role is in the file");
            let scope = role["metadata"]["namespace"].as_str().unwrap_or("*");
            for rule in role["rules"].as_array().unwrap() {
                for group in strings(&rule["apiGroups"]) {
                    for resource in strings(&rule["resources"]) {
                        for verb in strings(&rule["verbs"]) {
                            granted.insert((
                                group.clone(),
                                resource.clone(),
                                verb,
                                scope.to_owned(),
                            ));
                        }
                    }
                }
            }
        }
    }
    let requests = api.requests();
    assert!(requests.len() >= 3, "{requests:?}");
    for line in &requests {
        let (group, resource, verb, ns) = access(line);
        let allowed = granted.iter().any(|(g, r, v, scope)| {
            *g == group && *r == resource && *v == verb && (scope == "*" || *scope == ns)
        });
        assert!(
            allowed,
            "{line}: {verb} {group}/{resource} in {ns:?} is not granted: {granted:?}"
        );
    }
}

#[test]
fn the_containerfile_builds_the_binary_it_copies() {
    let text = std::fs::read_to_string(root().join("examples/Containerfile")).unwrap();
    assert!(
        text.contains("cargo build --release --locked --bin ferry"),
        "{text}"
    );
    let copied = text
        .lines()
        .find_map(|l| l.strip_prefix("COPY --from=build "))
        .unwrap();
    let (from, to) = copied.split_once(' ').unwrap();
    assert_eq!(from, "/src/target/release/ferry");
    assert!(text.contains(&format!("ENTRYPOINT [\"{to}\"]")), "{text}");
}

/// scripts/demo.sh, as the README shows it, runs to its end with the binary under test (it
/// starts and stops its own registry and containerd, and runs an image).
#[test]
fn the_demo_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(root().join("scripts/demo.sh"))
        .env("FERRY", env!("CARGO_BIN_EXE_ferry"))
        .env("FERRY_DEMO_DIR", dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ctr run prints: ") && stdout.contains("done: the bundle is in"),
        "{stdout}"
    );
}
