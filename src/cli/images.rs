//! `ferry images`: the references `ferry bundle` would fetch from the same sources.

use clap::Args;

use super::sources::SourceArgs;
use super::{Exit, Failure, output};

/// Print the normalized, de-duplicated, sorted references the same sources give `ferry bundle`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  helm template my-chart | ferry images --from-manifests -
  ferry images --from-cluster --exclude registry.example/ferry
  ferry images --from-containerd --namespace k8s.io --json")]
pub struct ImagesArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Print JSON on stdout: `{"version": 1, "references": [...]}`.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ferry images`.
pub async fn run(args: ImagesArgs) -> Result<Exit, Failure> {
    let refs = args.sources.collect("list").await?;
    if args.json {
        output::json(&serde_json::json!({
            "version": 1,
            "references": refs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }));
    } else {
        for r in &refs {
            println!("{r}");
        }
    }
    Ok(Exit::Ok)
}
