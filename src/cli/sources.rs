//! Where references come from, and which platforms to keep: options shared by `ferry images`,
//! `ferry lock` and `ferry bundle`.

use std::path::PathBuf;

use clap::Args;

use ferry::inputs::Sources;
use ferry::inputs::manifests::ManifestOptions;
use ferry::platform::{PlatformFilter, RequestedPlatform};

use super::{Failure, output};

/// References and the places that list them.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Image references (`alpine:3.20`, `ghcr.io/org/app@sha256:…`).
    #[arg(value_name = "IMAGE")]
    pub images: Vec<String>,

    /// A file listing references, one a line (`#` comments); `-` reads stdin. Repeatable.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Kubernetes manifests (multi-document YAML or JSON, Lists, kubectl/helm/kustomize output):
    /// a file, or a folder read recursively; `-` reads stdin. Repeatable.
    #[arg(long = "from-manifests", value_name = "PATH")]
    pub manifests: Vec<PathBuf>,

    /// With --from-manifests/--from-cluster: also take any string field named `image` in kinds
    /// other than workloads (operators' custom resources).
    #[arg(long)]
    pub scan_all_image_fields: bool,

    /// The images of this node's containerd (through ctr; honours CONTAINERD_ADDRESS).
    #[arg(long)]
    pub from_containerd: bool,

    /// The containerd namespace for --from-containerd (`-n` as with ctr).
    #[arg(
        short = 'n',
        long,
        value_name = "NS",
        default_value = "k8s.io",
        requires = "from_containerd"
    )]
    pub namespace: String,

    /// The images of the cluster's pods and workload templates (kubeconfig, or the in-cluster
    /// service account).
    #[arg(long)]
    pub from_cluster: bool,

    /// With --from-cluster: only this Kubernetes namespace (default: all). No `-n`: that is
    /// containerd's --namespace, as with ctr.
    #[arg(long = "kube-namespace", value_name = "NS", requires = "from_cluster")]
    pub kube_namespace: Option<String>,

    /// Leave out references starting with this prefix (normalized: `busybox` means
    /// docker.io/library/busybox). Repeatable.
    #[arg(long, value_name = "PREFIX")]
    pub exclude: Vec<String>,
}

impl SourceArgs {
    /// The library's view of these options.
    pub fn sources(&self) -> Sources {
        Sources {
            images: self.images.clone(),
            files: self.files.clone(),
            manifests: self.manifests.clone(),
            manifest_options: ManifestOptions {
                scan_all_image_fields: self.scan_all_image_fields,
            },
            containerd_namespace: self.from_containerd.then(|| self.namespace.clone()),
            cluster: self.from_cluster,
            cluster_namespace: self.kube_namespace.clone(),
            excludes: self.exclude.clone(),
        }
    }

    /// Reads every source. Unreadable input is a usage error; an unreachable containerd or
    /// cluster is a failure.
    pub async fn collect(&self, what: &str) -> Result<Vec<ferry::reference::ImageRef>, Failure> {
        let (refs, charts) = self.collect_with_charts(what).await?;
        if !charts.is_empty() {
            output::warning(&format!(
                "left out {} chart line(s) of the list files: only ferry bundle and ferry lock take charts",
                charts.len()
            ));
        }
        Ok(refs)
    }

    /// [`SourceArgs::collect`], with the list files' chart lines (`REPO_URL/NAME:VERSION`).
    pub async fn collect_with_charts(
        &self,
        what: &str,
    ) -> Result<(Vec<ferry::reference::ImageRef>, Vec<String>), Failure> {
        let sources = self.sources();
        if sources.is_empty() {
            return Err(Failure::usage(format!("no images to {what}")).with_hint(
                "name images as arguments, or use -f FILE, --from-manifests PATH, \
                 --from-containerd or --from-cluster",
            ));
        }
        // The error's kind decides: a bad line or a missing list file is the user's to fix
        // (exit 2), an unreadable containerd or cluster a failure (exit 1).
        let collected = sources.collect().await.map_err(Failure::from)?;
        for note in &collected.notes {
            output::warning(note);
        }
        Ok((collected.references, collected.charts))
    }
}

/// Which platforms of multi-platform images to keep.
#[derive(Debug, Args)]
pub struct PlatformArgs {
    /// Keep this platform of multi-platform images (repeatable; `all`: every one). Default:
    /// this machine's. Checked against GOOS/GOARCH names before any registry is asked.
    #[arg(
        long = "platform",
        value_name = "OS/ARCH[/VARIANT]",
        conflicts_with = "all_platforms"
    )]
    pub platforms: Vec<RequestedPlatform>,

    /// Keep every platform, attestations included.
    #[arg(long)]
    pub all_platforms: bool,
}

impl PlatformArgs {
    /// The filter these options mean.
    pub fn filter(&self) -> PlatformFilter {
        let mut only = Vec::new();
        for p in &self.platforms {
            match p {
                RequestedPlatform::All => return PlatformFilter::All,
                RequestedPlatform::One(p) => only.push(p.clone()),
            }
        }
        if self.all_platforms {
            PlatformFilter::All
        } else if only.is_empty() {
            PlatformFilter::host()
        } else {
            PlatformFilter::Only(only)
        }
    }
}
