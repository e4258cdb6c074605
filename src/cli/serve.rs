//! `ferry serve`: a bundle as a read-only registry, and the node files that point at it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;

use ferry::error::{Kind, ResultExt};
use ferry::serve::{self, Catalog, Event, Listen, Tls};

use super::{Exit, Failure, output};

/// Serve a bundle as a read-only registry (the OCI distribution API's pull side).
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry serve ./bundle --addr 127.0.0.1:5050 -v
  ferry serve /preload --hosts-dir /etc/containerd/certs.d      # containerd nodes
  ferry serve images.tar.zst --registries-conf /etc/containers/registries.conf.d/50-ferry.conf

Names: /v2/REPO/... (the source registry dropped), with ?ns=SOURCE (containerd's mirror
parameter) or /v2/SOURCE/REPO/... (a port written _PORT) when two sources have the same REPO.
SIGTERM stops it cleanly with exit 0 (Ctrl-C: 130).")]
pub struct ServeArgs {
    /// The bundle: a folder (a read-only mount works) or an oci-archive, `.tar` or `.tar.zst`
    /// (served in place, never extracted; a seekable `.tar.zst` answers any blob or range by
    /// decompressing at most one frame it does not send).
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:5050")]
    pub addr: SocketAddr,

    /// Serve HTTPS with this PEM certificate (chain).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Write containerd's DIR/<registry>/hosts.toml for every source registry of the bundle,
    /// pointing at this server first (e.g. /etc/containerd/certs.d).
    #[arg(long, value_name = "DIR")]
    pub hosts_dir: Option<PathBuf>,

    /// Write a CRI-O/podman registries.conf drop-in mirroring every source registry here
    /// (e.g. /etc/containers/registries.conf.d/50-ferry-mirror.conf).
    #[arg(long, value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,

    /// containerd's config, checked with --hosts-dir for a CRI registry config_path.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/containerd/config.toml"
    )]
    pub containerd_config: PathBuf,
}

/// Prints the server's events.
struct Printer {
    verbose: bool,
}

impl serve::Reporter for Printer {
    fn event(&self, event: &Event) {
        match event {
            Event::Listening { .. } => {}
            Event::Request {
                method,
                path,
                status,
                bytes,
                complete,
                elapsed,
            } if self.verbose => {
                let cut = if *complete { "" } else { " (cut)" };
                // The method and path come from the client: shown escaped.
                output::line(&format!(
                    "{method} {path} {status} {}{cut} {:.1} ms",
                    output::bytes(*bytes),
                    elapsed.as_secs_f64() * 1000.0
                ));
            }
            Event::Request { .. } => {}
            Event::BlobRefused { digest, reason } => {
                output::warning(&format!("{digest} is not served: {reason}"));
            }
            Event::ConnectionError { reason } if self.verbose => {
                output::line(&format!("connection: {reason}"));
            }
            Event::ConnectionError { .. } => {}
        }
    }
}

/// Runs `ferry serve`.
pub async fn run(args: ServeArgs) -> Result<Exit, Failure> {
    let source = super::source_arg::open_bundle(&args.bundle).map_err(|f| Failure::local(f.0))?;
    let src = source.clone();
    let catalog = tokio::task::spawn_blocking(move || Catalog::build(&*src))
        .await
        .context(Kind::Failed, || "reading the bundle's catalog")?
        .map_err(Failure::local)?;
    for skipped in &catalog.skipped {
        output::warning(&format!("not served: {skipped}"));
    }
    if catalog.repos.is_empty() {
        return Err(Failure::usage(format!(
            "{}: no image to serve (index.json names none that is complete)",
            args.bundle.display()
        )));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Tls {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let listen = Listen {
        addr: args.addr,
        tls: tls.clone(),
    };
    let bound = serve::bind(&listen).await.map_err(Failure::local)?;
    let addr = bound.local_addr().unwrap_or(args.addr);
    let origin = serve::node::origin(addr, tls.is_some());
    write_node_files(&args, &catalog, &origin, tls.as_ref())?;
    let images: usize = catalog.repos.values().map(|r| r.tags.len()).sum();
    eprintln!(
        "serving {} repositories ({images} tags) of {} at {origin}",
        catalog.repos.len(),
        args.bundle.display()
    );
    let reporter: Arc<dyn serve::Reporter> = Arc::new(Printer {
        // The global -v: every request (method, path, status, bytes, time) on stderr.
        verbose: super::log::enabled(),
    });
    let state = Arc::new(serve::State::new(source, catalog, reporter.clone()));
    let interrupted = Arc::new(AtomicBool::new(false));
    serve::serve(state, bound, reporter, stop_signal(interrupted.clone())).await;
    eprintln!("stopped");
    Ok(if interrupted.load(Ordering::SeqCst) {
        Exit::Interrupted
    } else {
        Exit::Ok
    })
}

/// Completes on SIGTERM (a service stopped: exit 0) or Ctrl-C (exit 130).
async fn stop_signal(interrupted: Arc<AtomicBool>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => interrupted.store(true, Ordering::SeqCst),
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    eprintln!("stopping: letting requests in flight finish");
}

fn write_node_files(
    args: &ServeArgs,
    catalog: &Catalog,
    origin: &str,
    tls: Option<&Tls>,
) -> Result<(), Failure> {
    let registries = catalog.registries();
    if let Some(dir) = &args.hosts_dir {
        let ca = tls.map(|t| t.cert.as_path());
        let files =
            serve::node::write_hosts_dir(dir, &registries, origin, ca).map_err(Failure::local)?;
        for f in files {
            eprintln!("wrote {}", f.display());
        }
        if let Some((w, hint)) = serve::node::containerd_warning(&args.containerd_config, dir) {
            output::warning(&w);
            if let Some(h) = hint {
                output::hint(&h);
            }
        }
    }
    if let Some(file) = &args.registries_conf {
        serve::node::write_registries_conf(file, &registries, origin).map_err(Failure::local)?;
        eprintln!("wrote {}", file.display());
    }
    Ok(())
}
