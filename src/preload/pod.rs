//! The preload DaemonSet: an init container that restores from the served bundle into the
//! node's runtime, then a pause container that keeps the pod Ready.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, HostPathVolumeSource, PodSpec, ResourceRequirements, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    CRIO_CONF_DIR, CRIO_STORAGE, NodeRuntime, PreloadOptions, meta, pod_template, unprivileged,
};

/// The init container's command: exactly what a user would run on the node.
pub fn restore_command(o: &PreloadOptions) -> Vec<String> {
    let mut c: Vec<String> = ["ferry", "restore", "--from", &o.from, "--pin", "--runtime"]
        .map(str::to_owned)
        .to_vec();
    match o.runtime {
        // The socket comes from CONTAINERD_ADDRESS (set in the container's env).
        NodeRuntime::Containerd => c.push("containerd".into()),
        NodeRuntime::CriO => c.extend(
            [
                "cri-o",
                "--storage",
                CRIO_STORAGE,
                "--crio-conf-dir",
                CRIO_CONF_DIR,
            ]
            .map(str::to_owned),
        ),
    }
    c
}

/// A hostPath volume and where the container mounts it.
fn host_path(name: &str, path: &str, kind: &str, read_only: bool) -> (Volume, VolumeMount) {
    (
        Volume {
            name: name.into(),
            host_path: Some(HostPathVolumeSource {
                path: path.into(),
                type_: Some(kind.into()),
            }),
            ..Volume::default()
        },
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            read_only: Some(read_only),
            ..VolumeMount::default()
        },
    )
}

/// What the init container mounts from the node: containerd's socket folder, or CRI-O's
/// storage and its drop-in folder; and a scratch /tmp (the root filesystem is read-only).
fn node_mounts(o: &PreloadOptions) -> Vec<(Volume, VolumeMount)> {
    let mut out = match o.runtime {
        NodeRuntime::Containerd => {
            let dir = o
                .containerd_socket
                .rsplit_once('/')
                .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
            vec![host_path("containerd", dir, "Directory", false)]
        }
        NodeRuntime::CriO => vec![
            host_path(
                "containers-storage",
                "/var/lib/containers/storage",
                "Directory",
                false,
            ),
            host_path(
                "containers-run",
                "/run/containers/storage",
                "DirectoryOrCreate",
                false,
            ),
            host_path("crio-conf", CRIO_CONF_DIR, "DirectoryOrCreate", false),
        ],
    };
    out.push((
        Volume {
            name: "tmp".into(),
            empty_dir: Some(Default::default()),
            ..Volume::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        },
    ));
    out
}

fn quantities(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

/// The init container: privileged (it writes into the node's runtime through its socket or
/// storage, as root), with a read-only root filesystem.
fn restore_container(o: &PreloadOptions, mounts: Vec<VolumeMount>) -> Container {
    let env = (o.runtime == NodeRuntime::Containerd).then(|| {
        vec![EnvVar {
            name: "CONTAINERD_ADDRESS".into(),
            value: Some(o.containerd_socket.clone()),
            value_from: None,
        }]
    });
    Container {
        name: "restore".into(),
        image: Some(o.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(restore_command(o)),
        env,
        volume_mounts: Some(mounts),
        resources: Some(ResourceRequirements {
            requests: quantities(&o.resources.requests),
            limits: quantities(&o.resources.limits),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            run_as_user: Some(0),
            read_only_root_filesystem: Some(true),
            ..SecurityContext::default()
        }),
        // `kubectl logs POD -c restore` shows which image failed and why.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    }
}

/// The pause container: nothing to do, no rights at all.
fn pause_container(o: &PreloadOptions) -> Container {
    Container {
        name: "pause".into(),
        image: Some(o.pause_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        resources: Some(ResourceRequirements {
            requests: quantities(&BTreeMap::from([
                ("cpu".to_owned(), "1m".to_owned()),
                ("memory".to_owned(), "8Mi".to_owned()),
            ])),
            limits: quantities(&BTreeMap::from([("memory".to_owned(), "16Mi".to_owned())])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(unprivileged(Some(65535))),
        ..Container::default()
    }
}

/// One preload pod per matching node.
pub fn daemon_set(o: &PreloadOptions) -> DaemonSet {
    let (volumes, mounts): (Vec<Volume>, Vec<VolumeMount>) = node_mounts(o).into_iter().unzip();
    let selector = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "ferry".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), o.name.clone()),
        (
            "app.kubernetes.io/component".to_owned(),
            "preload".to_owned(),
        ),
    ]);
    DaemonSet {
        metadata: meta(&o.name, o, "preload"),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            },
            // A new bundle rolls over every node at once; pulls are spread by each node's
            // own retries, and the server caps what it serves at a time.
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::String("100%".into())),
                    max_surge: None,
                }),
            }),
            template: pod_template(
                o,
                "preload",
                PodSpec {
                    node_selector: (!o.node_selector.is_empty()).then(|| o.node_selector.clone()),
                    tolerations: (!o.tolerations.is_empty()).then(|| o.tolerations.clone()),
                    init_containers: Some(vec![restore_container(o, mounts)]),
                    containers: vec![pause_container(o)],
                    volumes: Some(volumes),
                    termination_grace_period_seconds: Some(5),
                    ..PodSpec::default()
                },
            ),
            ..DaemonSetSpec::default()
        }),
        status: None,
    }
}
