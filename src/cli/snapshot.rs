//! `ferry snapshot`: a VolumeSnapshot of the PVC holding a bundle, and its storage handle.

use std::time::Duration;

use clap::Args;

use ferry::snapshot::{SnapshotProgress, SnapshotRequest, snapshot};

use super::stdout::outln;
use super::{Exit, Failure, output};

/// Snapshot the PVC holding a bundle and print the snapshot's storage handle.
///
/// Creates a CSI VolumeSnapshot of the PVC, waits until it is ready to use, and prints the
/// storage system's snapshot handle on stdout (what cluster-api's `fromSnapshot` or an IaaS
/// image import takes). Uses the kubeconfig, or the pod's service account in a cluster.
/// Re-running with the same --name reuses the snapshot.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry snapshot --pvc ferry-bundle --class csi-aws-vsc --name preload-2026-11 -n preload
  ferry snapshot --pvc ferry-bundle --class csi-hostpath-snapclass --name seed --json")]
pub struct SnapshotArgs {
    /// The PersistentVolumeClaim holding the bundle.
    #[arg(long)]
    pub pvc: String,
    /// The VolumeSnapshotClass to use.
    #[arg(long)]
    pub class: String,
    /// The VolumeSnapshot's name.
    #[arg(long)]
    pub name: String,
    /// The namespace of the PVC (default: the kubeconfig's, or the pod's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// How long to wait for the snapshot to be ready to use (`90s`, `10m`).
    #[arg(long, default_value = "10m", value_parser = super::registry_args::positive_duration)]
    pub timeout: Duration,
    /// Print JSON on stdout instead of the bare handle.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ferry snapshot`.
pub async fn run(args: SnapshotArgs) -> Result<Exit, Failure> {
    let request = SnapshotRequest {
        pvc: args.pvc,
        class: args.class,
        name: args.name,
        namespace: args.namespace,
        timeout: args.timeout,
        poll: Duration::from_secs(1),
    };
    let mut last_message = None;
    let result = snapshot(&request, |p| match p {
        SnapshotProgress::Created => eprintln!("created VolumeSnapshot {}", request.name),
        SnapshotProgress::Reused => {
            eprintln!(
                "VolumeSnapshot {} exists already for this PVC; waiting for it",
                request.name
            )
        }
        SnapshotProgress::Waiting(message) => {
            if message.is_some() && message != last_message {
                output::warning(&format!(
                    "{}: {}",
                    request.name,
                    message.clone().unwrap_or_default()
                ));
                last_message = message;
            }
        }
    })
    .await?;
    if args.json {
        let mut value = serde_json::to_value(&result).expect("a result serializes");
        value["version"] = 1.into();
        output::json(&value);
    } else {
        eprintln!(
            "VolumeSnapshot {}/{} is ready (content {})",
            result.namespace, result.name, result.content
        );
        outln!("{}", result.snapshot_handle);
    }
    Ok(Exit::Ok)
}
