//! The images a cluster runs or may run: pods, and the pod templates of every workload
//! controller (those scaled to zero too) and CronJob, through the Kubernetes API (kube).

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

use super::InputError;
use super::manifests::{Found, ManifestOptions, images_in_object};
use crate::reference::ImageRef;

/// The API resources that hold pod specs: (group, version, kind, plural).
const RESOURCES: &[(&str, &str, &str, &str)] = &[
    ("", "v1", "Pod", "pods"),
    ("", "v1", "ReplicationController", "replicationcontrollers"),
    ("", "v1", "PodTemplate", "podtemplates"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("batch", "v1", "Job", "jobs"),
    ("batch", "v1", "CronJob", "cronjobs"),
];

fn source_error(reason: String, hint: Option<String>) -> InputError {
    InputError::Source {
        source_name: "--from-cluster".into(),
        // Client errors quote the API server's URL, which a kubeconfig may give with a password.
        reason: crate::redact::redact(&reason),
        hint,
    }
}

/// Every object of a kind, page by page.
async fn list_all(
    client: &kube::Client,
    namespace: Option<&str>,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Result<Vec<DynamicObject>, kube::Error> {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let mut params = ListParams::default().limit(500);
    let mut out = Vec::new();
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// A ReplicaSet a Deployment controls and has scaled to zero: a past revision.
fn is_old_revision(object: &DynamicObject) -> bool {
    let owned_by_deployment = object
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Deployment" && o.controller == Some(true));
    let replicas = object
        .data
        .pointer("/spec/replicas")
        .and_then(serde_json::Value::as_u64);
    owned_by_deployment && replicas == Some(0)
}

/// Lists every image in the cluster, or in `namespace`.
pub async fn list(
    namespace: Option<&str>,
    options: ManifestOptions,
) -> Result<Vec<ImageRef>, InputError> {
    let client = crate::kube_client::client().await.map_err(|e| {
        use crate::error::Diagnostic;
        source_error(e.to_string(), e.hint())
    })?;
    let mut out = Found::default();
    let scope = namespace.map_or_else(|| "all namespaces".to_owned(), |n| format!("namespace {n}"));
    for (group, version, kind, plural) in RESOURCES {
        let mut objects = match list_all(&client, namespace, group, version, kind, plural).await {
            // CronJob was batch/v1beta1 before Kubernetes 1.21.
            Err(kube::Error::Api(e)) if e.code == 404 && *kind == "CronJob" => {
                list_all(&client, namespace, "batch", "v1beta1", kind, plural).await
            }
            other => other,
        }
        .map_err(|e| {
            source_error(
                format!("cannot list {plural} in {scope}: {e}"),
                Some(format!("the account in use needs get/list on {plural}")),
            )
        })?;
        // A Deployment keeps its old ReplicaSets at zero replicas (revisionHistoryLimit): their
        // images are past versions, not what the cluster runs or will run.
        objects.retain(|o| !(*kind == "ReplicaSet" && is_old_revision(o)));
        for object in &objects {
            let origin = format!(
                "{plural} in {}",
                object
                    .metadata
                    .namespace
                    .as_deref()
                    .unwrap_or("the cluster")
            );
            let value = serde_json::to_value(object).expect("API objects serialize");
            images_in_object(kind, &value, options, &origin, &mut out)?;
        }
    }
    // Only pod-spec kinds are listed: nothing is left unscanned here.
    Ok(out.images)
}
