//! Reading the requests that cross the proxy (plain HTTP/1.1, as ferry speaks to a loopback
//! registry): their request line and `Range` header are logged, a `Range` header can be
//! removed (a server that ignores Range), and one ranged request can have its response cut.
//! Bodies (uploads) pass through by their Content-Length; a chunked body ends inspection of
//! that connection.

/// One request seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`...
    pub method: String,
    /// The request target (`/v2/repo/blobs/sha256:...`).
    pub path: String,
    /// The `Range` header as the client sent it (`bytes=0-99`), before any removal.
    pub range: Option<String>,
    /// The connection it came on (0-based, in order of acceptance).
    pub connection: u64,
}

impl Request {
    /// The first byte a `Range: bytes=N-...` asks for.
    pub fn range_start(&self) -> Option<u64> {
        let spec = self.range.as_deref()?.strip_prefix("bytes=")?;
        spec.split('-').next()?.trim().parse().ok()
    }
}

/// Where the inspector is in the request stream.
enum State {
    /// Collecting a request head.
    Head(Vec<u8>),
    /// Passing this many body bytes.
    Body(u64),
    /// Not HTTP we understand (a chunked body, an oversized head): everything passes.
    Passthrough,
}

/// A request stream's inspector: feed it what the client sent, forward what it returns.
pub(crate) struct Inspector {
    state: State,
    strip_range: bool,
    connection: u64,
}

/// Heads larger than this are not inspected.
const MAX_HEAD: usize = 64 << 10;

impl Inspector {
    pub fn new(strip_range: bool, connection: u64) -> Inspector {
        Inspector {
            state: State::Head(Vec::new()),
            strip_range,
            connection,
        }
    }

    /// Takes bytes from the client; returns the bytes to forward and the requests completed.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, Vec<Request>) {
        let mut out = Vec::with_capacity(input.len());
        let mut seen = Vec::new();
        let mut data = input.to_vec();
        let mut pos = 0;
        while pos < data.len() {
            match &mut self.state {
                State::Passthrough => {
                    out.extend_from_slice(&data[pos..]);
                    pos = data.len();
                }
                State::Body(left) => {
                    let n = (*left).min((data.len() - pos) as u64) as usize;
                    out.extend_from_slice(&data[pos..pos + n]);
                    pos += n;
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::Head(head) => {
                    // The head's end may straddle reads: look from where the last one stopped.
                    let from = head.len().saturating_sub(3);
                    head.extend_from_slice(&data[pos..]);
                    pos = data.len();
                    let Some(end) = find(&head[from..], b"\r\n\r\n").map(|i| from + i + 4) else {
                        if head.len() > MAX_HEAD {
                            out.append(head);
                            self.state = State::Passthrough;
                        }
                        continue;
                    };
                    // What followed the head (a body, another request) is read next.
                    data = head.split_off(end);
                    pos = 0;
                    let head = std::mem::take(head);
                    let (text, request, next) = self.rewrite(&head);
                    out.extend_from_slice(&text);
                    seen.extend(request);
                    self.state = next;
                }
            }
        }
        (out, seen)
    }

    /// Parses a complete head; returns it (Range removed if asked), the request, and what
    /// follows it.
    fn rewrite(&self, head: &[u8]) -> (Vec<u8>, Option<Request>, State) {
        let Ok(text) = std::str::from_utf8(head) else {
            return (head.to_vec(), None, State::Passthrough);
        };
        let mut lines = text.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let (method, path) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let mut out = format!("{request_line}\r\n");
        let (mut range, mut body, mut chunked) = (None, 0u64, false);
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim();
            match name.as_str() {
                "range" => {
                    range = Some(value.to_owned());
                    if self.strip_range {
                        continue;
                    }
                }
                "content-length" => body = value.parse().unwrap_or(0),
                "transfer-encoding" => chunked = true,
                _ => {}
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let request = Request {
            method: method.to_owned(),
            path: path.to_owned(),
            range,
            connection: self.connection,
        };
        let next = match (chunked, body) {
            (true, _) => State::Passthrough,
            (false, 0) => State::Head(Vec::new()),
            (false, n) => State::Body(n),
        };
        (out.into_bytes(), Some(request), next)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_split_anywhere_are_seen_whole_and_bodies_pass() {
        let stream = b"GET /v2/a/blobs/x HTTP/1.1\r\nHost: h\r\nRange: bytes=10-19\r\n\r\n\
                       PUT /up HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n";
        for split in [1, 7, 40, 61, 95, stream.len()] {
            let mut i = Inspector::new(true, 3);
            let (mut out, mut seen) = i.feed(&stream[..split]);
            let (more, more_seen) = i.feed(&stream[split..]);
            out.extend(more);
            seen.extend(more_seen);
            let text = String::from_utf8(out).unwrap();
            assert!(!text.to_ascii_lowercase().contains("range"), "{text}");
            assert!(
                text.contains("Content-Length: 5\r\n\r\nhelloGET /b"),
                "{text}"
            );
            let paths: Vec<_> = seen.iter().map(|r| r.path.as_str()).collect();
            assert_eq!(paths, ["/v2/a/blobs/x", "/up", "/b"], "split at {split}");
            assert_eq!(seen[0].range_start(), Some(10));
            assert_eq!(seen[0].connection, 3);
        }
    }
}
