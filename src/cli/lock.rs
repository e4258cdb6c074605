//! `ferry lock`: resolve every reference to its digest without downloading blobs.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use ferry::error::Kind;
use ferry::fsutil::write_atomic;
use ferry::lock::LockFile;

use super::progress::{BundleProgress, Style};
use super::registry_args::RegistryArgs;
use super::sources::{PlatformArgs, SourceArgs};
use super::{Exit, Failure, output};

/// Resolve every reference to its digest (and an index's platform manifests) into a lock file,
/// downloading no blobs. `ferry bundle --lock FILE` then fetches exactly those digests.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry lock -f images.txt --platform linux/amd64 -o ferry.lock
  ferry lock -f images.txt -o ferry.lock --locked     # fails when a tag moved
A list file's chart lines (REPO_URL/NAME:VERSION) are locked too: each .tgz is fetched to make
its manifest, and its digest recorded.")]
pub struct LockArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    #[command(flatten)]
    pub platforms: PlatformArgs,
    /// Write the lock file here (default, or `-`: stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Check instead of writing: fail, naming the references, when the lock file would change.
    #[arg(long, requires = "output")]
    pub locked: bool,
    /// References resolved at once.
    #[arg(short, long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs `ferry lock`.
pub async fn run(args: LockArgs) -> Result<Exit, Failure> {
    let (refs, chart_lines) = args.sources.collect_with_charts("lock").await?;
    let charts = super::charts::parse(&chart_lines)?;
    let reporter = Arc::new(BundleProgress::new(Style::Lines, refs.len()));
    let registries = args.registry.registries(reporter)?;
    let mut outcome = ferry::lock::lock(
        &registries,
        &refs,
        &args.platforms.filter(),
        args.jobs.into(),
    )
    .await;
    super::charts::lock_into(&mut outcome, &registries, &charts).await;
    output::image_failures(outcome.failed.iter().map(|(r, e)| (r.as_str(), e)));
    if !outcome.failed.is_empty() {
        return Err(Failure::failed(
            Kind::Failed,
            format!(
                "{} of {} reference(s) could not be resolved; no lock file written",
                outcome.failed.len(),
                refs.len() + charts.len()
            ),
        ));
    }
    let to_stdout = args.output.as_ref().is_some_and(|p| p.as_os_str() == "-");
    if to_stdout && args.locked {
        return Err(Failure::usage(
            "--locked compares with a lock file: name it with -o FILE",
        ));
    }
    let Some(path) = args.output.as_ref().filter(|_| !to_stdout) else {
        super::stdout::write_bytes(&outcome.lock.to_json());
        return Ok(Exit::Ok);
    };
    if args.locked {
        let old = LockFile::read(path)?;
        let changes = ferry::lock::differences(&old, &outcome.lock);
        if !changes.is_empty() {
            return Err(Failure::failed(
                Kind::Failed,
                format!(
                    "{} is out of date:\n{}",
                    path.display(),
                    changes
                        .iter()
                        .map(|c| format!("  {c}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            )
            .with_hint("run without --locked to update it"));
        }
        eprintln!(
            "{} is up to date ({} images)",
            path.display(),
            outcome.lock.images.len()
        );
        return Ok(Exit::Ok);
    }
    if path.file_name().is_none() {
        return Err(Failure::usage("-o needs a file name"));
    }
    write_atomic(path, &outcome.lock.to_json(), None)?;
    eprintln!(
        "locked {} images in {}",
        outcome.lock.images.len(),
        path.display()
    );
    Ok(Exit::Ok)
}
