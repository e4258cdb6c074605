//! Platforms (`linux/arm64/v8`) and how a wanted platform matches an index entry.

use std::fmt;
use std::str::FromStr;

use crate::untrusted::Invalid;

/// An OS/architecture/variant triple in the image-spec's vocabulary (GOOS/GOARCH names).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// Why a string is not a platform.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid platform {0:?}: expected os/arch[/variant], each part [a-z0-9][a-z0-9._-]{{0,31}}, e.g. linux/amd64 or linux/arm64/v8"
)]
pub struct PlatformParseError(String);

impl crate::error::Diagnostic for PlatformParseError {
    fn kind(&self) -> crate::error::Kind {
        crate::error::Kind::Usage
    }
}

/// What one part of a platform must look like, after lowercasing: GOOS/GOARCH names and
/// variants as images use them (`linux`, `windows`, `amd64`, `ppc64le`, `v8`, `unknown`).
const PART_GRAMMAR: &str = "[a-z0-9][a-z0-9._-]{0,31} (e.g. linux, amd64, arm64, v8)";

/// Whether a lowercased part matches [`PART_GRAMMAR`].
fn valid_part(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=32).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
}

impl Platform {
    /// Builds a platform from its parts, normalizing common aliases (x86_64, aarch64).
    /// Trusted input only: see [`Platform::parse_parts`].
    fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let (architecture, implied_variant) = match architecture.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => ("amd64".to_owned(), None),
            "aarch64" => ("arm64".to_owned(), None),
            "armhf" => ("arm".to_owned(), Some("v7")),
            "armel" => ("arm".to_owned(), Some("v6")),
            "i386" | "i686" => ("386".to_owned(), None),
            other => (other.to_owned(), None),
        };
        let variant = variant
            .filter(|v| !v.is_empty())
            .map(str::to_ascii_lowercase)
            .or(implied_variant.map(str::to_owned));
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// Builds a platform from parts a registry, an image or a bundle declares: lowercased,
    /// aliases normalized, then each part checked against `[a-z0-9][a-z0-9._-]{0,31}`. An
    /// empty variant means none. Anything else (a newline, a quote, a space, a slash,
    /// non-ASCII, an overlong part) is refused: platforms reach restore.sh and file names.
    pub fn parse_parts(
        os: &str,
        architecture: &str,
        variant: Option<&str>,
    ) -> Result<Platform, Invalid> {
        let p = Platform::new(os, architecture, variant);
        if !valid_part(&p.os) {
            return Err(Invalid::new("platform os", os, PART_GRAMMAR));
        }
        if !valid_part(&p.architecture) {
            return Err(Invalid::new(
                "platform architecture",
                architecture,
                PART_GRAMMAR,
            ));
        }
        if let Some(v) = &p.variant
            && !valid_part(v)
        {
            return Err(Invalid::new(
                "platform variant",
                variant.unwrap_or(v),
                PART_GRAMMAR,
            ));
        }
        Ok(p)
    }

    /// The platform this binary runs on, as container images name it.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        let variant = match arch {
            "arm" => Some("v7"),
            _ => None,
        };
        Platform::new("linux", arch, variant)
    }

    /// Operating system (`linux`).
    pub fn os(&self) -> &str {
        &self.os
    }

    /// Architecture (`amd64`, `arm64`).
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// Variant (`v8`), when one is set.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// The entry attestation manifests carry (`unknown/unknown`): not a runnable platform.
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" && self.architecture == "unknown"
    }

    /// The variant an image means when it names none (arm64 images are v8, arm v7).
    fn effective_variant(&self) -> Option<&str> {
        match (self.variant.as_deref(), self.architecture.as_str()) {
            (Some(v), _) => Some(v),
            (None, "arm64") => Some("v8"),
            (None, "arm") => Some("v7"),
            (None, "amd64") => Some("v1"),
            (None, _) => None,
        }
    }

    /// Whether an image for `candidate` satisfies a request for `self`.
    ///
    /// OS and architecture must be equal; a request without a variant takes any variant,
    /// one with a variant takes that variant (an absent variant counts as the default one).
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        match &self.variant {
            None => true,
            Some(_) => self.effective_variant() == candidate.effective_variant(),
        }
    }
}

impl Platform {
    /// How well `candidate` serves a request for `self`: `None` when it does not, 2 when the
    /// variants agree (counting defaults), 1 for another compatible variant. Among several
    /// entries of an index (`linux/arm` matches v5, v6 and v7) the best one is kept, as
    /// containerd and docker pick it.
    pub fn preference(&self, candidate: &Platform) -> Option<u8> {
        if !self.matches(candidate) {
            return None;
        }
        Some(
            if self.effective_variant() == candidate.effective_variant() {
                2
            } else {
                1
            },
        )
    }

    /// The candidate that serves `self` best (see [`Platform::preference`]); the first in
    /// order among equals.
    pub fn best_of<'a, T>(
        &self,
        candidates: impl IntoIterator<Item = (T, &'a Platform)>,
    ) -> Option<T> {
        candidates
            .into_iter()
            .enumerate()
            .filter_map(|(i, (t, p))| {
                self.preference(p)
                    .map(|rank| (rank, std::cmp::Reverse(i), t))
            })
            .max_by_key(|(rank, i, _)| (*rank, *i))
            .map(|(_, _, t)| t)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Platform {
    type Err = PlatformParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = || PlatformParseError(s.to_owned());
        let parts: Vec<&str> = s.trim().split('/').collect();
        match parts.as_slice() {
            [os, arch] => Platform::parse_parts(os, arch, None).map_err(|_| fail()),
            [os, arch, variant] if !variant.is_empty() => {
                Platform::parse_parts(os, arch, Some(variant)).map_err(|_| fail())
            }
            _ => Err(fail()),
        }
    }
}

impl TryFrom<String> for Platform {
    type Error = PlatformParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Platform> for String {
    fn from(p: Platform) -> String {
        p.to_string()
    }
}

/// Operating systems `--platform` accepts: Go's GOOS names, as images declare them.
const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];

/// Architectures `--platform` accepts: Go's GOARCH names (after the aliases `x86_64`,
/// `aarch64`, `armhf`, `i386` are mapped).
const KNOWN_ARCH: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc",
    "ppc64", "ppc64le", "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm",
];

/// A `--platform` value that is not one: the value as typed and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid platform {value:?}: {problem}; expected os/arch[/variant] (e.g. linux/amd64, \
     linux/arm64/v8){}",
    if *.all_allowed { " or `all`" } else { "" }
)]
pub struct RequestedPlatformError {
    /// The value as given.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
    /// Whether `all` would have been accepted here (`bundle --platform`, not `export`'s).
    pub all_allowed: bool,
}

/// What `--platform` asks for: one platform, or every one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedPlatform {
    /// `all`: every platform of an index.
    All,
    /// One platform.
    One(Platform),
}

/// ` (did you mean X?)` when a known name is one or two edits away from `typed`.
fn suggestion(typed: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (strsim::levenshtein(typed, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!(" (did you mean {k}?)"))
        .unwrap_or_default()
}

impl Platform {
    /// Parses a platform the user asked for, checked against the names images use (GOOS,
    /// GOARCH; an arm/arm64/amd64 variant is `vN`): a typo such as `linux/amd46` is refused
    /// here, before any registry is asked for an image that cannot match. Registry-declared
    /// platforms go through [`Platform::parse_parts`], which knows no vocabulary.
    pub fn parse_requested(value: &str) -> Result<Platform, RequestedPlatformError> {
        let fail = |problem: String| RequestedPlatformError {
            value: value.to_owned(),
            problem,
            all_allowed: false,
        };
        let p: Platform = value.parse().map_err(|_| {
            fail("not of the form os/arch[/variant], each part [a-z0-9][a-z0-9._-]*".into())
        })?;
        if !KNOWN_OS.contains(&p.os()) {
            let hint = suggestion(p.os(), KNOWN_OS);
            return Err(fail(format!("unknown operating system {:?}{hint}", p.os())));
        }
        if !KNOWN_ARCH.contains(&p.architecture()) {
            let hint = suggestion(p.architecture(), KNOWN_ARCH);
            return Err(fail(format!(
                "unknown architecture {:?}{hint}",
                p.architecture()
            )));
        }
        let numbered = |v: &str| {
            v.strip_prefix('v').is_some_and(|n| {
                !n.is_empty()
                    && n.split('.')
                        .all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
        };
        if let Some(v) = p.variant()
            && ["arm", "arm64", "amd64"].contains(&p.architecture())
            && !numbered(v)
        {
            return Err(fail(format!(
                "unknown {} variant {v:?} (variants look like v7, v8, v8.2)",
                p.architecture()
            )));
        }
        Ok(p)
    }
}

impl FromStr for RequestedPlatform {
    type Err = RequestedPlatformError;

    /// `all`, or a platform checked as [`Platform::parse_requested`] does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("all") {
            return Ok(RequestedPlatform::All);
        }
        Platform::parse_requested(s)
            .map(RequestedPlatform::One)
            .map_err(|e| RequestedPlatformError {
                all_allowed: true,
                ..e
            })
    }
}

/// Which platforms of a multi-platform image to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformFilter {
    /// Every entry of an index, attestations included.
    All,
    /// Exactly these (each must be present).
    Only(Vec<Platform>),
}

impl PlatformFilter {
    /// The default: the platform ferry runs on.
    pub fn host() -> PlatformFilter {
        PlatformFilter::Only(vec![Platform::host()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64/v8");
        assert_eq!(p("Linux/x86_64").to_string(), "linux/amd64");
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v8".parse::<Platform>().is_err());
        assert!("linux/amd64/v1/x".parse::<Platform>().is_err());
        assert!("linux/amd64/".parse::<Platform>().is_err());
        assert!("linux/am d64".parse::<Platform>().is_err());
    }

    #[test]
    fn parts_from_registries_are_checked() {
        let ok =
            |os, arch, v: Option<&str>| Platform::parse_parts(os, arch, v).unwrap().to_string();
        assert_eq!(ok("linux", "amd64", None), "linux/amd64");
        assert_eq!(ok("Linux", "AArch64", Some("")), "linux/arm64");
        assert_eq!(ok("linux", "arm", Some("V7")), "linux/arm/v7");
        assert_eq!(ok("windows", "amd64", None), "windows/amd64");
        assert_eq!(ok("unknown", "unknown", None), "unknown/unknown");
        for arch in [
            "ppc64le", "s390x", "riscv64", "386", "mips64le", "loong64", "wasm",
        ] {
            assert_eq!(ok("linux", arch, None), format!("linux/{arch}"));
        }
        for v in ["v5", "v6", "v7", "v8", "v8.2", "v1"] {
            assert_eq!(ok("linux", "arm64", Some(v)), format!("linux/arm64/{v}"));
        }
        let spoof = "v8\ndocker.io/library/nginx:latest sha256:00 x 1 linux/amd64";
        let bad: &[(&str, &str, Option<&str>, &str)] = &[
            ("linux", "amd64", Some("v8\n"), "platform variant"),
            ("linux", "amd64", Some(spoof), "platform variant"),
            ("linux\ntouch /tmp/x", "amd64", None, "platform os"),
            ("linux", "amd64\n", None, "platform architecture"),
            ("", "amd64", None, "platform os"),
            ("linux", "", None, "platform architecture"),
            ("linux", "amd 64", None, "platform architecture"),
            ("linux", "amd64", Some("v\"8"), "platform variant"),
            ("linux", "amd64", Some("v'8"), "platform variant"),
            ("linux", "amd64", Some("v8/x"), "platform variant"),
            ("linux", "amd64", Some("v\\8"), "platform variant"),
            ("línux", "amd64", None, "platform os"),
            ("linux", "amd64", Some("-v8"), "platform variant"),
            ("linux", "amd64", Some("v8,linux/arm64"), "platform variant"),
        ];
        for (os, arch, v, field) in bad {
            let e = Platform::parse_parts(os, arch, *v).unwrap_err();
            assert_eq!(&e.field, field, "{os:?} {arch:?} {v:?}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        let long = "a".repeat(33);
        assert!(Platform::parse_parts("linux", &long, None).is_err());
        assert!(Platform::parse_parts("linux", &long[..32], None).is_ok());
    }

    #[test]
    fn requested_platforms_name_the_typo() {
        let ok = |s: &str| Platform::parse_requested(s).unwrap().to_string();
        assert_eq!(ok("linux/amd64"), "linux/amd64");
        assert_eq!(ok("Linux/x86_64"), "linux/amd64");
        assert_eq!(ok("linux/arm64/v8"), "linux/arm64/v8");
        assert_eq!(ok("linux/arm/v7"), "linux/arm/v7");
        assert_eq!(ok("windows/amd64"), "windows/amd64");
        assert_eq!(ok("linux/riscv64"), "linux/riscv64");
        assert_eq!(
            "ALL".parse::<RequestedPlatform>().unwrap(),
            RequestedPlatform::All
        );
        let err = |s: &str| Platform::parse_requested(s).unwrap_err().to_string();
        let e = err("linux/amd46");
        assert!(
            e.contains("\"linux/amd46\"")
                && e.contains("unknown architecture \"amd46\" (did you mean amd64?)"),
            "{e}"
        );
        assert!(
            e.contains("os/arch[/variant]") && !e.contains("`all`"),
            "{e}"
        );
        // `--platform` of bundle and lock also takes `all`, and says so.
        let requested = "linux/amd46".parse::<RequestedPlatform>().unwrap_err();
        assert!(requested.to_string().contains("`all`"), "{requested}");
        assert!(err("lnux/amd64").contains("(did you mean linux?)"));
        assert!(err("linux").contains("not of the form"));
        assert!(err("linux/arm64/8").contains("variant"));
        assert!(err("plan/b").contains("unknown operating system"));
        // Registry-declared platforms keep their own, vocabulary-free check.
        assert!(Platform::parse_parts("unknown", "unknown", None).is_ok());
    }

    #[test]
    fn matching_follows_default_variants() {
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(p("linux/arm64/v8").matches(&p("linux/arm64")));
        assert!(p("linux/arm/v7").matches(&p("linux/arm")));
        assert!(!p("linux/arm/v6").matches(&p("linux/arm/v7")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
        assert!(!p("linux/amd64").matches(&p("windows/amd64")));
        assert!(p("linux/arm").matches(&p("linux/arm/v6")));
        assert_eq!(p("linux/arm").preference(&p("linux/arm/v7")), Some(2));
        assert_eq!(p("linux/arm").preference(&p("linux/arm/v6")), Some(1));
        assert_eq!(p("linux/arm64").preference(&p("linux/arm64")), Some(2));
        assert_eq!(p("linux/arm64").preference(&p("linux/amd64")), None);
    }
}
