//! Platforms (`linux/arm64/v8`) and how a wanted platform matches an index entry.

use std::fmt;
use std::str::FromStr;

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
#[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8")]
pub struct PlatformParseError(String);

impl Platform {
    /// Builds a platform from its parts, normalizing common aliases (x86_64, aarch64).
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
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
        let parts: Vec<&str> = s.trim().split('/').collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        match parts.as_slice() {
            [os, arch] if valid(os) && valid(arch) => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if valid(os) && valid(arch) && valid(variant) => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => Err(PlatformParseError(s.to_owned())),
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
