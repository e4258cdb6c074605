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

/// A string from outside (a registry's error message, a header, a bundle's or an archive's
/// names, a file name, the Kubernetes API) as a terminal or a log may show it: every control
/// character escaped (`\n`, `\r`, `\t`, `\0`, else `\u{1b}`: C0, DEL and the C1 range, in
/// which 0x9b is a CSI to some terminals), and the invisible characters that reorder or hide
/// text (bidi overrides and isolates, zero-width marks). A registry can then neither clear the
/// screen nor forge a line such as "bundled 9 of 9 images". The one escaping function of the
/// crate: [`shown`] and the CLI's output build on it. JSON needs none (it escapes by itself).
pub fn printable(raw: &str) -> std::borrow::Cow<'_, str> {
    if !raw.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len() + 8);
    for c in raw.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Control characters, and format characters that reorder or hide what a terminal shows.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// An untrusted string as a message may show it: quoted, escaped by [`printable`] (a newline
/// shows as `\n`) with its quotes and backslashes escaped too, at most 80 characters of it.
pub fn shown(raw: &str) -> String {
    let mut chars = raw.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    let more = chars.next().is_some();
    let quoted = head.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "\"{}\"{}",
        printable(&quoted),
        if more { "..." } else { "" }
    )
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
    fn printable_escapes_what_a_terminal_would_obey() {
        assert_eq!(printable("alpine:3.20 é ✓"), "alpine:3.20 é ✓");
        assert!(matches!(printable("plain"), std::borrow::Cow::Borrowed(_)));
        let hostile =
            "\u{1b}[2J\u{1b}[Hbundled 9 of 9 images\r\n\0x\u{9b}31m\u{7f}\u{202e}\u{200b}";
        let shown = printable(hostile);
        assert_eq!(
            shown,
            "\\u{1b}[2J\\u{1b}[Hbundled 9 of 9 images\\r\\n\\0x\\u{9b}31m\\u{7f}\\u{202e}\\u{200b}"
        );
        assert!(!shown.chars().any(needs_escape), "{shown}");
    }

    #[test]
    fn shown_escapes_and_shortens() {
        assert_eq!(shown("a\nb\"c"), r#""a\nb\"c""#);
        let s = shown(&"x".repeat(1000));
        assert!(s.len() < 100 && s.ends_with("..."), "{s}");
        assert_eq!(shown("é"), "\"é\"");
    }
}
