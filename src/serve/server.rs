//! The listener: plain HTTP or TLS (rustls), HTTP/1.1 (keep-alive) and HTTP/2 (over TLS, and
//! cleartext with prior knowledge), a cap on connections, header and idle timeouts, graceful
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::body::Body;
use super::conn::{Activity, Limits, Watched};
use super::logged::Logged;
use super::pool::MIN_CHUNK;
use super::routes::State;
use super::{Event, Reporter};
use crate::store::StoreError;

/// TLS material: a PEM certificate chain and its PEM private key.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The address (port 0 picks a free one).
    pub addr: SocketAddr,
    /// TLS, when wanted.
    pub tls: Option<Tls>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A certificate or key that does not load.
    #[error("{path}: {reason}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The bundle cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bundle is a delta: it holds only the blobs its base lacks.
    #[error(
        "{} is a delta (it has ferry-delta.json), not a bundle: it holds only the blobs its base lacks, so its images cannot be served",
        .0.display()
    )]
    Delta(PathBuf),
    /// Reading the changed bundle failed.
    #[error("reading the changed bundle: {0}")]
    Reload(String),
}

fn tls_acceptor(tls: &Tls) -> Result<TlsAcceptor, ServeError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |path: &Path, reason: String| ServeError::Tls {
        path: path.to_path_buf(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| bad(&tls.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&tls.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(&tls.cert, "no PEM certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| bad(&tls.key, e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(&tls.cert, e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| {
        bad(
            &tls.key,
            format!("does not match the certificate or is unusable: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A bound listener, ready to serve.
pub struct Bound {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl Bound {
    /// The address actually bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// Loads TLS material and binds the address.
pub async fn bind(listen: &Listen) -> Result<Bound, ServeError> {
    let tls = listen.tls.as_ref().map(tls_acceptor).transpose()?;
    let listener = TcpListener::bind(listen.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen.addr,
            source,
        })?;
    Ok(Bound { listener, tls })
}

/// Connections and reads: the HTTP builder for both protocols, with the limits applied.
fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Also the most a keep-alive connection waits for its next request.
        .header_read_timeout(limits.header_timeout)
        // The next chunk is asked for only once the socket has taken all but 16 KiB of the
        // last: a download holds about one chunk, however slowly its client reads. (Also
        // the most a request's headers may take: a registry client sends far less.)
        .max_buf_size(16 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_send_buf_size(MIN_CHUNK)
        .max_concurrent_streams(256);
    builder
}

/// What every connection task shares.
struct Shared {
    state: Arc<State>,
    reporter: Arc<dyn Reporter>,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    limits: Limits,
}

/// Serves until `shutdown` completes, then lets requests in flight finish (at most 10 s). At
/// most `limits.max_connections` connections are served at once: more wait in the listen
/// queue until one closes.
pub async fn serve(
    state: Arc<State>,
    bound: Bound,
    limits: Limits,
    reporter: Arc<dyn Reporter>,
    shutdown: impl Future<Output = ()>,
) {
    if let Some(addr) = bound.local_addr() {
        reporter.event(&Event::Listening { addr });
    }
    let watch = tokio::spawn(state.live().clone().watch(Duration::from_secs(2)));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let shared = Arc::new(Shared {
        state,
        reporter: reporter.clone(),
        builder: http_builder(&limits),
        tls: bound.tls.clone(),
        limits,
    });
    let mut said_full: Option<std::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = bound.listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    reporter.event(&Event::ConnectionError { reason: e.to_string() });
                    // Out of file descriptors and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if slots.available_permits() == 0
            && said_full.is_none_or(|t| t.elapsed() > Duration::from_secs(60))
        {
            said_full = Some(std::time::Instant::now());
            reporter.event(&Event::ConnectionsFull {
                max: shared.limits.max_connections,
            });
        }
        tokio::spawn(connection(
            shared.clone(),
            stream,
            peer,
            graceful.watcher(),
            slot,
        ));
    }
    watch.abort();
    drop(bound.listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

/// Serves one connection (its TLS handshake first), holding its slot until it closes.
async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let io = Watched::new(stream, activity.clone());
    let Some(acceptor) = shared.tls.clone() else {
        return run_connection(&shared, TokioIo::new(io), peer, watcher, activity).await;
    };
    let limit = shared.limits.header_timeout;
    match tokio::time::timeout(limit, acceptor.accept(io)).await {
        Ok(Ok(tls)) => run_connection(&shared, TokioIo::new(tls), peer, watcher, activity).await,
        Ok(Err(e)) => shared.reporter.event(&Event::ConnectionError {
            reason: format!("TLS handshake: {e}"),
        }),
        Err(_) => shared.reporter.event(&Event::ConnectionClosed {
            peer,
            reason: format!(
                "closed by serve: no TLS handshake within {}",
                humantime::format_duration(limit)
            ),
        }),
    }
}

/// Runs HTTP on a connection until it ends, or until it has been idle too long.
async fn run_connection<I>(
    shared: &Shared,
    io: I,
    peer: SocketAddr,
    watcher: Watcher,
    activity: Arc<Activity>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = Service {
        state: shared.state.clone(),
        reporter: shared.reporter.clone(),
        activity: activity.clone(),
    };
    let conn = shared.builder.serve_connection(io, service).into_owned();
    tokio::select! {
        ended = watcher.watch(conn) => {
            if let Err(e) = ended {
                let timeout = e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout);
                if timeout {
                    let reason = format!(
                        "closed by serve: no complete request headers within {}",
                        humantime::format_duration(shared.limits.header_timeout)
                    );
                    activity.close(reason.clone());
                    shared.reporter.event(&Event::ConnectionClosed { peer, reason });
                } else {
                    report_conn_error(&*shared.reporter, &*e);
                }
            }
        }
        () = activity.idle(shared.limits.idle_timeout) => {
            // Dropping the connection closes it; bodies in flight end as cut by serve.
            let reason = activity.closed_reason().unwrap_or_default();
            shared.reporter.event(&Event::ConnectionClosed { peer, reason });
        }
    }
}

/// The request handler of one connection.
#[derive(Clone)]
struct Service {
    state: Arc<State>,
    reporter: Arc<dyn Reporter>,
    activity: Arc<Activity>,
}

type Answer = Result<hyper::Response<Logged>, std::convert::Infallible>;

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Service {
    type Response = hyper::Response<Logged>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, mut req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.activity.clone());
        Box::pin(answer(self.state.clone(), self.reporter.clone(), req))
    }
}

/// Answers one request: refused when framed with Transfer-Encoding, else by the routes.
async fn answer(
    state: Arc<State>,
    reporter: Arc<dyn Reporter>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Answer {
    if req.headers().contains_key(hyper::header::TRANSFER_ENCODING) {
        return Ok(refuse_framing(&req, reporter));
    }
    Ok(state.handle(req).await)
}

/// Raises this process's soft limit on open files to its hard limit: each connection costs a
/// socket, and one more file while it downloads. Returns how many connections fit in it
/// (`wanted` when all do).
pub fn fit_connections(wanted: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    let files = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return wanted;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
        lim.rlim_cur
    };
    // Some files for the process itself (the bundle, logs, the runtime).
    let fit = (files.saturating_sub(64) / 2).max(1);
    wanted.min(usize::try_from(fit).unwrap_or(usize::MAX))
}

/// The answer to a request that carries Transfer-Encoding, alone or with Content-Length
/// (hyper then drops the Content-Length and reads the chunks): 400, and the connection closed.
/// A read-only registry takes no request body, and a request framed two ways is how requests
/// are smuggled past a proxy that reads the other framing.
fn refuse_framing(
    req: &hyper::Request<hyper::body::Incoming>,
    reporter: Arc<dyn Reporter>,
) -> hyper::Response<Logged> {
    let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
    let body = Body::full(
        r#"{"errors":[{"code":"UNSUPPORTED","message":"a request with a Transfer-Encoding (or with both Transfer-Encoding and Content-Length) is refused: ferry serve takes no request bodies"}]}"#,
    );
    let start = std::time::Instant::now();
    let logged = Logged::new(
        body,
        None,
        Box::new(move |bytes, outcome| {
            reporter.event(&Event::Request {
                method,
                path,
                status: 400,
                bytes,
                outcome,
                elapsed: start.elapsed(),
            });
        }),
    );
    let mut resp = hyper::Response::new(logged);
    *resp.status_mut() = hyper::StatusCode::BAD_REQUEST;
    let headers = resp.headers_mut();
    headers.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn report_conn_error(reporter: &dyn Reporter, e: &(dyn std::error::Error + Send + Sync)) {
    // A client closing its connection early is normal; say it only at -v.
    reporter.event(&Event::ConnectionError {
        reason: e.to_string(),
    });
}

impl crate::error::Diagnostic for ServeError {
    fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            // The address and the TLS files are the user's to fix.
            ServeError::Bind { .. } | ServeError::Tls { .. } | ServeError::Delta(_) => {
                Kind::Configuration
            }
            ServeError::Store(e) => e.kind(),
            ServeError::Reload(_) => Kind::Bundle,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ServeError::Store(e) => e.hint(),
            ServeError::Delta(p) => Some(format!(
                "apply it to the bundle it was made against first (ferry apply {} BASE), then serve BASE",
                p.display()
            )),
            _ => None,
        }
    }
}
