//! `--key`: checking a bundle's cosign signatures, shared by `verify` and `restore`.

use std::path::Path;

use ferry::store::BundleSource;
use ferry::supply::cosign::{ImageVerdict, PublicKey, verify_bundle};

use super::{Failure, output};

/// Reads a public key file; a bad key is a usage error (exit 2).
pub fn load_key(path: &Path) -> Result<PublicKey, Failure> {
    PublicKey::load(path).map_err(Failure::local)
}

/// Every image's verdict, read from the bundle alone.
pub fn check(layout: &dyn BundleSource, key: &PublicKey) -> Result<Vec<ImageVerdict>, Failure> {
    Ok(verify_bundle(layout, key)?)
}

/// Names every image that failed, on stderr; returns how many did.
pub fn report_failures(verdicts: &[ImageVerdict]) -> usize {
    let failed: Vec<_> = verdicts.iter().filter(|v| !v.verdict.ok()).collect();
    for v in &failed {
        output::error(&format!("{} ({}): {}", v.reference, v.digest, v.verdict));
    }
    failed.len()
}

/// The verdicts as JSON.
pub fn json(verdicts: &[ImageVerdict]) -> serde_json::Value {
    verdicts
        .iter()
        .map(|v| {
            serde_json::json!({
                "reference": v.reference,
                "digest": v.digest,
                "verdict": v.verdict.as_str(),
                "detail": v.verdict.to_string(),
            })
        })
        .collect()
}
