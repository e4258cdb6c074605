//! A fault-injecting TCP proxy (tokio) to put in front of a real registry: it caps the rate of
//! each connection, cuts connections after N bytes (RST or FIN) in either direction, stalls
//! them, cuts the response to one ranged request, hides `Range` from the server, and counts
//! what crosses it.

mod http;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use http::Request;

/// What the proxy does to the registry's responses.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Bytes per second from the registry to the client, per connection.
    pub throttle: Option<u64>,
    /// Close each connection after this many response bytes.
    pub cut_after: Option<u64>,
    /// Close with a reset (RST) rather than a clean FIN.
    pub reset: bool,
    /// Stop forwarding (keep the connection open, silent) after this many response bytes.
    pub stall_after: Option<u64>,
    /// With `stall_after`: only the first connection to reach the limit stalls.
    pub stall_once: bool,
    /// Close each connection after a random number of response bytes in this range (a seeded
    /// generator: the same seed gives the same sequence of cuts).
    pub cut_at_random: Option<(u64, u64, u64)>,
    /// Fault only the first N connections; later ones pass untouched.
    pub first_connections: Option<u64>,
    /// Close each connection after this many request bytes (client to registry): an upload
    /// cut mid-body.
    pub cut_up_after: Option<u64>,
    /// Remove the `Range` header from every request: the server answers with whole bodies, as
    /// a registry or storage that ignores Range does.
    pub strip_range: bool,
    /// `(start, after)`: cut the response to the first request whose `Range` starts at byte
    /// `start`, once `after` bytes of it passed (one part of a blob cut mid-way).
    pub cut_range: Option<(u64, u64)>,
    /// Record every request (`Proxy::requests`); implied by `strip_range` and `cut_range`.
    pub log_requests: bool,
}

impl Faults {
    /// Faults for connection number `n` (0-based): these, or none.
    fn for_connection(&self, n: u64, rng: &std::sync::Mutex<fastrand::Rng>) -> Faults {
        if self.first_connections.is_some_and(|k| n >= k) {
            return Faults::default();
        }
        let mut f = self.clone();
        if let Some((lo, hi, _)) = self.cut_at_random {
            let cut = rng.lock().expect("rng lock").u64(lo..=hi);
            f.cut_after = Some(f.cut_after.map_or(cut, |c| c.min(cut)));
        }
        f
    }

    /// Whether request heads must be read.
    fn inspects(&self) -> bool {
        self.strip_range || self.cut_range.is_some() || self.log_requests
    }
}

/// Counters, readable while the proxy runs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Response bytes forwarded to clients.
    pub bytes_down: AtomicU64,
    /// Request bytes forwarded to the registry.
    pub bytes_up: AtomicU64,
    /// Connections cut by a fault.
    pub cuts: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections open now.
    pub open: AtomicUsize,
    /// Most connections open at once.
    pub max_open: AtomicUsize,
    /// A connection has stalled (for `stall_once`).
    pub stalled: std::sync::atomic::AtomicBool,
    /// Response bytes counted in `bytes_down` that a reset destroyed before they left the
    /// proxy (unsent in its socket's queue): they never crossed the wire.
    pub unsent_at_reset: AtomicU64,
    /// The `cut_range` request was cut.
    pub range_cut: AtomicBool,
    /// Requests seen, when they are inspected.
    pub requests: Mutex<Vec<Request>>,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    /// `127.0.0.1:PORT` to give ferry instead of the registry.
    pub addr: String,
    /// Counters.
    pub stats: Arc<Stats>,
    faults_on: Arc<AtomicBool>,
    _runtime: tokio::runtime::Runtime,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`host:port`).
    pub fn start(upstream: &str, faults: Faults) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stats = Arc::new(Stats::default());
        let faults_on = Arc::new(AtomicBool::new(true));
        let upstream: SocketAddr = upstream.parse().unwrap();
        let (s, on) = (stats.clone(), faults_on.clone());
        let seed = faults.cut_at_random.map_or(0, |(_, _, seed)| seed);
        let rng = Arc::new(std::sync::Mutex::new(fastrand::Rng::with_seed(seed)));
        runtime.spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    break;
                };
                let n = s.connections.fetch_add(1, Ordering::SeqCst);
                let faults = if on.load(Ordering::SeqCst) {
                    faults.for_connection(n, &rng)
                } else {
                    Faults::default()
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let now = s.open.fetch_add(1, Ordering::SeqCst) + 1;
                    s.max_open.fetch_max(now, Ordering::SeqCst);
                    let _ = relay(client, upstream, &faults, &s, n).await;
                    s.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Proxy {
            addr,
            stats,
            faults_on,
            _runtime: runtime,
        }
    }

    /// Stops injecting faults into new connections.
    pub fn heal(&self) {
        self.faults_on.store(false, Ordering::SeqCst);
    }

    /// Response bytes forwarded so far.
    pub fn bytes_down(&self) -> u64 {
        self.stats.bytes_down.load(Ordering::SeqCst)
    }

    /// Request bytes forwarded so far.
    pub fn bytes_up(&self) -> u64 {
        self.stats.bytes_up.load(Ordering::SeqCst)
    }

    /// Connections cut by a fault so far.
    pub fn cuts(&self) -> u64 {
        self.stats.cuts.load(Ordering::SeqCst)
    }

    /// Response bytes that left the proxy for the client: `bytes_down` less what resets
    /// destroyed unsent in the proxy's own socket buffers. This is the wire's count.
    pub fn bytes_delivered(&self) -> u64 {
        self.bytes_down() - self.stats.unsent_at_reset.load(Ordering::SeqCst)
    }

    /// The requests seen so far (when inspected: see [`Faults::log_requests`]).
    pub fn requests(&self) -> Vec<Request> {
        self.stats.requests.lock().expect("requests lock").clone()
    }
}

/// Bytes queued in a socket that were not sent yet (Linux `SIOCOUTQNSD`).
fn unsent_bytes(socket: &TcpStream) -> u64 {
    const SIOCOUTQNSD: libc::c_ulong = 0x894B;
    let mut n: libc::c_int = 0;
    // SAFETY: the ioctl writes one int through a valid pointer, on an open socket.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCOUTQNSD as _, &mut n) };
    if rc == 0 { n.max(0) as u64 } else { 0 }
}

enum Ending {
    /// Either side closed: nothing to do.
    Closed,
    /// The cut_after limit was reached.
    Cut,
    /// The stall_after limit was reached.
    Stall,
}

/// One connection's shared state between its two directions.
struct Connection {
    /// Response bytes after which to cut (`u64::MAX`: no such cut), armed by a request.
    cut_at: AtomicU64,
    /// Response bytes forwarded so far on it.
    down: AtomicU64,
}

async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    faults: &Faults,
    stats: &Stats,
    number: u64,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    let conn = Connection {
        cut_at: AtomicU64::new(u64::MAX),
        down: AtomicU64::new(0),
    };
    let ending = {
        let (mut cr, mut cw) = client.split();
        let (mut sr, mut sw) = server.split();
        // When the client closes (HTTP clients never half-close), the relay ends: its
        // connection no longer counts as open, whatever the registry's keep-alive does.
        let up = async {
            let mut inspector = faults
                .inspects()
                .then(|| http::Inspector::new(faults.strip_range, number));
            let mut sent = 0u64;
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let mut want = buf.len() as u64;
                if let Some(limit) = faults.cut_up_after {
                    want = want.min(limit.saturating_sub(sent));
                    if want == 0 {
                        return Ending::Cut;
                    }
                }
                let n = match cr.read(&mut buf[..want as usize]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let forwarded = match &mut inspector {
                    Some(i) => {
                        let (out, seen) = i.feed(&buf[..n]);
                        arm_cuts(faults, stats, &conn, &seen);
                        stats.requests.lock().expect("requests lock").extend(seen);
                        sw.write_all(&out).await
                    }
                    None => sw.write_all(&buf[..n]).await,
                };
                if forwarded.is_err() {
                    break;
                }
                sent += n as u64;
                stats.bytes_up.fetch_add(n as u64, Ordering::SeqCst);
            }
            let _ = sw.shutdown().await;
            Ending::Closed
        };
        let down = async {
            let mut sent = 0u64;
            let mut buf = vec![0u8; 16 * 1024];
            let started = tokio::time::Instant::now();
            let mut stall_after = faults.stall_after;
            loop {
                let mut want = buf.len() as u64;
                let cut = faults
                    .cut_after
                    .unwrap_or(u64::MAX)
                    .min(conn.cut_at.load(Ordering::SeqCst));
                if cut != u64::MAX {
                    want = want.min(cut.saturating_sub(sent));
                    if want == 0 {
                        return Ending::Cut;
                    }
                }
                if let Some(limit) = stall_after {
                    want = want.min(limit.saturating_sub(sent));
                    if want == 0 {
                        if faults.stall_once && stats.stalled.swap(true, Ordering::SeqCst) {
                            // Another connection has stalled already: this one flows.
                            stall_after = None;
                            continue;
                        }
                        return Ending::Stall;
                    }
                }
                let mut n = match sr.read(&mut buf[..want as usize]).await {
                    Ok(0) | Err(_) => return Ending::Closed,
                    Ok(n) => n,
                };
                // A request may have armed a cut while this read waited.
                let armed = conn.cut_at.load(Ordering::SeqCst);
                if sent + n as u64 > armed {
                    n = armed.saturating_sub(sent) as usize;
                }
                if cw.write_all(&buf[..n]).await.is_err() {
                    return Ending::Closed;
                }
                sent += n as u64;
                conn.down.store(sent, Ordering::SeqCst);
                stats.bytes_down.fetch_add(n as u64, Ordering::SeqCst);
                if let Some(rate) = faults.throttle {
                    let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                    tokio::time::sleep_until(started + due).await;
                }
            }
        };
        tokio::select! {
            e = down => e,
            e = up => e,
        }
    };
    match ending {
        Ending::Closed => {}
        Ending::Cut => {
            stats.cuts.fetch_add(1, Ordering::SeqCst);
            if faults.reset {
                // A reset throws away what the kernel still holds unsent: those bytes were
                // counted as forwarded but never leave this machine. What the client is
                // reading is let through first (a middlebox resets after N bytes passed it).
                let drained = tokio::time::Instant::now() + Duration::from_millis(100);
                while unsent_bytes(&client) > 0 && tokio::time::Instant::now() < drained {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                stats
                    .unsent_at_reset
                    .fetch_add(unsent_bytes(&client), Ordering::SeqCst);
                client.set_zero_linger()?;
            }
            drop(client);
        }
        Ending::Stall => {
            // Silent but open, until the client gives up and closes.
            let mut byte = [0u8; 1];
            let _ = tokio::time::timeout(Duration::from_secs(600), client.read(&mut byte)).await;
        }
    }
    Ok(())
}

/// Arms the `cut_range` cut on this connection when its request comes by (once per proxy):
/// the response starts after every byte forwarded so far (HTTP/1.1 answers in order).
fn arm_cuts(faults: &Faults, stats: &Stats, conn: &Connection, seen: &[Request]) {
    let Some((start, after)) = faults.cut_range else {
        return;
    };
    if seen.iter().any(|r| r.range_start() == Some(start))
        && !stats.range_cut.swap(true, Ordering::SeqCst)
    {
        let at = conn.down.load(Ordering::SeqCst) + after;
        conn.cut_at.store(at, Ordering::SeqCst);
    }
}
