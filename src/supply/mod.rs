//! The supply chain that travels with images: cosign signatures, attestations and SBOMs, and
//! OCI 1.1 referrers.
//!
//! Inside a bundle they follow the fallback-tag convention (as regclient's ocidir does): the
//! index.json entry `REPO:sha256-<hex>.sig` is cosign's signature of the manifest
//! `sha256:<hex>` (`.att` attestations, `.sbom` SBOMs), and `REPO:sha256-<hex>` is an index
//! listing that manifest's OCI referrers. ferry tells these entries from images by that name
//! alone, so a layout written by another tool reads the same way.

pub mod cosign;
mod discover;

pub use discover::{Discovered, MAX_REFERRERS, discover, discover_all};

/// The names of referrer entries belong to references; re-exported where they are fetched.
pub use crate::reference::{ReferrerKind, is_referrer_name, parse_referrer_name, referrer_name};
