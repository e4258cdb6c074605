//! `ferry snapshot`: a CSI VolumeSnapshot of the PVC a bundle was written to, waited for until
//! it is ready, and the storage system's handle for it (what cluster-api's `fromSnapshot` or an
//! IaaS image import needs).

use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use crate::kube_client::{self, KubeConfigError};

const GROUP: &str = "snapshot.storage.k8s.io";
const VERSION: &str = "v1";

/// What to snapshot, and how long to wait for it.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    /// The PersistentVolumeClaim holding the bundle.
    pub pvc: String,
    /// The VolumeSnapshotClass to use.
    pub class: String,
    /// The VolumeSnapshot's name.
    pub name: String,
    /// The namespace (default: the kubeconfig's, or the pod's).
    pub namespace: Option<String>,
    /// How long to wait until the snapshot is ready to use.
    pub timeout: Duration,
    /// How often to look.
    pub poll: Duration,
}

/// A snapshot ready to use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotResult {
    /// The VolumeSnapshot's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The PVC it was taken of.
    pub pvc: String,
    /// The bound VolumeSnapshotContent.
    pub content: String,
    /// The storage system's handle (an EBS snapshot ID, a GCE snapshot path...).
    #[serde(rename = "snapshotHandle")]
    pub snapshot_handle: String,
    /// The size a volume restored from it needs, as the snapshot reports it.
    #[serde(rename = "restoreSize")]
    pub restore_size: Option<String>,
    /// True when a snapshot of that name and PVC existed already and was reused.
    pub reused: bool,
}

/// What the wait is doing, for the caller to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotProgress {
    /// The VolumeSnapshot was created.
    Created,
    /// One of that name, of the same PVC, existed already.
    Reused,
    /// Not ready yet; the snapshot's own error message when it reports one.
    Waiting(Option<String>),
}

/// Why no snapshot handle could be given.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// No usable cluster configuration.
    #[error(transparent)]
    Config(#[from] KubeConfigError),
    /// A name that Kubernetes would refuse.
    #[error("{what} {value:?} is not a valid Kubernetes name")]
    InvalidName {
        /// Which option.
        what: &'static str,
        /// Its value.
        value: String,
    },
    /// The PVC does not exist.
    #[error("PersistentVolumeClaim {namespace}/{pvc} not found")]
    PvcNotFound {
        /// Namespace.
        namespace: String,
        /// PVC name.
        pvc: String,
    },
    /// The snapshot API is not served.
    #[error("the cluster has no VolumeSnapshot API ({GROUP}/{VERSION})")]
    ApiMissing,
    /// The account may not do something.
    #[error("not allowed to {verb} {resource} in namespace {namespace}: {message}")]
    Forbidden {
        /// get, create...
        verb: &'static str,
        /// The resource.
        resource: &'static str,
        /// Namespace.
        namespace: String,
        /// The API server's message.
        message: String,
    },
    /// A snapshot of that name exists and is of another PVC.
    #[error("VolumeSnapshot {namespace}/{name} already exists and is of PVC {other:?}, not {pvc}")]
    OtherSnapshot {
        /// Namespace.
        namespace: String,
        /// Snapshot name.
        name: String,
        /// The PVC asked for.
        pvc: String,
        /// The PVC the existing one is of.
        other: String,
    },
    /// Not ready in time.
    #[error(
        "VolumeSnapshot {namespace}/{name} was not ready to use after {waited_secs} s{}",
        .message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    Timeout {
        /// Namespace.
        namespace: String,
        /// Snapshot name.
        name: String,
        /// How long ferry waited, in seconds.
        waited_secs: u64,
        /// The snapshot's last error message.
        message: Option<String>,
    },
    /// Ready, but with no handle to give.
    #[error("VolumeSnapshotContent {content} has no status.snapshotHandle")]
    NoHandle {
        /// The content's name.
        content: String,
    },
    /// The API server did not answer (refused, unresolvable, TLS): `detail` is the cause
    /// below the client's own wording ("client error (Connect)" says nothing to a user).
    #[error("{action}: the Kubernetes API server did not answer ({detail})")]
    Unreachable {
        /// What ferry was doing.
        action: String,
        /// The causes, outermost first, joined.
        detail: String,
    },
    /// Any other API failure.
    #[error("{action}: {source}")]
    Api {
        /// What ferry was doing.
        action: String,
        /// The client's error.
        source: kube::Error,
    },
}

impl SnapshotError {
    /// True for errors in what the user gave or configured (exit 2), not in the cluster.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SnapshotError::Config(_) | SnapshotError::InvalidName { .. }
        )
    }
}

/// A DNS-1123 subdomain, as Kubernetes requires for these object names.
fn valid_name(s: &str) -> bool {
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && ok(b[0])
        && ok(b[b.len() - 1])
        && b.iter().all(|&c| ok(c) || c == b'-' || c == b'.')
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, kind), plural)
}

fn api_error(action: String) -> impl FnOnce(kube::Error) -> SnapshotError {
    move |source| match &source {
        kube::Error::Service(inner) => SnapshotError::Unreachable {
            action,
            detail: causes(inner.source()),
        },
        kube::Error::HyperError(inner) => SnapshotError::Unreachable {
            action,
            detail: causes(Some(inner)),
        },
        _ => SnapshotError::Api { action, source },
    }
}

/// An error chain as one line: "tcp connect error: Connection refused (os error 111)".
fn causes(mut next: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut parts = Vec::new();
    while let Some(e) = next {
        parts.push(e.to_string());
        next = e.source();
    }
    match parts.is_empty() {
        true => "no cause given".into(),
        false => parts.join(": "),
    }
}

fn forbidden(
    verb: &'static str,
    resource: &'static str,
    namespace: &str,
    e: &kube::Error,
) -> Option<SnapshotError> {
    match e {
        kube::Error::Api(s) if s.code == 403 => Some(SnapshotError::Forbidden {
            verb,
            resource,
            namespace: namespace.to_owned(),
            message: s.message.clone(),
        }),
        _ => None,
    }
}

fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Creates the snapshot (or reuses one of the same name and PVC), waits until it is ready to
/// use, and returns its handle. `progress` is told what happens.
pub async fn snapshot(
    req: &SnapshotRequest,
    mut progress: impl FnMut(SnapshotProgress),
) -> Result<SnapshotResult, SnapshotError> {
    for (what, value) in [
        ("--pvc", &req.pvc),
        ("--class", &req.class),
        ("--name", &req.name),
    ] {
        if !valid_name(value) {
            return Err(SnapshotError::InvalidName {
                what,
                value: value.clone(),
            });
        }
    }
    if let Some(ns) = &req.namespace
        && (!valid_name(ns) || ns.contains('.') || ns.len() > 63)
    {
        return Err(SnapshotError::InvalidName {
            what: "--namespace",
            value: ns.clone(),
        });
    }
    let config = kube_client::config().await?;
    let namespace = req
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).map_err(KubeConfigError::Client)?;
    check_pvc(&client, &namespace, &req.pvc).await?;
    let snapshots: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &namespace,
        &resource("VolumeSnapshot", "volumesnapshots"),
    );
    let reused = create_or_reuse(&snapshots, req, &namespace).await?;
    progress(if reused {
        SnapshotProgress::Reused
    } else {
        SnapshotProgress::Created
    });
    let ready = wait_ready(&snapshots, req, &namespace, &mut progress).await?;
    let content = ready
        .pointer("/status/boundVolumeSnapshotContentName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let contents: Api<DynamicObject> = Api::all_with(
        client,
        &resource("VolumeSnapshotContent", "volumesnapshotcontents"),
    );
    let object = contents.get(&content).await.map_err(|e| {
        forbidden("get", "volumesnapshotcontents", "(cluster scope)", &e)
            .unwrap_or_else(|| api_error(format!("cannot read VolumeSnapshotContent {content}"))(e))
    })?;
    let handle = object
        .data
        .pointer("/status/snapshotHandle")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| SnapshotError::NoHandle {
            content: content.clone(),
        })?;
    Ok(SnapshotResult {
        name: req.name.clone(),
        namespace,
        pvc: req.pvc.clone(),
        content,
        snapshot_handle: handle.to_owned(),
        restore_size: ready.pointer("/status/restoreSize").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        reused,
    })
}

async fn check_pvc(client: &kube::Client, namespace: &str, pvc: &str) -> Result<(), SnapshotError> {
    let api: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client.clone(), namespace);
    match api.get(pvc).await {
        Ok(_) => Ok(()),
        Err(e) if code(&e) == Some(404) => Err(SnapshotError::PvcNotFound {
            namespace: namespace.to_owned(),
            pvc: pvc.to_owned(),
        }),
        Err(e) => Err(
            forbidden("get", "persistentvolumeclaims", namespace, &e).unwrap_or_else(|| {
                api_error(format!(
                    "cannot read PersistentVolumeClaim {namespace}/{pvc}"
                ))(e)
            }),
        ),
    }
}

/// Creates the VolumeSnapshot; returns true when one of that name and PVC was there already.
async fn create_or_reuse(
    api: &Api<DynamicObject>,
    req: &SnapshotRequest,
    namespace: &str,
) -> Result<bool, SnapshotError> {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": req.name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "ferry"},
        },
        "spec": {
            "volumeSnapshotClassName": req.class,
            "source": {"persistentVolumeClaimName": req.pvc},
        },
    }))
    .expect("a VolumeSnapshot object deserializes");
    let err = match api.create(&PostParams::default(), &object).await {
        Ok(_) => return Ok(false),
        Err(e) => e,
    };
    match code(&err) {
        // A POST to a collection is 404 only when the resource type is not served.
        Some(404) => Err(SnapshotError::ApiMissing),
        Some(409) => {
            let existing = api.get(&req.name).await.map_err(api_error(format!(
                "cannot read VolumeSnapshot {namespace}/{}",
                req.name
            )))?;
            let other = existing
                .data
                .pointer("/spec/source/persistentVolumeClaimName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if other == req.pvc {
                Ok(true)
            } else {
                Err(SnapshotError::OtherSnapshot {
                    namespace: namespace.to_owned(),
                    name: req.name.clone(),
                    pvc: req.pvc.clone(),
                    other: other.to_owned(),
                })
            }
        }
        _ => Err(
            forbidden("create", "volumesnapshots", namespace, &err).unwrap_or_else(|| {
                api_error(format!(
                    "cannot create VolumeSnapshot {namespace}/{}",
                    req.name
                ))(err)
            }),
        ),
    }
}

/// Polls the snapshot until `status.readyToUse` (a watch would save little for a wait of
/// seconds to minutes, and polling survives API server restarts without resync logic).
async fn wait_ready(
    api: &Api<DynamicObject>,
    req: &SnapshotRequest,
    namespace: &str,
    progress: &mut impl FnMut(SnapshotProgress),
) -> Result<Value, SnapshotError> {
    let started = Instant::now();
    let mut last_message = None;
    loop {
        let object = api.get(&req.name).await.map_err(|e| {
            forbidden("get", "volumesnapshots", namespace, &e).unwrap_or_else(|| {
                api_error(format!(
                    "cannot read VolumeSnapshot {namespace}/{}",
                    req.name
                ))(e)
            })
        })?;
        let data = object.data;
        let ready = data.pointer("/status/readyToUse").and_then(Value::as_bool) == Some(true);
        let bound = data
            .pointer("/status/boundVolumeSnapshotContentName")
            .and_then(Value::as_str)
            .is_some_and(|c| !c.is_empty());
        if ready && bound {
            return Ok(data);
        }
        let message = data
            .pointer("/status/error/message")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if message.is_some() {
            last_message.clone_from(&message);
        }
        progress(SnapshotProgress::Waiting(message));
        if started.elapsed() + req.poll > req.timeout {
            return Err(SnapshotError::Timeout {
                namespace: namespace.to_owned(),
                name: req.name.clone(),
                waited_secs: started.elapsed().as_secs(),
                message: last_message,
            });
        }
        tokio::time::sleep(req.poll).await;
    }
}

impl crate::error::Diagnostic for SnapshotError {
    fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            SnapshotError::Config(e) => e.kind(),
            SnapshotError::InvalidName { .. } => Kind::Usage,
            SnapshotError::PvcNotFound { .. } => Kind::Failed,
            SnapshotError::Forbidden { .. } => Kind::Denied,
            SnapshotError::Timeout { .. } => Kind::Timeout,
            SnapshotError::ApiMissing
            | SnapshotError::OtherSnapshot { .. }
            | SnapshotError::NoHandle { .. }
            | SnapshotError::Unreachable { .. }
            | SnapshotError::Api { .. } => Kind::Failed,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            SnapshotError::Config(e) => return e.hint(),
            SnapshotError::InvalidName { .. } => "lowercase letters, digits, '-' and '.', \
                starting and ending with a letter or digit, 253 characters at most"
                .into(),
            SnapshotError::PvcNotFound { namespace, .. } => {
                format!("check --pvc and --namespace (kubectl get pvc -n {namespace})")
            }
            SnapshotError::ApiMissing => "install the CSI external-snapshotter's CRDs and \
                controller, and a CSI driver that supports snapshots"
                .into(),
            SnapshotError::Forbidden { verb, resource, .. } => {
                format!(
                    "the account needs {verb} on {resource} (a Role or ClusterRole bound to it)"
                )
            }
            SnapshotError::OtherSnapshot { .. } => "choose another --name".into(),
            SnapshotError::Timeout {
                namespace, name, ..
            } => format!(
                "kubectl describe volumesnapshot -n {namespace} {name}; a larger --timeout if \
                 the storage is slow"
            ),
            SnapshotError::Unreachable { .. } => "check the server address in the kubeconfig \
                (`kubectl cluster-info`) and that this machine reaches it"
                .into(),
            SnapshotError::NoHandle { .. } | SnapshotError::Api { .. } => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_names() {
        assert!(valid_name("ferry-bundle"));
        assert!(valid_name("a.b-c"));
        assert!(!valid_name("Ferry"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("x-"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"a".repeat(254)));
    }
}
