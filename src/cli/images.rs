//! `ferry images`: the references `ferry bundle` would fetch from the same sources.

use std::sync::Arc;

use clap::Args;

use ferry::chart::images::{ChartImages, chart_images};
use ferry::error::{Error, Kind};

use super::registry_args::RegistryArgs;
use super::sources::SourceArgs;
use super::stdout::outln;
use super::{Exit, Failure, output};

/// Print the normalized, de-duplicated, sorted references the same sources give `ferry bundle`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  helm template my-chart | ferry images --from-manifests -
  ferry images --from-chart ./nginx-15.4.2.tgz
  ferry images --from-chart oci://registry.example/charts/nginx:15.4.2
  ferry images --from-cluster --exclude registry.example/ferry
  ferry images --from-containerd --namespace k8s.io --json")]
pub struct ImagesArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// The images a Helm chart names without rendering it: its `artifacthub.io/images`
    /// annotation and its values.yaml defaults (`image:` strings and registry/repository/tag
    /// maps). A chart .tgz, or a chart in a registry (`oci://` optional). Repeatable.
    #[arg(long, value_name = "CHART.tgz|REF")]
    pub from_chart: Vec<String>,
    /// Print JSON on stdout: `{"version": 1, "references": [...]}`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs `ferry images`.
pub async fn run(args: ImagesArgs) -> Result<Exit, Failure> {
    let mut refs = if args.from_chart.is_empty() || !args.sources.sources().is_empty() {
        args.sources.collect("list").await?
    } else {
        Vec::new()
    };
    for chart in &args.from_chart {
        let found = from_chart(&args, chart).await?;
        for note in &found.notes {
            output::note(note);
        }
        refs.extend(found.references.into_iter().map(|(r, _)| r));
    }
    if !args.from_chart.is_empty() {
        output::hint(
            "templates can compute other images; for every one: \
             `helm template NAME CHART | ferry images --from-manifests -`",
        );
    }
    refs.sort();
    refs.dedup();
    if args.json {
        output::json(&serde_json::json!({
            "version": 1,
            "references": refs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }));
    } else {
        for r in &refs {
            outln!("{r}");
        }
    }
    Ok(Exit::Ok)
}

/// The images of one chart: a file when `chart` names one, else a registry reference.
async fn from_chart(args: &ImagesArgs, chart: &str) -> Result<ChartImages, Failure> {
    let path = std::path::Path::new(chart);
    let tgz = if path.is_file() {
        read_chart_file(path)?
    } else {
        let reference: ferry::reference::ImageRef =
            chart.trim_start_matches("oci://").parse().map_err(|e| {
                Failure::from(Error::context(
                    Kind::Usage,
                    format!(
                        "--from-chart {}: no such file, nor a chart reference",
                        ferry::untrusted::shown(chart)
                    ),
                    e,
                ))
            })?;
        let registries = args.registry.registries(Arc::new(ferry::report::Silent))?;
        ferry::chart::fetch_oci_chart(&registries, &reference)
            .await
            .map_err(Failure::from)?
            .to_vec()
    };
    chart_images(&tgz).map_err(|why| {
        Failure::from(Error::msg(
            Kind::Usage,
            format!("--from-chart {}: {why}", ferry::untrusted::shown(chart)),
        ))
    })
}

/// A chart archive given as a file, at most 64 MiB.
fn read_chart_file(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    const LIMIT: u64 = 64 * 1024 * 1024;
    let failed = |why: String| {
        Failure::from(Error::msg(
            Kind::Usage,
            format!("--from-chart {}: {why}", path.display()),
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| failed(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failed(e.to_string()))?;
    if bytes.len() as u64 > LIMIT {
        return Err(failed(format!("larger than {LIMIT} bytes")));
    }
    Ok(bytes)
}
