//! The specifications' grammars as regexes, transcribed from the texts (OCI image-spec
//! descriptor.md, OCI distribution-spec "Pulling manifests", distribution/reference's
//! grammar, RFC 6838, RFC 9110) rather than from ferry's parsers.

use std::sync::LazyLock;

use regex::Regex;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap()
}

/// image-spec descriptor.md: `algorithm ":" encoded`.
pub static DIGEST: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"));

/// image-spec descriptor.md, registered algorithms: sha256 and sha512, lowercase hex only.
pub static REGISTERED_DIGEST: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$"));

/// distribution-spec `<name>` path components.
pub const PATH: &str =
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*";

/// distribution/reference domain: DNS-ish labels (or a bracketed IPv6), optional port.
pub const DOMAIN: &str = r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?";

/// distribution-spec `<reference>` as a tag (ASCII only).
pub const TAG: &str = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}";

/// A full reference as ferry writes it: `domain/path[:tag][@digest]`.
pub static FULL_REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"^{DOMAIN}/{PATH}(?::{TAG})?(?:@(?:sha256:[a-f0-9]{{64}}|sha512:[a-f0-9]{{128}}))?$"
    ))
});

/// RFC 6838 section 4.2 `type-name "/" subtype-name`, each a `restricted-name`.
pub static MEDIA_TYPE: LazyLock<Regex> = LazyLock::new(|| {
    let name = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}";
    re(&format!("^{name}/{name}$"))
});

/// ferry's platform grammar as documented in its error message and README (the image-spec
/// names GOOS/GOARCH values without a grammar of its own).
pub static PLATFORM: LazyLock<Regex> = LazyLock::new(|| {
    let part = r"[a-z0-9][a-z0-9._-]{0,31}";
    re(&format!("^{part}/{part}(?:/{part})?$"))
});

/// One part of [`PLATFORM`].
pub static PLATFORM_PART: LazyLock<Regex> = LazyLock::new(|| re("^[a-z0-9][a-z0-9._-]{0,31}$"));

/// RFC 9110 section 10.2.3: `Retry-After = HTTP-date / delay-seconds`, delay-seconds `1*DIGIT`.
pub static DELAY_SECONDS: LazyLock<Regex> = LazyLock::new(|| re(r"^[0-9]+$"));

/// `HOST[:PORT][/PATH]` as containers-registries.conf(5) and `--mirror` take a location.
pub static LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:.]+\])(?::[0-9]+)?(?:/{PATH})?$"
    ))
});
