//! `ferry serve`: a bundle as a read-only registry, and the node files that point at it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;

use ferry::error::{Kind, ResultExt};
use ferry::node::mirror_config::{Mirror, parse_mirror};
use ferry::serve::node::Holder;
use ferry::serve::{self, Event, Limits, Listen, Live, Pool, Snapshot, Tls};

use super::stdout::outln;
use super::{Exit, Failure, output};

/// Serve a bundle as a read-only registry (the OCI distribution API's pull side).
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ferry serve ./bundle --addr 127.0.0.1:5050 -v
  ferry serve /preload --hosts-dir /etc/containerd/certs.d      # containerd nodes
  ferry serve images.tar.zst --registries-conf /etc/containers/registries.conf.d/50-ferry.conf
  ferry serve /preload --addr 0.0.0.0:5050 --hosts-dir /etc/containerd/certs.d \\
      --prefer-mirror http://127.0.0.1:30020 --prefer-mirror http://127.0.0.1:30021   # Spegel first

Names: /v2/REPO/... (the source registry dropped), with ?ns=SOURCE (containerd's mirror
parameter) or /v2/SOURCE/REPO/... (a port written _PORT) when two sources have the same REPO.
After `ferry apply` or `ferry bundle` changes the bundle (or a new archive is renamed over the
served one), the server answers from the new state: no restart.
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

    /// Connections served at once; more wait in the listen queue until one closes. Lowered to
    /// what the limit on open files allows (each connection may also hold a blob open).
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// A client must send a request's headers (and finish a TLS handshake) within this; it is
    /// also how long a keep-alive connection waits for its next request.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// A connection on which no byte moves for this long, while the server owes it nothing, is
    /// closed: a client that stopped reading its download, or went silent.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Write containerd's DIR/<registry>/hosts.toml for every source registry of the bundle,
    /// pointing at this server (after any --prefer-mirror) (e.g. /etc/containerd/certs.d).
    #[arg(long, value_name = "DIR")]
    pub hosts_dir: Option<PathBuf>,

    /// Write a CRI-O/podman registries.conf drop-in mirroring every source registry here
    /// (e.g. /etc/containers/registries.conf.d/50-ferry-mirror.conf).
    #[arg(long, value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,

    /// A mirror nodes try before this server, written first into --hosts-dir and
    /// --registries-conf: a P2P engine's node-local endpoint (Spegel: http://127.0.0.1:30020),
    /// a Dragonfly dfdaemon proxy, a Harbor proxy-cache project (https://harbor/PROJECT).
    /// Repeatable, tried in the order given. URL: http[s]://HOST[:PORT][/PREFIX].
    #[arg(long = "prefer-mirror", value_name = "URL", value_parser = parse_mirror)]
    pub prefer_mirrors: Vec<Mirror>,

    /// containerd's config, checked with --hosts-dir for a CRI registry config_path.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/containerd/config.toml"
    )]
    pub containerd_config: PathBuf,

    /// Check and prepare, then exit without serving: the bundle is read (a delta or an empty
    /// one is refused), the address checked (exit 2 when something other than a ferry serve of
    /// this bundle holds it), the node files written and containerd's config checked. Prints
    /// `free` or `running` (a ferry serve of this bundle already answers there) on stdout.
    #[arg(long)]
    pub setup_only: bool,
}

/// Prints the server's events.
struct Printer {
    verbose: bool,
    bundle: PathBuf,
}

impl serve::Reporter for Printer {
    fn event(&self, event: &Event) {
        match event {
            Event::Request {
                method,
                path,
                status,
                bytes,
                outcome,
                elapsed,
            } if self.verbose => {
                // The method and path come from the client: shown escaped.
                output::line(&format!(
                    "{method} {path} {status} {} {outcome} {:.1} ms",
                    output::bytes(*bytes),
                    elapsed.as_secs_f64() * 1000.0
                ));
            }
            Event::BlobRefused { digest, reason } => {
                output::warning(&format!("{digest} is not served: {reason}"));
            }
            Event::ConnectionError { reason } if self.verbose => {
                output::line(&format!("connection: {reason}"));
            }
            Event::ConnectionClosed { peer, reason } if self.verbose => {
                output::line(&format!("connection from {peer}: {reason}"));
            }
            Event::ConnectionsFull { max } => output::warning(&format!(
                "all {max} connections are in use: new ones wait until one closes (--max-connections)"
            )),
            Event::Reloaded {
                repositories,
                tags,
                not_served,
            } => {
                eprintln!(
                    "{} changed: now serving {repositories} repositories ({tags} tags)",
                    self.bundle.display()
                );
                for n in not_served {
                    output::warning(&format!("not served: {n}"));
                }
            }
            Event::ReloadFailed { reason } => output::warning(&format!(
                "{} changed but cannot be read ({reason}); still serving what it held before",
                self.bundle.display()
            )),
            _ => {}
        }
    }
}

/// Runs `ferry serve`.
pub async fn run(args: ServeArgs) -> Result<Exit, Failure> {
    let source = super::source_arg::open_bundle(&args.bundle).map_err(|f| Failure::local(f.0))?;
    let path = args.bundle.clone();
    let snapshot = tokio::task::spawn_blocking(move || Snapshot::load(&path, source))
        .await
        .context(Kind::Failed, || "reading the bundle's catalog")?
        .map_err(Failure::local)?;
    for skipped in &snapshot.catalog.skipped {
        output::warning(&format!("not served: {skipped}"));
    }
    if snapshot.catalog.repos.is_empty() {
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
    if args.setup_only {
        return setup_only(&args, &snapshot, tls.as_ref());
    }
    let listen = Listen {
        addr: args.addr,
        tls: tls.clone(),
    };
    let bound = serve::bind(&listen).await.map_err(Failure::local)?;
    let addr = bound.local_addr().unwrap_or(args.addr);
    let origin = serve::node::origin(addr, tls.is_some());
    write_node_files(&args, &snapshot.catalog, &origin, tls.as_ref())?;
    let limits = limits(&args);
    eprintln!(
        "serving {} repositories ({} tags) of {} at {origin}",
        snapshot.catalog.repos.len(),
        snapshot.catalog.tag_count(),
        args.bundle.display()
    );
    let reporter: Arc<dyn serve::Reporter> = Arc::new(Printer {
        // The global -v: every request (method, path, status, bytes, outcome, time) on stderr.
        verbose: super::log::enabled(),
        bundle: args.bundle.clone(),
    });
    let live = Arc::new(Live::new(&args.bundle, snapshot, reporter.clone()));
    let pool = Pool::new(limits.read_threads);
    let state = Arc::new(serve::State::new(live, pool, reporter.clone()));
    let interrupted = Arc::new(AtomicBool::new(false));
    serve::serve(
        state,
        bound,
        limits,
        reporter,
        stop_signal(interrupted.clone()),
    )
    .await;
    eprintln!("stopped");
    Ok(if interrupted.load(Ordering::SeqCst) {
        Exit::Interrupted
    } else {
        Exit::Ok
    })
}

/// The connection limits asked for, the connection cap lowered (with a warning) to what the
/// limit on open files allows.
fn limits(args: &ServeArgs) -> Limits {
    let wanted = args.max_connections as usize;
    let max_connections = serve::fit_connections(wanted);
    if max_connections < wanted {
        output::warning(&format!(
            "--max-connections {wanted} lowered to {max_connections}: the limit on open files \
             allows no more (raise it with ulimit -n or LimitNOFILE=)"
        ));
    }
    Limits {
        max_connections,
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        ..Limits::default()
    }
}

/// `--setup-only`: who holds the address, the node files, containerd's config; no serving.
fn setup_only(args: &ServeArgs, snapshot: &Snapshot, tls: Option<&Tls>) -> Result<Exit, Failure> {
    if args.addr.port() == 0 {
        return Err(Failure::usage("--setup-only needs a fixed port in --addr"));
    }
    let holder = serve::node::who_holds(args.addr, &snapshot.lock);
    if let Holder::Other(what) = &holder {
        return Err(Failure::usage(format!(
            "{} is held by {what}, not by a ferry serve of this bundle",
            args.addr
        ))
        .with_hint("stop what holds it, or serve on another address (--addr; restore.sh: FERRY_MIRROR_ADDR)"));
    }
    let origin = serve::node::origin(args.addr, tls.is_some());
    write_node_files(args, &snapshot.catalog, &origin, tls)?;
    outln!(
        "{}",
        if holder == Holder::ThisBundle {
            "running"
        } else {
            "free"
        }
    );
    Ok(Exit::Ok)
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
    catalog: &serve::Catalog,
    origin: &str,
    tls: Option<&Tls>,
) -> Result<(), Failure> {
    let registries = catalog.registries();
    if let Some(dir) = &args.hosts_dir {
        let ca = tls.map(|t| t.cert.as_path());
        let files =
            serve::node::write_hosts_dir(dir, &registries, origin, ca, &args.prefer_mirrors)
                .map_err(Failure::local)?;
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
        serve::node::write_registries_conf(file, &registries, origin, &args.prefer_mirrors)
            .map_err(Failure::local)?;
        eprintln!("wrote {}", file.display());
    }
    Ok(())
}
