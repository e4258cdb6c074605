//! `ferry preload-manifests`: prints what `kubectl apply -f -` needs to fill every node of a
//! running cluster from a served bundle.

use std::collections::BTreeMap;

use clap::{Args, ValueEnum};
use k8s_openapi::api::core::v1::Toleration;

use ferry::preload::{
    Flavor, NodeRuntime, PreloadOptions, Resources, manifests, parse_node_selector,
    parse_toleration, render, served_url,
};

use super::{Exit, Failure};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeArg {
    /// containerd (its socket is mounted; ferry's image carries ctr).
    Containerd,
    /// CRI-O (its containers-storage is mounted; ferry's image carries skopeo).
    #[value(alias = "cri-o")]
    Crio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlavorArg {
    /// Any Kubernetes.
    Vanilla,
    /// OpenShift: the privileged SCC bound to the ServiceAccount, CRI-O's paths.
    Openshift,
}

/// Print a DaemonSet that preloads a served bundle onto every matching node
///
/// `ferry preload-manifests NAME --from URL | kubectl apply -f -`, then
/// `kubectl rollout status daemonset NAME` waits for every node. Each pod's init container
/// runs `ferry restore --from URL --pin` against its node's runtime; a pause container then
/// keeps it Ready. The ServiceAccount has no API rights.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry preload-manifests preload --image registry.corp/ferry:0.1.0 \\
      --from http://10.0.0.5:5000 | kubectl apply -f -
  kubectl -n kube-system rollout status daemonset preload --timeout 30m
  ferry preload-manifests preload --image registry.corp/ferry:0.1.0 --serve-from-pvc bundle-v2 \\
      --toleration node-role.kubernetes.io/control-plane:NoSchedule
  ferry preload-manifests preload --image registry.corp/ferry:0.1.0 --flavor openshift \\
      --from http://mirror.corp:5000 --node-selector node-role.kubernetes.io/worker=")]
pub struct PreloadArgs {
    /// The DaemonSet's name (and its ServiceAccount's).
    pub name: String,
    /// Where the nodes pull from: a running `ferry serve` (http://HOST:PORT). With
    /// --serve-from-pvc, defaults to its Service.
    #[arg(long, value_name = "URL", required_unless_present = "serve_from_pvc")]
    pub from: Option<String>,
    /// The nodes' runtime (default: crio with --flavor openshift, else containerd).
    #[arg(long, value_enum)]
    pub runtime: Option<RuntimeArg>,
    /// The cluster's kind.
    #[arg(long, value_enum, default_value = "vanilla")]
    pub flavor: FlavorArg,
    /// The namespace of every object.
    #[arg(long, short = 'n', default_value = "kube-system")]
    pub namespace: String,
    /// ferry's own image; it must carry ctr (containerd) or skopeo (CRI-O): see
    /// examples/Containerfile.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// The image that keeps each pod Ready once its node is filled.
    #[arg(long, default_value = "registry.k8s.io/pause:3.10")]
    pub pause_image: String,
    /// containerd's socket on the nodes (k3s: /run/k3s/containerd/containerd.sock).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/run/containerd/containerd.sock"
    )]
    pub containerd_socket: String,
    /// A Secret to pull ferry's image with (repeatable).
    #[arg(long, value_name = "SECRET")]
    pub pull_secret: Vec<String>,
    /// Only nodes with this label (repeatable; all must match).
    #[arg(long, value_name = "KEY=VALUE", value_parser = selector)]
    pub node_selector: Vec<(String, String)>,
    /// Tolerate a taint, to fill tainted nodes too (repeatable): KEY[=VALUE]:EFFECT.
    #[arg(long, value_name = "KEY[=VALUE]:EFFECT", value_parser = toleration)]
    pub toleration: Vec<Toleration>,
    /// The restore container's CPU request.
    #[arg(long, default_value = "100m")]
    pub cpu: String,
    /// The restore container's memory request.
    #[arg(long, default_value = "128Mi")]
    pub memory: String,
    /// The restore container's memory limit.
    #[arg(long, default_value = "512Mi")]
    pub memory_limit: String,
    /// Also print a Deployment + Service running `ferry serve` on this PVC (the bundle),
    /// mounted read-only; the nodes pull from that Service unless --from says otherwise.
    #[arg(long, value_name = "CLAIM")]
    pub serve_from_pvc: Option<String>,
}

fn selector(s: &str) -> Result<(String, String), String> {
    parse_node_selector(s).map_err(|e| e.reason)
}

fn toleration(s: &str) -> Result<Toleration, String> {
    parse_toleration(s).map_err(|e| e.reason)
}

/// Runs `ferry preload-manifests`: the YAML on stdout.
pub fn run(args: PreloadArgs) -> Result<Exit, Failure> {
    let flavor = match args.flavor {
        FlavorArg::Vanilla => Flavor::Vanilla,
        FlavorArg::Openshift => Flavor::OpenShift,
    };
    let runtime = match (args.runtime, flavor) {
        (Some(RuntimeArg::Containerd), _) | (None, Flavor::Vanilla) => NodeRuntime::Containerd,
        (Some(RuntimeArg::Crio), _) | (None, Flavor::OpenShift) => NodeRuntime::CriO,
    };
    let from = match (&args.from, &args.serve_from_pvc) {
        (Some(from), _) => from.clone(),
        (None, _) => served_url(&args.name, &args.namespace),
    };
    let options = PreloadOptions {
        name: args.name,
        namespace: args.namespace,
        from,
        runtime,
        flavor,
        image: args.image,
        pause_image: args.pause_image,
        containerd_socket: args.containerd_socket,
        pull_secrets: args.pull_secret,
        node_selector: args.node_selector.into_iter().collect(),
        tolerations: args.toleration,
        resources: Resources {
            requests: BTreeMap::from([("cpu".into(), args.cpu), ("memory".into(), args.memory)]),
            limits: BTreeMap::from([("memory".into(), args.memory_limit)]),
        },
        serve_from_pvc: args.serve_from_pvc,
    };
    let objects = manifests(&options).map_err(|e| Failure::from(ferry::error::Error::new(e)))?;
    super::stdout::write(&render(&objects));
    Ok(Exit::Ok)
}
