//! Strings a registry or a bundle provides: the grammars they must match before ferry writes
//! them anywhere (index.json, ferry.lock, restore.sh, a file name, a log), and how a refused
//! one is shown. restore.sh runs as root on nodes; a newline or a quote in a platform, a media
//! type or a name must never reach it.

use crate::reference::ImageRef;

/// The longest reference ferry records: distribution's 255-byte name, a 128-byte tag and a
/// sha512 digest fit with room to spare.
const MAX_REFERENCE_BYTES: usize = 600;

/// How much of a refused value a message shows.
const SHOWN_CHARS: usize = 80;

/// A registry- or bundle-provided value that does not match its grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value}: expected {expected}")]
pub struct Invalid {
    /// What the value is (`platform variant`, `media type`, `reference name`).
    pub field: &'static str,
    /// The value as shown: quoted, escaped and shortened (see [`shown`]).
    pub value: String,
    /// The grammar it must match, for people.
    pub expected: &'static str,
}

impl crate::error::Diagnostic for Invalid {
    fn kind(&self) -> crate::error::Kind {
        // Untrusted values come from registries and bundles, never from the command line.
        crate::error::Kind::Protocol
    }
}

impl Invalid {
    /// An error for `raw`, which is shown escaped and shortened, never as is.
    pub fn new(field: &'static str, raw: &str, expected: &'static str) -> Invalid {
        Invalid {
            field,
            value: shown(raw),
            expected,
        }
    }
}

/// An untrusted string as a message may show it: quoted, control characters and quotes
/// escaped (a newline shows as `\n`), at most 80 characters of it.
pub fn shown(raw: &str) -> String {
    let mut chars = raw.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    let more = chars.next().is_some();
    format!("{head:?}{}", if more { "..." } else { "" })
}

/// RFC 6838 `restricted-name`: a letter or digit, then up to 126 of letters, digits and
/// `! # $ & - ^ _ . +`. No space, quote, backslash, `;` or control character.
fn restricted_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=127).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(c))
}

/// Checks a media type against RFC 6838 (`type/subtype`, a `+suffix` allowed, no parameters),
/// as the OCI image spec requires of `mediaType`.
pub fn check_media_type(s: &str) -> Result<(), Invalid> {
    match s.split_once('/') {
        Some((t, sub)) if restricted_name(t) && restricted_name(sub) => Ok(()),
        _ => Err(Invalid::new(
            "media type",
            s,
            "type/subtype as RFC 6838 defines it (e.g. application/vnd.oci.image.manifest.v1+json)",
        )),
    }
}

/// Checks that `s` is a full, normalized image reference as ferry records it
/// (`registry/repository[:tag][@digest]`, exactly as ferry would write it back) and returns it.
/// A short name (`alpine`, `3.20`) is refused: restore.sh and containerd need the full one.
pub fn check_reference_name(s: &str) -> Result<ImageRef, Invalid> {
    const EXPECTED: &str = "a full image reference such as docker.io/library/alpine:3.20 \
                            (letters, digits and . _ - / : @ + = only)";
    let fail = || Invalid::new("reference name", s, EXPECTED);
    // The reference grammar's characters only; oci-spec's `\w` in tags takes any Unicode letter.
    if s.is_empty()
        || s.len() > MAX_REFERENCE_BYTES
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@+=".contains(&b))
    {
        return Err(fail());
    }
    match s.parse::<ImageRef>() {
        Ok(r) if r.to_string() == s => Ok(r),
        _ => Err(fail()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn media_types() {
        for ok in [
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "text/plain",
        ] {
            assert_eq!(check_media_type(ok), Ok(()), "{ok}");
        }
        let long = format!("application/{}", "a".repeat(128));
        for bad in [
            "",
            "application",
            "application/",
            "/json",
            "application/json; charset=utf-8",
            "application/vnd.oci.image.manifest.v1+json\nFERRY_IMAGES",
            "application/vnd.oci\"x",
            "application/vnd.oci\\x",
            "application/vnd oci",
            "application/vnd.oci'x",
            "application/vnd.ocié",
            "application/a/b",
            "-application/json",
            long.as_str(),
        ] {
            assert!(check_media_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reference_names() {
        for ok in [
            "docker.io/library/alpine:3.20".to_owned(),
            "127.0.0.1:5000/a/b_c-d:V1.0_rc".to_owned(),
            format!("quay.io/o/app@{D}"),
            format!("quay.io/o/app:1@{D}"),
        ] {
            assert_eq!(check_reference_name(&ok).unwrap().to_string(), ok);
        }
        let hostile = "evil\nFERRY_IMAGES\ntouch /tmp/x\ncat <<'FERRY_IMAGES'";
        let long_tag = format!("docker.io/library/alpine:{}", "a".repeat(129));
        let long = format!("docker.io/{}:1", "a/".repeat(300));
        for bad in [
            "",
            hostile,
            "alpine",
            "alpine:3.20",
            "3.20",
            "docker.io/library/alpine:3.20\n",
            " docker.io/library/alpine:3.20",
            "docker.io/library/alpine:3.20 x",
            "docker.io/library/alpine:\"3\"",
            "docker.io/library/alpine:3'",
            "docker.io/library/alpine:3\\",
            "docker.io/library/alpine:é",
            "docker://docker.io/library/alpine:3",
            "index.docker.io/library/alpine:3",
            "docker.io/library/Alpine:3",
            long_tag.as_str(),
            long.as_str(),
        ] {
            let e = check_reference_name(bad).unwrap_err();
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn shown_escapes_and_shortens() {
        assert_eq!(shown("a\nb\"c"), r#""a\nb\"c""#);
        let s = shown(&"x".repeat(1000));
        assert!(s.len() < 100 && s.ends_with("..."), "{s}");
        assert_eq!(shown("é"), "\"é\"");
    }
}
