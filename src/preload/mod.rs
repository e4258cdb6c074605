//! `ferry preload-manifests`: what `kubectl apply -f -` needs to fill every node of a running
//! cluster from a served bundle, the DaemonSet way (as image-prefetcher and the image-preloader
//! chart do): one pod per matching node whose init container runs
//! `ferry restore --from URL --pin` against the node's runtime socket, then a pause container
//! keeps the pod Ready, so `kubectl rollout status daemonset NAME` waits for every node.
//! Objects are built as Kubernetes API types (k8s-openapi); the library renders, the CLI prints.

mod args;
mod pod;
mod serve_pvc;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ServiceAccount, Toleration};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use args::{PreloadError, parse_node_selector, parse_toleration};

/// The node's container runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRuntime {
    /// containerd: its socket is mounted, `ctr` pulls.
    Containerd,
    /// CRI-O: its containers-storage and pinning drop-in folder are mounted, `skopeo` copies.
    CriO,
}

/// The cluster's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Any conformant Kubernetes.
    Vanilla,
    /// OpenShift: the privileged SCC bound to the ServiceAccount, CRI-O's paths.
    OpenShift,
}

/// Requests and limits of the init container (the pause container asks for almost nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// `cpu` / `memory` requests (Kubernetes quantities).
    pub requests: BTreeMap<String, String>,
    /// `cpu` / `memory` limits.
    pub limits: BTreeMap<String, String>,
}

/// What to print.
#[derive(Debug, Clone)]
pub struct PreloadOptions {
    /// The DaemonSet's (and ServiceAccount's) name.
    pub name: String,
    /// Their namespace.
    pub namespace: String,
    /// Where the nodes pull from (`http://HOST:PORT`); with `serve_from_pvc` and none given,
    /// the in-cluster Service.
    pub from: String,
    /// The node's runtime.
    pub runtime: NodeRuntime,
    /// The cluster's kind.
    pub flavor: Flavor,
    /// ferry's own image (it must carry `ctr` for containerd, `skopeo` for CRI-O).
    pub image: String,
    /// The image that keeps each pod Ready once its node is filled.
    pub pause_image: String,
    /// containerd's socket on the node.
    pub containerd_socket: String,
    /// imagePullSecrets for ferry's image.
    pub pull_secrets: Vec<String>,
    /// Only nodes with these labels.
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations (tainted nodes to fill too).
    pub tolerations: Vec<Toleration>,
    /// The init container's resources.
    pub resources: Resources,
    /// Also a Deployment + Service running `ferry serve` on this PVC, mounted read-only.
    pub serve_from_pvc: Option<String>,
}

/// CRI-O's containers-storage as skopeo writes it on a default node.
pub const CRIO_STORAGE: &str = "[overlay@/var/lib/containers/storage+/run/containers/storage]";
/// Where CRI-O reads drop-ins (ferry's pinned_images file goes there).
pub const CRIO_CONF_DIR: &str = "/etc/crio/crio.conf.d";
/// The OpenShift ClusterRole that grants use of the privileged SCC.
pub const OPENSHIFT_PRIVILEGED_SCC: &str = "system:openshift:scc:privileged";
/// The port `ferry serve` listens on in the PVC Deployment.
pub const SERVE_PORT: u16 = 5000;

/// One object to apply.
#[derive(Debug, Clone)]
pub enum Object {
    /// The pods' identity: no API rights, no token mounted.
    ServiceAccount(ServiceAccount),
    /// OpenShift: the privileged SCC for that ServiceAccount.
    RoleBinding(RoleBinding),
    /// One preload pod per node.
    DaemonSet(Box<k8s_openapi::api::apps::v1::DaemonSet>),
    /// `ferry serve` on the PVC.
    Deployment(Box<k8s_openapi::api::apps::v1::Deployment>),
    /// Its Service.
    Service(Box<k8s_openapi::api::core::v1::Service>),
}

impl Object {
    /// The object as one YAML document (apiVersion and kind first).
    pub fn to_yaml(&self) -> String {
        let text = match self {
            Object::ServiceAccount(o) => serde_yaml_ng::to_string(o),
            Object::RoleBinding(o) => serde_yaml_ng::to_string(o),
            Object::DaemonSet(o) => serde_yaml_ng::to_string(o),
            Object::Deployment(o) => serde_yaml_ng::to_string(o),
            Object::Service(o) => serde_yaml_ng::to_string(o),
        };
        text.expect("Kubernetes objects serialize")
    }
}

/// Every object, as a multi-document YAML stream.
pub fn render(objects: &[Object]) -> String {
    objects
        .iter()
        .map(|o| format!("---\n{}", o.to_yaml()))
        .collect()
}

/// The labels every object carries; `component` tells the preload pods from the server's.
fn labels(name: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "ferry".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), name.to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            component.to_owned(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "ferry".to_owned(),
        ),
    ])
}

fn meta(name: &str, options: &PreloadOptions, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(options.namespace.clone()),
        labels: Some(labels(&options.name, component)),
        ..ObjectMeta::default()
    }
}

/// A container's security context with no rights at all: non-root (as `user` when given),
/// no privilege escalation, every capability dropped, a read-only root filesystem.
fn unprivileged(user: Option<i64>) -> k8s_openapi::api::core::v1::SecurityContext {
    use k8s_openapi::api::core::v1::{Capabilities, SecurityContext};
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: user,
        ..SecurityContext::default()
    }
}

/// A pod template of `component` with what every ferry pod has: the token-less
/// ServiceAccount, no service links, the pull secrets; `spec` gives the rest.
fn pod_template(
    options: &PreloadOptions,
    component: &str,
    spec: k8s_openapi::api::core::v1::PodSpec,
) -> k8s_openapi::api::core::v1::PodTemplateSpec {
    use k8s_openapi::api::core::v1::{LocalObjectReference, PodSpec, PodTemplateSpec};
    let secrets = options
        .pull_secrets
        .iter()
        .map(|s| LocalObjectReference { name: s.clone() })
        .collect::<Vec<_>>();
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(&options.name, component)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(options.name.clone()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            image_pull_secrets: (!secrets.is_empty()).then_some(secrets),
            ..spec
        }),
    }
}

/// Every object to apply, in the order `kubectl apply` needs them.
pub fn manifests(options: &PreloadOptions) -> Result<Vec<Object>, PreloadError> {
    args::check(options)?;
    let mut out = vec![Object::ServiceAccount(ServiceAccount {
        metadata: meta(&options.name, options, "preload"),
        // No API rights are granted, and no token is mounted: the pods never call the API.
        automount_service_account_token: Some(false),
        image_pull_secrets: None,
        secrets: None,
    })];
    if options.flavor == Flavor::OpenShift {
        out.push(Object::RoleBinding(RoleBinding {
            metadata: meta(
                &format!("{}-privileged-scc", options.name),
                options,
                "preload",
            ),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: OPENSHIFT_PRIVILEGED_SCC.into(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: options.name.clone(),
                namespace: Some(options.namespace.clone()),
                api_group: None,
            }]),
        }));
    }
    if let Some(claim) = &options.serve_from_pvc {
        out.push(Object::Deployment(Box::new(serve_pvc::deployment(
            options, claim,
        ))));
        out.push(Object::Service(Box::new(serve_pvc::service(options))));
    }
    out.push(Object::DaemonSet(Box::new(pod::daemon_set(options))));
    Ok(out)
}

/// The in-cluster URL of the PVC server.
pub fn served_url(name: &str, namespace: &str) -> String {
    format!(
        "http://{}.{namespace}.svc:{SERVE_PORT}",
        serve_pvc::server_name(name)
    )
}
