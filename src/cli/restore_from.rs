//! `ferry restore --from URL`: a served bundle (or a registry, with `--lock`) straight into this
//! node's runtime, pulled by digest; no tar on the node.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use ferry::registry::RetryPolicy;
use ferry::restore::remote::{Origin, restore_from};

use super::restore::{RestoreArgs, options, pick_runtime, print_outcomes, report_json};
use super::{Exit, Failure, output};

/// Where `restore --from` pulls from, and how patiently.
#[derive(Debug, Args)]
pub struct FromArgs {
    /// Pull the images from a running `ferry serve` (http://HOST:PORT) instead of a bundle on
    /// this node: the list is the served bundle's (GET /ferry/v1/index.json and /ferry/v1/lock),
    /// each image pulled by digest and named as the bundle names it.
    #[arg(long, value_name = "URL", conflicts_with_all = ["bundle", "replace", "verify", "key", "list_pinned"])]
    pub from: Option<String>,
    /// With --from: take the image list from this ferry.lock, pulling from any registry that
    /// holds the images under `ferry push`'s names (URL/REPOSITORY@DIGEST).
    #[arg(long, value_name = "FILE", requires = "from")]
    pub lock: Option<PathBuf>,
    /// With --from https://: do not verify the server's certificate.
    #[arg(long, requires = "from")]
    pub insecure: bool,
    /// With --from: attempts after the first before an image fails.
    #[arg(long, default_value_t = 5, requires = "from")]
    pub retries: u32,
    /// With --from: how long an image's first attempt may take; it doubles with each retry,
    /// up to 5 min (as image-prefetcher does). A cut pull resumes from what the runtime kept.
    #[arg(long, default_value = "30s", value_parser = super::registry_args::positive_duration, requires = "from")]
    pub attempt_timeout: Duration,
    /// With --from: give up on everything still running after this long (e.g. `1h`).
    #[arg(long, value_parser = super::registry_args::positive_duration, requires = "from")]
    pub timeout: Option<Duration>,
}

impl FromArgs {
    /// The registry client's retry settings, with these limits.
    fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.retries,
            attempt_timeout: self.attempt_timeout,
            deadline: self.timeout.map(|t| Instant::now() + t),
            base_delay: super::registry_args::retry_base_delay(),
            ..RetryPolicy::default()
        }
    }
}

/// Runs `ferry restore --from URL`.
pub fn run(args: &RestoreArgs, url: &str) -> Result<Exit, Failure> {
    let from = &args.from;
    let origin = Origin::parse(url, from.insecure, from.retry())?;
    let runtime = pick_runtime(args)?;
    let bundle = origin.list(from.lock.as_deref())?;
    let options = options(args, runtime, Some(bundle.id.clone()));
    let outcomes = restore_from(&origin, &bundle, &options)?;
    if args.json {
        output::json(&report_json(&origin.shown(), &options, &outcomes));
    }
    print_outcomes(&options, &outcomes, args.progress.quiet);
    Ok(if outcomes.iter().any(|o| o.error.is_some()) {
        Exit::Failed
    } else {
        Exit::Ok
    })
}
