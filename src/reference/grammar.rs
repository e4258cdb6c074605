//! distribution's reference grammar (`name[:tag][@digest]`), checked by hand.
//!
//! Hand-written, not oci-spec's `Reference::from_str`: that compiles distribution's reference
//! regex on first use, measured at about 50 ms of CPU before ferry's first request, and its tag
//! class `\w` takes any Unicode letter where the OCI grammar means ASCII. The grammar is small
//! enough to walk directly:
//!
//! ```text
//! reference      := name [":" tag] ["@" digest]
//! name           := [domain "/"] path-component ("/" path-component)*
//! domain         := host [":" port]
//! host           := domain-label ("." domain-label)* | "[" [a-fA-F0-9:]+ "]"
//! domain-label   := [a-zA-Z0-9] | [a-zA-Z0-9] [a-zA-Z0-9-]* [a-zA-Z0-9]
//! port           := [0-9]+
//! path-component := [a-z0-9]+ (separator [a-z0-9]+)*
//! separator      := "." | "_" | "__" | "-"+
//! tag            := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest         := algorithm ":" [0-9a-fA-F]{32,}
//! algorithm      := alpha-run ([-_+.] alpha-run)*   (alpha-run := [A-Za-z][A-Za-z0-9]*)
//! ```

use crate::docker_hub;

use super::starts_with_registry;

/// distribution's limit on a repository name, checked (as oci-spec did) after normalization.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// The longest tag: a first character and 127 more.
const TAG_LENGTH_MAX: usize = 128;

/// A reference split into its parts, Docker Hub names normalized; the digest is not yet typed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Parts<'a> {
    pub registry: String,
    pub repository: String,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

/// Why text does not follow the grammar. The messages are the ones oci-spec gave.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum GrammarError {
    /// Not `name[:tag][@digest]`.
    #[error("invalid reference format")]
    Format,
    /// The normalized repository is longer than distribution allows.
    #[error("repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")]
    NameTooLong,
    /// A known algorithm with an encoded part of the wrong length.
    #[error("invalid checksum digest length")]
    DigestLength,
    /// An algorithm the grammar does not know.
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
}

/// Splits and checks a reference, normalizing Docker Hub names as Docker does (`alpine` ->
/// `docker.io`, `library/alpine`; no tag and no digest -> tag `latest`).
pub(super) fn parse(text: &str) -> Result<Parts<'_>, GrammarError> {
    // Neither the name nor the tag holds an `@`, and the digest holds no `@`.
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (text, None),
    };
    // Only the last path component may carry the `:tag` (a `:` before a `/` is a port).
    let last = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last..].split_once(':') {
        Some((_, tag)) => (&rest[..rest.len() - tag.len() - 1], Some(tag)),
        None => (rest, None),
    };
    if !is_name(name) || !tag.is_none_or(is_tag) || !digest.is_none_or(is_digest) {
        return Err(GrammarError::Format);
    }
    let (registry, repository) = split_domain(name);
    if repository.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(GrammarError::NameTooLong);
    }
    if let Some(digest) = digest {
        check_digest_length(digest)?;
    }
    Ok(Parts {
        registry,
        repository,
        tag: if tag.is_none() && digest.is_none() {
            Some("latest")
        } else {
            tag
        },
        digest,
    })
}

/// `[domain "/"] path-component ("/" path-component)*`. A first component that names a registry
/// by Docker's rule must be a valid domain; any other first component is a path component, or
/// a one-label host (`A/a`) that lands on Docker Hub and that the caller refuses for its case.
fn is_name(name: &str) -> bool {
    let mut components = name.split('/');
    let first = components.next().unwrap_or_default();
    let first_ok = if !name.contains('/') {
        is_path_component(first)
    } else if starts_with_registry(name) {
        is_domain(first)
    } else {
        is_path_component(first) || is_domain_label(first)
    };
    first_ok && components.all(is_path_component)
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separator `.`, `_`, `__` or a run of `-`.
fn is_path_component(s: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut rest = s.as_bytes();
    loop {
        let run = rest.iter().take_while(|b| alnum(b)).count();
        if run == 0 {
            return false;
        }
        rest = &rest[run..];
        if rest.is_empty() {
            return true;
        }
        let sep = rest.iter().take_while(|b| !alnum(b)).count();
        let separator = &rest[..sep];
        if !matches!(separator, b"." | b"_" | b"__") && !separator.iter().all(|&b| b == b'-') {
            return false;
        }
        rest = &rest[sep..];
    }
}

/// `host [":" port]`: dot-separated labels or a bracketed IPv6 address.
fn is_domain(s: &str) -> bool {
    let (host_ok, after) = match s.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((address, after)) => (is_ipv6(address), after),
            None => return false,
        },
        None => {
            let end = s.find(':').unwrap_or(s.len());
            (s[..end].split('.').all(is_domain_label), &s[end..])
        }
    };
    let is_port = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    host_ok && (after.is_empty() || after.strip_prefix(':').is_some_and(is_port))
}

/// distribution's IPv6 form: hex digits and colons only (no zone, no embedded IPv4).
fn is_ipv6(address: &str) -> bool {
    !address.is_empty() && address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
}

/// `[a-zA-Z0-9]`, or alphanumerics and dashes starting and ending alphanumeric.
fn is_domain_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, ASCII only.
fn is_tag(tag: &str) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let bytes = tag.as_bytes();
    bytes.len() <= TAG_LENGTH_MAX
        && bytes.first().is_some_and(word)
        && bytes.iter().all(|b| word(b) || matches!(b, b'.' | b'-'))
}

/// `algorithm ":" hex{32,}`, each part of the algorithm starting with a letter.
fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let part_ok = |part: &str| {
        part.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && part.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && algorithm.split(['-', '_', '+', '.']).all(part_ok)
}

/// The encoded length each known algorithm has (the caller then parses the digest itself).
fn check_digest_length(digest: &str) -> Result<(), GrammarError> {
    let (algorithm, hex) = digest.split_once(':').ok_or(GrammarError::Format)?;
    let expected = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(GrammarError::DigestUnsupported),
    };
    if hex.len() == expected {
        Ok(())
    } else {
        Err(GrammarError::DigestLength)
    }
}

/// Docker's split of a name into registry and repository: the first component is the
/// registry when it looks like a host, else the name is on Docker Hub, where a one-component
/// name is an official image under `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if starts_with_registry(name) => (first, rest),
        _ => (docker_hub::REGISTRY, name),
    };
    // distribution renames only the legacy index host (not registry-1.docker.io).
    let registry = if registry == "index.docker.io" {
        docker_hub::REGISTRY
    } else {
        registry
    };
    let repository = if registry == docker_hub::REGISTRY && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_owned()
    };
    (registry.to_owned(), repository)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// `registry repository tag digest`, `-` for what is absent.
    fn split(text: &str) -> String {
        let p = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let (tag, digest) = (p.tag.unwrap_or("-"), p.digest.unwrap_or("-"));
        format!("{} {} {tag} {digest}", p.registry, p.repository)
    }

    #[test]
    fn splits_like_distribution() {
        for (text, parts) in [
            ("busybox", "docker.io library/busybox latest -"),
            // A `:` in a one-component name is a tag, never a port.
            ("test.com:5000", "docker.io library/test.com 5000 -"),
            ("test:5000/repo", "test:5000 repo latest -"),
            ("docker.io/alpine", "docker.io library/alpine latest -"),
            ("index.docker.io/a/b:1", "docker.io a/b 1 -"),
            ("registry-1.docker.io/a:1", "registry-1.docker.io a 1 -"),
            ("foo/foo_bar.com:8080", "docker.io foo/foo_bar.com 8080 -"),
            (
                "Quay.IO/o/a__b--c.d_e:V_1.-",
                "Quay.IO o/a__b--c.d_e V_1.- -",
            ),
            ("[::1]:5000/app", "[::1]:5000 app latest -"),
            ("[fe80::1]/app:1", "[fe80::1] app 1 -"),
            // Domain-shaped but no host by Docker's rule: the caller refuses its uppercase.
            ("A/a", "docker.io A/a latest -"),
        ] {
            assert_eq!(split(text), parts, "{text:?}");
        }
        assert_eq!(
            split(&format!("localhost:5000/a/b:1@{D}")),
            format!("localhost:5000 a/b 1 {D}")
        );
        assert_eq!(
            split(&format!("a@{D}")),
            format!("docker.io library/a - {D}")
        );
    }

    #[test]
    fn refuses_what_the_grammar_does_not_hold() {
        for bad in [
            "",
            ":",
            "@",
            "a:",
            "a@",
            "/a",
            "a/",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "a.-b",
            "a___b",
            "a/B",
            "AB",
            "a:b:c",
            "a/b:c/d",
            "host:/a",
            "host:x/a",
            "-h.io/a",
            "h-.io/a",
            "h..io/a",
            "a.b_c/d",
            "[::1]",
            "[::1]:/a",
            "[::g]/a",
            "[]/a",
            "[::1]x/a",
            "[::1/a",
            "a:-1",
            "a:.1",
            "a@sha256",
            "a@sha256:abc",
            "a@1sha:0123456789abcdef0123456789abcdef",
            "a@sha256:0123456789abcdef0123456789abcdeg",
            "a@s--a:0123456789abcdef0123456789abcdef",
            "a@b@c",
            "a b",
            "a\n",
        ] {
            assert_eq!(parse(bad), Err(GrammarError::Format), "{bad:?}");
        }
        assert!(parse(&format!("a:{}", "t".repeat(TAG_LENGTH_MAX))).is_ok());
        assert!(parse(&format!("a:{}", "t".repeat(TAG_LENGTH_MAX + 1))).is_err());
    }

    #[test]
    fn checks_lengths_after_the_grammar() {
        // The limit counts the normalized repository, `library/` included, as oci-spec did.
        let name = "a".repeat(NAME_TOTAL_LENGTH_MAX - "library/".len());
        assert!(parse(&name).is_ok());
        assert_eq!(parse(&format!("{name}a")), Err(GrammarError::NameTooLong));
        let name = "a".repeat(NAME_TOTAL_LENGTH_MAX);
        assert!(parse(&format!("quay.io/{name}")).is_ok());
        assert_eq!(
            parse(&format!("quay.io/{name}b")),
            Err(GrammarError::NameTooLong)
        );
        let hex32 = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            parse(&format!("a@sha256:{hex32}")),
            Err(GrammarError::DigestLength)
        );
        assert_eq!(
            parse(&format!("a@md5:{hex32}")),
            Err(GrammarError::DigestUnsupported)
        );
        assert_eq!(
            parse(&format!("a@SHA256:{hex32}{hex32}")),
            Err(GrammarError::DigestUnsupported)
        );
        assert!(parse(&format!("a@sha384:{hex32}{hex32}{hex32}")).is_ok());
        assert!(parse(&format!("a@sha256:{}", D[7..].to_uppercase())).is_ok());
    }
}
