//! The names of the supply chain's entries in a bundle and a registry: the fallback-tag
//! convention, where `REPO:sha256-<hex>.sig` is cosign's signature of the manifest
//! `sha256:<hex>` (`.att` attestations, `.sbom` SBOMs) and `REPO:sha256-<hex>` an index of its
//! OCI referrers. The store tells such entries from images by name alone.

use crate::digest::Digest;

/// What a referrer entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReferrerKind {
    /// cosign's signature tag (`.sig`).
    Signature,
    /// cosign's attestation tag (`.att`).
    Attestation,
    /// cosign's SBOM tag (`.sbom`).
    Sbom,
    /// The OCI referrers of the manifest (the fallback tag, no suffix).
    Referrers,
}

impl ReferrerKind {
    /// Every kind, in the order ferry looks for them.
    pub const ALL: [ReferrerKind; 4] = [
        ReferrerKind::Signature,
        ReferrerKind::Attestation,
        ReferrerKind::Sbom,
        ReferrerKind::Referrers,
    ];

    /// The tag suffix after `sha256-<hex>`.
    pub fn suffix(self) -> &'static str {
        match self {
            ReferrerKind::Signature => ".sig",
            ReferrerKind::Attestation => ".att",
            ReferrerKind::Sbom => ".sbom",
            ReferrerKind::Referrers => "",
        }
    }

    /// A word for people and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ReferrerKind::Signature => "signature",
            ReferrerKind::Attestation => "attestation",
            ReferrerKind::Sbom => "sbom",
            ReferrerKind::Referrers => "referrers",
        }
    }
}

/// The tag naming `kind` for the manifest `subject`: `sha256-<hex>.sig` and so on.
fn referrer_tag(subject: &Digest, kind: ReferrerKind) -> String {
    format!(
        "{}-{}{}",
        subject.algorithm().as_str(),
        subject.hex(),
        kind.suffix()
    )
}

/// The subject and kind a tag names, when it follows the fallback-tag convention.
fn parse_referrer_tag(tag: &str) -> Option<(Digest, ReferrerKind)> {
    let (digest, kind) = match tag.rsplit_once('.') {
        Some((d, "sig")) => (d, ReferrerKind::Signature),
        Some((d, "att")) => (d, ReferrerKind::Attestation),
        Some((d, "sbom")) => (d, ReferrerKind::Sbom),
        Some(_) => return None,
        None => (tag, ReferrerKind::Referrers),
    };
    let (algorithm, hex) = digest.split_once('-')?;
    let digest: Digest = format!("{algorithm}:{hex}").parse().ok()?;
    Some((digest, kind))
}

/// A referrer entry's name taken apart: `registry/repository`, subject and kind.
pub fn parse_referrer_name(name: &str) -> Option<(String, Digest, ReferrerKind)> {
    let reference: super::ImageRef = name.parse().ok()?;
    if reference.digest().is_some() {
        return None;
    }
    let (subject, kind) = parse_referrer_tag(reference.tag()?)?;
    Some((reference.name(), subject, kind))
}

/// Whether an index.json name is a referrer entry rather than an image.
pub fn is_referrer_name(name: &str) -> bool {
    parse_referrer_name(name).is_some()
}

/// The name of `kind` for `subject` in the repository of `image` (`registry/repo`).
pub fn referrer_name(repository: &str, subject: &Digest, kind: ReferrerKind) -> String {
    format!("{repository}:{}", referrer_tag(subject, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        let d = Digest::sha256_of(b"x");
        for kind in ReferrerKind::ALL {
            let tag = referrer_tag(&d, kind);
            assert_eq!(parse_referrer_tag(&tag), Some((d.clone(), kind)), "{tag}");
        }
        assert_eq!(
            referrer_tag(&d, ReferrerKind::Signature),
            format!("sha256-{}.sig", d.hex())
        );
        for not in ["1.0", "latest", "sha256-abc.sig", "sha256-zz.att", "v1.sig"] {
            assert_eq!(parse_referrer_tag(not), None, "{not}");
        }
        let name = referrer_name("127.0.0.1:5000/app", &d, ReferrerKind::Sbom);
        let (repo, subject, kind) = parse_referrer_name(&name).unwrap();
        assert_eq!(
            (repo.as_str(), subject, kind),
            ("127.0.0.1:5000/app", d, ReferrerKind::Sbom)
        );
        assert!(!is_referrer_name("127.0.0.1:5000/app:1.0"));
    }
}
