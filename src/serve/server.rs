//! The listener: plain HTTP or TLS (rustls), HTTP/1.1 and HTTP/2, graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::body::{Body, Logged};
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

/// Serves until `shutdown` completes, then lets requests in flight finish (at most 10 s).
pub async fn serve(
    state: Arc<State>,
    bound: Bound,
    reporter: Arc<dyn Reporter>,
    shutdown: impl Future<Output = ()>,
) {
    if let Some(addr) = bound.local_addr() {
        reporter.event(&Event::Listening { addr });
    }
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
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
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let reporter = reporter.clone();
        let refusals = reporter.clone();
        let service = service_fn(move |req| answer(state.clone(), refusals.clone(), req));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match bound.tls.clone() {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                tokio::spawn(async move {
                    if let Err(e) = watcher.watch(conn).await {
                        report_conn_error(&*reporter, &*e);
                    }
                });
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let stream = match acceptor.accept(stream).await {
                        Ok(s) => s,
                        Err(e) => {
                            reporter.event(&Event::ConnectionError {
                                reason: format!("TLS handshake: {e}"),
                            });
                            return;
                        }
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        report_conn_error(&*reporter, &*e);
                    }
                });
            }
        }
    }
    drop(bound.listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

/// Answers one request: refused when framed with Transfer-Encoding, else by the routes.
async fn answer(
    state: Arc<State>,
    reporter: Arc<dyn Reporter>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Logged>, std::convert::Infallible> {
    if req.headers().contains_key(hyper::header::TRANSFER_ENCODING) {
        return Ok(refuse_framing(&req, reporter));
    }
    Ok(state.handle(req).await)
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
        Box::new(move |bytes, complete| {
            reporter.event(&Event::Request {
                method,
                path,
                status: 400,
                bytes,
                complete,
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
            ServeError::Bind { .. } | ServeError::Tls { .. } => Kind::Configuration,
            ServeError::Store(e) => e.kind(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ServeError::Store(e) => e.hint(),
            _ => None,
        }
    }
}
