//! Content digests (`sha256:<hex>`) and a hasher that checks size and digest as bytes pass.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

// ring's SHA-256 and SHA-512 (BoringSSL's assembly, SHA-NI where the CPU has it): measured
// against sha2 by `cargo xtask bench --bigblob-only`: equal for SHA-256 on a SHA-NI CPU (1.8
// GB/s), ahead for SHA-512, and its assembly keeps that speed in debug builds, where sha2's
// Rust code hashes at 0.05 GB/s (the tests' ferry is a debug build).
use ring::digest::{Context, SHA256, SHA512};

/// A validated content digest such as `sha256:<64 hex>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// Hash algorithms the OCI image spec registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, used by every registry in practice.
    Sha256,
    /// SHA-512, allowed by the spec and rarely seen.
    Sha512,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

    /// The name used in digests and in `blobs/<algorithm>/`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {input:?}: {reason}")]
pub struct DigestParseError {
    input: String,
    reason: &'static str,
}

impl crate::error::Diagnostic for DigestParseError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Usage
    }
}

impl Digest {
    /// The digest of `bytes` under `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, bytes)
    }

    /// The algorithm part (`sha256`).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part, which is also the blob's file name.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// A short form for messages: `sha256:0123456789ab`.
    pub fn short(&self) -> String {
        format!("{}:{}", self.algorithm.as_str(), &self.hex[..12])
    }
}

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason| DigestParseError {
            input: s.chars().take(140).collect(),
            reason,
        };
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| fail("expected <algorithm>:<hex>"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => {
                return Err(fail(
                    "unsupported algorithm (sha256 and sha512 are supported)",
                ));
            }
        };
        if hex.len() != algorithm.hex_len() {
            return Err(fail("wrong length for its algorithm"));
        }
        // Uppercase hex would name a different file than the registry's digest: refuse it.
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(fail("the hex part must be lowercase hexadecimal"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher for either algorithm that also counts bytes.
#[derive(Clone)]
pub struct Hasher {
    algorithm: Algorithm,
    state: Context,
    len: u64,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hasher({} bytes)", self.len)
    }
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Hasher {
        let state = match algorithm {
            Algorithm::Sha256 => Context::new(&SHA256),
            Algorithm::Sha512 => Context::new(&SHA512),
        };
        Hasher {
            algorithm,
            state,
            len: 0,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        self.state.update(bytes);
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest {
            algorithm: self.algorithm,
            hex: hex::encode(self.state.finish()),
        }
    }
}

/// One read of [`hash_reader`]: large, so a big file costs few system calls.
const READ_BYTES: usize = 1 << 20;

/// Hashes everything `reader` yields (a blob file being verified), calling `on_bytes` with
/// each piece hashed. Past its first megabyte, another thread reads ahead into two spare
/// buffers while this one hashes, so a large file costs the hash alone (SHA-256 runs at some
/// 1.8 GB/s on a core with SHA extensions; reading in line with it cost a fifth of that).
pub fn hash_reader<R: Read + Send>(
    algorithm: Algorithm,
    mut reader: R,
    on_bytes: &dyn Fn(u64),
) -> io::Result<Hasher> {
    let mut hasher = Hasher::new(algorithm);
    let mut first = vec![0u8; READ_BYTES];
    let n = read_full(&mut reader, &mut first)?;
    hasher.update(&first[..n]);
    on_bytes(n as u64);
    if n < READ_BYTES {
        return Ok(hasher);
    }
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(2);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for buf in [first, vec![0u8; READ_BYTES], vec![0u8; READ_BYTES]] {
        empty_tx.send(buf).expect("receiver alive");
    }
    std::thread::scope(|s| {
        s.spawn(move || {
            while let Ok(mut buf) = empty_rx.recv() {
                let read = read_full(&mut reader, &mut buf);
                let end = !matches!(read, Ok(n) if n == buf.len());
                if full_tx.send(read.map(|n| (buf, n))).is_err() || end {
                    return;
                }
            }
        });
        // Dropping the receivers on an early return stops the reader. A buffer handed back
        // after the reader has seen the end finds it gone: its last piece is still queued.
        while let Ok(read) = full_rx.recv() {
            let (buf, n) = read?;
            hasher.update(&buf[..n]);
            on_bytes(n as u64);
            if n < buf.len() {
                break;
            }
            let _ = empty_tx.send(buf);
        }
        Ok(hasher)
    })
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What a finished transfer held, compared with what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The byte count differs from the descriptor's size.
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    Size {
        /// Size named by the descriptor.
        expected: u64,
        /// Bytes actually received.
        actual: u64,
    },
    /// The content hashes to another digest.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Digest {
        /// Digest named by the descriptor or reference.
        expected: Digest,
        /// Digest of the bytes received.
        actual: Digest,
    },
}

impl crate::error::Diagnostic for Mismatch {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Corrupt
    }
}

/// Checks a finished hasher against the expected digest and (when known) size.
pub fn check(hasher: Hasher, expected: &Digest, size: Option<u64>) -> Result<(), Mismatch> {
    if let Some(expected_size) = size
        && hasher.len() != expected_size
    {
        return Err(Mismatch::Size {
            expected: expected_size,
            actual: hasher.len(),
        });
    }
    let actual = hasher.finish();
    if &actual != expected {
        return Err(Mismatch::Digest {
            expected: expected.clone(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sha256() {
        // Digest of the empty string, as published everywhere.
        assert_eq!(
            Digest::sha256_of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn known_sha512_and_incremental_equals_whole() {
        assert_eq!(
            Digest::of(Algorithm::Sha512, b"abc").hex(),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for alg in Algorithm::ALL {
            let mut h = Hasher::new(alg);
            for piece in data.chunks(999) {
                h.update(piece);
            }
            assert_eq!(h.len(), data.len() as u64);
            assert_eq!(h.finish(), Digest::of(alg, &data));
        }
    }

    #[test]
    fn hash_reader_equals_the_whole_and_stops_on_an_error() {
        for len in [
            0,
            10,
            READ_BYTES,
            READ_BYTES + 1,
            2 * READ_BYTES,
            3 * READ_BYTES + 1,
            4 * READ_BYTES + 1,
            5 * READ_BYTES + 77,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
            let seen = std::sync::atomic::AtomicU64::new(0);
            let on = |n| {
                seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            };
            let h = hash_reader(Algorithm::Sha256, &data[..], &on).unwrap();
            assert_eq!(h.finish(), Digest::sha256_of(&data), "{len}");
            assert_eq!(seen.into_inner(), len as u64);
        }
        /// Three megabytes, then a read error.
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 >= 3 * READ_BYTES {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = buf.len().min(4096);
                self.0 += n;
                Ok(n)
            }
        }
        let e = hash_reader(Algorithm::Sha512, Failing(0), &|_| {}).unwrap_err();
        assert_eq!(e.to_string(), "disk on fire");
    }

    #[test]
    fn parse_round_trip_and_rejects() {
        let s = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(s.parse::<Digest>().unwrap().to_string(), s);
        assert!(s.to_uppercase().parse::<Digest>().is_err());
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!(
            "md5:d41d8cd98f00b204e9800998ecf8427e"
                .parse::<Digest>()
                .is_err()
        );
        assert!("e3b0c442".parse::<Digest>().is_err());
        assert!(
            "sha256:../../../../etc/passwd0000000000000000000000000000000000000000"
                .parse::<Digest>()
                .is_err()
        );
    }

    #[test]
    fn check_reports_size_before_digest() {
        let d = Digest::sha256_of(b"hello");
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(b"hell");
        assert_eq!(
            check(h, &d, Some(5)),
            Err(Mismatch::Size {
                expected: 5,
                actual: 4
            })
        );
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(b"jello");
        assert!(matches!(
            check(h, &d, Some(5)),
            Err(Mismatch::Digest { .. })
        ));
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(b"hello");
        assert_eq!(check(h, &d, Some(5)), Ok(()));
    }
}
