//! An in-process fake registry, for what a real registry will not do on demand: 429s, 500s,
//! wrong digests and sizes, lying Content-Range, redirects, oversized manifests, token
//! challenges. Hand-rolled HTTP/1.1 (one request per connection) so that every byte is ours to
//! get wrong on purpose.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// GET, POST...
    pub method: String,
    /// Path with query.
    pub path: String,
    /// The request body (POSTs).
    pub body: String,
    /// Headers, names lowercased.
    pub headers: HashMap<String, String>,
    /// When the whole request had arrived.
    pub at: std::time::Instant,
}

/// What to send back.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Declare this Content-Length instead of the body's (a short body then a close).
    pub declared_len: Option<usize>,
    /// Send this many body bytes, then go silent (a stall) for a long time.
    pub stall_after: Option<usize>,
    /// Wait this long before answering at all (no headers either).
    pub delay: Option<Duration>,
    /// Send the body one byte at a time, this long apart (a drip).
    pub drip: Option<Duration>,
}

impl Reply {
    /// A reply with a status and body.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            declared_len: None,
            stall_after: None,
            delay: None,
            drip: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

type Handler = Box<dyn Fn(&Seen, u32) -> Reply + Send + Sync>;
type Guard = Arc<dyn Fn(&Seen) -> Option<Reply> + Send + Sync>;

struct Route {
    path: String,
    handler: Handler,
    hits: AtomicU32,
}

/// Requests being served at once: counted from the parsed request until just before the
/// response's last byte is written, so a client cannot finish one request and start the next
/// before the count has dropped (the measure of a per-registry cap).
#[derive(Debug, Default)]
pub struct InFlight {
    /// Requests being served now.
    pub now: AtomicUsize,
    /// The most at once so far.
    pub max: AtomicUsize,
}

/// One request in the in-flight count until `done` (or drop, on an error path).
struct Counted<'a>(&'a InFlight, bool);

impl<'a> Counted<'a> {
    fn new(f: &'a InFlight) -> Counted<'a> {
        let now = f.now.fetch_add(1, Ordering::SeqCst) + 1;
        f.max.fetch_max(now, Ordering::SeqCst);
        Counted(f, true)
    }

    fn done(&mut self) {
        if std::mem::take(&mut self.1) {
            self.0.now.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.done();
    }
}

/// A running fake registry on loopback (plain HTTP).
pub struct Fake {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    routes: Arc<Mutex<Vec<Arc<Route>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    guard: Arc<Mutex<Option<Guard>>>,
    /// Requests in flight.
    pub in_flight: Arc<InFlight>,
    _runtime: tokio::runtime::Runtime,
}

impl Fake {
    /// Starts a fake that answers `/v2/` with 200 and everything else with 404.
    pub fn start() -> Fake {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let routes: Arc<Mutex<Vec<Arc<Route>>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let guard: Arc<Mutex<Option<Guard>>> = Arc::default();
        let in_flight: Arc<InFlight> = Arc::default();
        let (r, s, g, f) = (
            routes.clone(),
            seen.clone(),
            guard.clone(),
            in_flight.clone(),
        );
        runtime.spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    break;
                };
                let (r, s, g, f) = (r.clone(), s.clone(), g.clone(), f.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, r, s, g, f).await;
                });
            }
        });
        let fake = Fake {
            addr,
            routes,
            seen,
            guard,
            in_flight,
            _runtime: runtime,
        };
        fake.route("/v2/", |_, _| Reply::new(200, "{}"));
        fake
    }

    /// Answers requests to exactly `path` (query ignored) with `handler(request, hit number)`.
    /// Later routes win over earlier ones for the same path.
    pub fn route(&self, path: &str, handler: impl Fn(&Seen, u32) -> Reply + Send + Sync + 'static) {
        self.routes.lock().unwrap().insert(
            0,
            Arc::new(Route {
                path: path.to_owned(),
                handler: Box::new(handler),
                hits: AtomicU32::new(0),
            }),
        );
    }

    /// Runs `guard` before every route: a reply it returns is sent instead (an auth check).
    pub fn guard(&self, guard: impl Fn(&Seen) -> Option<Reply> + Send + Sync + 'static) {
        *self.guard.lock().unwrap() = Some(Arc::new(guard));
    }

    /// Requests seen whose path starts with `prefix`.
    pub fn seen(&self, prefix: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Serves `image` under `repo:tag` (and by digest), blobs with Range support.
    pub fn serve_image(&self, repo: &str, tag: &str, image: &TestImage) {
        let m = image.manifest.clone();
        let ok = move |_: &Seen, _: u32| {
            Reply::new(200, m.clone())
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        };
        let m2 = image.manifest.clone();
        self.route(&format!("/v2/{repo}/manifests/{tag}"), ok);
        self.route(
            &format!("/v2/{repo}/manifests/{}", image.digest),
            move |_, _| {
                Reply::new(200, m2.clone())
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            },
        );
        for (digest, bytes) in image.blobs() {
            self.route(&format!("/v2/{repo}/blobs/{digest}"), move |req, _| {
                ranged(req, &bytes)
            });
        }
    }
}

/// A lying registry: content whose fields break the OCI grammars on purpose (a newline in a
/// platform or a media type), served as a registry would serve honest content.
impl Fake {
    /// Serves manifest `bytes` as is under `repo` at `tag` and at its digest, with this
    /// Content-Type. Returns the digest.
    pub fn serve_manifest(
        &self,
        repo: &str,
        tag: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> String {
        let digest = digest_of(&bytes);
        for reference in [tag, digest.as_str()] {
            let (bytes, content_type) = (bytes.clone(), content_type.to_owned());
            self.route(&format!("/v2/{repo}/manifests/{reference}"), move |_, _| {
                Reply::new(200, bytes.clone()).header("Content-Type", &content_type)
            });
        }
        digest
    }

    /// Serves an image's manifest (by digest only), config and layers under `repo`: a child
    /// of an index.
    pub fn serve_child(&self, repo: &str, image: &TestImage) {
        let digest = image.digest.clone();
        self.serve_manifest(repo, &digest, image.manifest.clone(), OCI_MANIFEST);
        for (digest, bytes) in image.blobs() {
            self.route(&format!("/v2/{repo}/blobs/{digest}"), move |req, _| {
                ranged(req, &bytes)
            });
        }
    }
}

/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An OCI index of `children`, each with the platform JSON given (any fields, lies included).
pub fn index_of(children: &[(&TestImage, serde_json::Value)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(image, platform)| serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": image.digest,
            "size": image.manifest.len(),
            "platform": platform,
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// A 200 with the whole blob, or a 206 for a `Range: bytes=a-b` request.
pub fn ranged(req: &Seen, bytes: &[u8]) -> Reply {
    if let Some(range) = req
        .headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
    {
        let (a, b) = range.split_once('-').unwrap();
        let a: usize = a.parse().unwrap();
        let b: usize = if b.is_empty() {
            bytes.len() - 1
        } else {
            b.parse().unwrap()
        };
        return Reply::new(206, bytes[a..=b].to_vec())
            .header("Content-Range", &format!("bytes {a}-{b}/{}", bytes.len()));
    }
    Reply::new(200, bytes.to_vec())
}

async fn serve(
    mut conn: TcpStream,
    routes: Arc<Mutex<Vec<Arc<Route>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    guard: Arc<Mutex<Option<Guard>>>,
    in_flight: Arc<InFlight>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut chunk).await?;
        if n == 0 || (buf.is_empty() && chunk[0] == 0x16) {
            // End of stream, or a TLS hello: plain HTTP servers hang up on those.
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("GET").to_owned();
    let path = parts.next().unwrap_or("/").to_owned();
    let headers: HashMap<String, String> = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let req = Seen {
        method,
        path: path.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
        headers,
        at: std::time::Instant::now(),
    };
    seen.lock().unwrap().push(req.clone());
    let mut counted = Counted::new(&in_flight);
    let mut done = || counted.done();
    let bare = path.split('?').next().unwrap_or_default();
    let guard = guard.lock().unwrap().clone();
    let route = routes
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.path == bare)
        .cloned();
    let reply = match (guard.and_then(|g| g(&req)), route) {
        (Some(denied), _) => denied,
        (None, Some(r)) => {
            let hit = r.hits.fetch_add(1, Ordering::SeqCst) + 1;
            (r.handler)(&req, hit)
        }
        (None, None) => Reply::new(
            404,
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"not here"}]}"#,
        ),
    };
    let mut head = format!(
        "HTTP/1.1 {} Fake\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.declared_len.unwrap_or(reply.body.len())
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    let mut all = head.into_bytes();
    if let Some(gap) = reply.drip {
        conn.write_all(&all).await?;
        done();
        for byte in &reply.body {
            conn.write_all(&[*byte]).await?;
            conn.flush().await?;
            tokio::time::sleep(gap).await;
        }
        return Ok(());
    }
    match reply.stall_after {
        Some(n) => {
            all.extend_from_slice(&reply.body[..n.min(reply.body.len())]);
            conn.write_all(&all).await?;
            conn.flush().await?;
            done();
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        None => {
            all.extend_from_slice(&reply.body);
            let (most, last) = all.split_at(all.len() - 1);
            conn.write_all(most).await?;
            conn.flush().await?;
            done();
            conn.write_all(last).await?;
        }
    }
    conn.flush().await?;
    Ok(())
}

/// A small OCI image with random layers, for the fake registry.
pub struct TestImage {
    /// Manifest bytes.
    pub manifest: Vec<u8>,
    /// `sha256:…` of the manifest.
    pub digest: String,
    /// Config bytes.
    pub config: Vec<u8>,
    /// Layer bytes.
    pub layers: Vec<Vec<u8>>,
}

/// `sha256:<hex>` by the sha2 crate directly, not ferry's digest code (which the tests check).
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

impl TestImage {
    /// An image whose layers have these sizes (random bytes, seeded).
    pub fn random(seed: u64, layer_sizes: &[usize]) -> TestImage {
        let mut rng = fastrand::Rng::with_seed(seed);
        TestImage::from_layers(
            layer_sizes
                .iter()
                .map(|&n| (0..n).map(|_| rng.u8(..)).collect())
                .collect(),
        )
    }

    /// An image of these layers.
    pub fn from_layers(layers: Vec<Vec<u8>>) -> TestImage {
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
                .to_vec();
        TestImage::from_parts(config, layers, OCI_MANIFEST)
    }

    /// An image of this config and these layers whose manifest declares `media_type` (which
    /// a lying registry may break).
    pub fn from_parts(config: Vec<u8>, layers: Vec<Vec<u8>>, media_type: &str) -> TestImage {
        let desc = |mt: &str, b: &[u8]| serde_json::json!({"mediaType": mt, "digest": digest_of(b), "size": b.len()});
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": desc("application/vnd.oci.image.config.v1+json", &config),
            "layers": layers.iter().map(|l| desc("application/vnd.oci.image.layer.v1.tar+gzip", l)).collect::<Vec<_>>(),
        }))
        .unwrap();
        TestImage {
            digest: digest_of(&manifest),
            manifest,
            config,
            layers,
        }
    }

    /// Every blob with its digest.
    pub fn blobs(&self) -> Vec<(String, Vec<u8>)> {
        std::iter::once(&self.config)
            .chain(&self.layers)
            .map(|b| (digest_of(b), b.clone()))
            .collect()
    }

    /// The digest of layer `i`.
    pub fn layer_digest(&self, i: usize) -> String {
        digest_of(&self.layers[i])
    }
}

/// A layer held back by [`Fake::serve_held_image`] until [`Held::release`] or drop (so that no
/// request waits for ever, however the test ends).
pub struct Held(Arc<std::sync::atomic::AtomicBool>);

impl Held {
    /// Lets the layer go.
    pub fn release(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.release();
    }
}

impl Fake {
    /// Serves `repo:tag`, a one-layer image (`seed`, 3000 bytes), whose layer is held back
    /// until the [`Held`] is released: a run stays at that layer for as long as the test needs,
    /// whatever the machine's speed.
    pub fn serve_held_image(&self, repo: &str, tag: &str, seed: u64) -> Held {
        let image = TestImage::random(seed, &[3000]);
        self.serve_image(repo, tag, &image);
        let held = Held(Arc::new(std::sync::atomic::AtomicBool::new(false)));
        let (layer, gate) = (image.layers[0].clone(), held.0.clone());
        self.route(
            &format!("/v2/{repo}/blobs/{}", image.layer_digest(0)),
            move |req, _| {
                while !gate.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                ranged(req, &layer)
            },
        );
        held
    }
}
