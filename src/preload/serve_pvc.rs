//! `--serve-from-pvc CLAIM`: `ferry serve` in the cluster, on the PVC that holds the bundle
//! mounted read-only, behind a Service the preload pods pull from.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, PersistentVolumeClaimVolumeSource, PodSecurityContext,
    PodSpec, Probe, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Flavor, PreloadOptions, SERVE_PORT, meta, pod_template, unprivileged};

/// The server's Deployment and Service name.
pub fn server_name(name: &str) -> String {
    format!("{name}-serve")
}

fn selector(o: &PreloadOptions) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "ferry".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), o.name.clone()),
        ("app.kubernetes.io/component".to_owned(), "serve".to_owned()),
    ])
}

/// `ferry serve /bundle` as a non-root, read-only container.
pub fn deployment(o: &PreloadOptions, claim: &str) -> Deployment {
    let port = i32::from(SERVE_PORT);
    let container = Container {
        name: "serve".into(),
        image: Some(o.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(
            [
                "ferry",
                "serve",
                "/bundle",
                "--addr",
                &format!("0.0.0.0:{port}"),
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some("registry".into()),
            container_port: port,
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/v2/".into()),
                port: IntOrString::Int(port),
                ..HTTPGetAction::default()
            }),
            ..Probe::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "bundle".into(),
            mount_path: "/bundle".into(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        security_context: Some(unprivileged(None)),
        ..Container::default()
    };
    // OpenShift's restricted SCC assigns the user; elsewhere a fixed non-root one.
    let pod_security = (o.flavor == Flavor::Vanilla).then(|| PodSecurityContext {
        run_as_user: Some(65532),
        run_as_group: Some(65532),
        ..PodSecurityContext::default()
    });
    Deployment {
        metadata: meta(&server_name(&o.name), o, "serve"),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector(o)),
                match_expressions: None,
            },
            template: pod_template(
                o,
                "serve",
                PodSpec {
                    security_context: pod_security,
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "bundle".into(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: claim.to_owned(),
                            read_only: Some(true),
                        }),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                },
            ),
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The Service the preload pods reach the server by.
pub fn service(o: &PreloadOptions) -> Service {
    Service {
        metadata: meta(&server_name(&o.name), o, "serve"),
        spec: Some(ServiceSpec {
            selector: Some(selector(o)),
            ports: Some(vec![ServicePort {
                name: Some("registry".into()),
                port: i32::from(SERVE_PORT),
                target_port: Some(IntOrString::String("registry".into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}
