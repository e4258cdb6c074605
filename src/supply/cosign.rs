//! Offline verification of cosign key-based signatures.
//!
//! cosign stores a signature of the manifest `sha256:<hex>` as a manifest tagged
//! `sha256-<hex>.sig`; each of its `application/vnd.dev.cosign.simplesigning.v1+json` layers is
//! a payload naming the signed digest (`critical.image.docker-manifest-digest`), with the
//! signature over the payload's bytes, base64, in the layer annotation
//! `dev.cosignproject.cosign/signature`. An image passes when one such layer's signature
//! verifies with the key AND its payload names the image's own digest.
//!
//! The key is a PEM SubjectPublicKeyInfo (`cosign.pub`): ECDSA P-256 (SHA-256, ASN.1 DER
//! signatures), RSA (PKCS#1 v1.5, SHA-256, 2048 to 8192 bits) or Ed25519. The signature check is
//! ring's, already in the build as rustls's crypto provider: adding the p256, rsa and
//! ed25519-dalek crates would compile a second implementation of the same primitives. ring takes
//! raw keys, so the SubjectPublicKeyInfo is taken apart by the `spki` crate and its algorithm
//! (and curve) checked when the key is loaded. Keyless signatures (Fulcio certificates, Rekor
//! transparency log) are out of scope.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    VerificationAlgorithm,
};
use spki::der::Decode;
use spki::der::asn1::{AnyRef, UintRef};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};

use super::{ReferrerKind, is_referrer_name, referrer_name};
use crate::digest::Digest;
use crate::manifest::{self, Manifest};
use crate::reference::ImageRef;
use crate::registry::Registries;
use crate::resolve::ResolvedImage;
use crate::store::{BundleIndex, BundleSource, StoreError};

/// The media type of cosign's signed payload.
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation of a keyless signature's Fulcio certificate.
pub const ANNOTATION_CERTIFICATE: &str = "dev.sigstore.cosign/certificate";

/// The largest payload ferry reads (cosign's are a few hundred bytes).
const MAX_PAYLOAD: u64 = 1 << 20;

/// SubjectPublicKeyInfo algorithms (RFC 5480, RFC 8017, RFC 8410).
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// What `from_pem` says of any key it cannot use.
const UNSUPPORTED: &str = "not an ECDSA P-256, RSA (2048 bits or more) or Ed25519 public key";

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct KeyError {
    /// The key file.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
    /// What to do about it.
    pub hint: Option<&'static str>,
}

/// Why key text cannot be used (no file named yet).
#[derive(Debug, PartialEq, Eq)]
pub struct KeyProblem {
    /// What is wrong with it.
    pub reason: String,
    /// What to do about it.
    pub hint: Option<&'static str>,
}

impl From<String> for KeyProblem {
    fn from(reason: String) -> KeyProblem {
        KeyProblem { reason, hint: None }
    }
}

/// A public key to verify signatures with.
#[derive(Debug)]
pub struct PublicKey {
    key: UnparsedPublicKey<Vec<u8>>,
    algorithm: &'static str,
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo): ECDSA P-256, RSA or Ed25519.
    pub fn from_pem(text: &[u8]) -> Result<PublicKey, KeyProblem> {
        let pem = pem::parse(text).map_err(|e| format!("not a PEM file: {e}"))?;
        if pem.tag() != "PUBLIC KEY" {
            return Err(KeyProblem {
                reason: format!("a PEM \"{}\", not a \"PUBLIC KEY\"", pem.tag()),
                hint: Some(
                    "give the public key (cosign.pub), not the private key or a certificate",
                ),
            });
        }
        let (algorithm, name, raw) =
            raw_key(pem.contents()).ok_or_else(|| KeyProblem::from(UNSUPPORTED.to_owned()))?;
        Ok(PublicKey {
            key: UnparsedPublicKey::new(algorithm, raw.to_vec()),
            algorithm: name,
        })
    }

    /// Reads a PEM key file.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let error = |problem: KeyProblem| KeyError {
            path: path.display().to_string(),
            reason: problem.reason,
            hint: problem.hint,
        };
        let text = std::fs::read(path).map_err(|e| error(e.to_string().into()))?;
        PublicKey::from_pem(&text).map_err(error)
    }

    /// The key's algorithm, for people.
    pub fn algorithm(&self) -> &'static str {
        self.algorithm
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify(message, signature).is_ok()
    }
}

/// The verification algorithm, its name and the raw key ring takes from a DER
/// SubjectPublicKeyInfo; None for any other algorithm, curve or size.
fn raw_key(der: &[u8]) -> Option<(&'static dyn VerificationAlgorithm, &'static str, &[u8])> {
    let spki = SubjectPublicKeyInfoRef::from_der(der).ok()?;
    let key = spki.subject_public_key.as_bytes()?;
    let parameters = spki.algorithm.parameters;
    match spki.algorithm.oid {
        ID_EC_PUBLIC_KEY => {
            let curve = parameters?.decode_as::<ObjectIdentifier>().ok()?;
            // An uncompressed point (what cosign writes); ring checks it is on the curve.
            let uncompressed = key.len() == 65 && key[0] == 4;
            (curve == PRIME256V1 && uncompressed).then_some((
                &ECDSA_P256_SHA256_ASN1 as &dyn VerificationAlgorithm,
                "ECDSA P-256",
                key,
            ))
        }
        // ring takes the RSAPublicKey DER itself; its size is checked here, not at the first
        // signature.
        RSA_ENCRYPTION => (parameters.is_none_or(AnyRef::is_null) && rsa_bits_ok(key)).then_some((
            &RSA_PKCS1_2048_8192_SHA256 as _,
            "RSA",
            key,
        )),
        ID_ED25519 => {
            (parameters.is_none() && key.len() == 32).then_some((&ED25519 as _, "Ed25519", key))
        }
        _ => None,
    }
}

/// Whether an RSAPublicKey (`SEQUENCE { modulus, publicExponent }`) has a 2048 to 8192 bit
/// modulus.
fn rsa_bits_ok(der: &[u8]) -> bool {
    let modulus = AnyRef::from_der(der).and_then(|any| {
        any.sequence(|r| {
            let n = UintRef::decode(r)?;
            UintRef::decode(r)?;
            Ok(n.as_bytes())
        })
    });
    let Ok(n) = modulus else { return false };
    let bits = match n.first() {
        Some(top) => n.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    };
    (2048..=8192).contains(&bits)
}

/// What the signatures of one image say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A signature by the key names the image's digest.
    Verified,
    /// No cosign signature for the image.
    Unsigned,
    /// Signed, but no signature verifies with the key.
    OtherKey,
    /// Signed keyless only (a Fulcio certificate), which ferry does not verify.
    Keyless,
    /// A signature by the key names another manifest.
    OtherDigest(String),
    /// The signature cannot be read.
    Malformed(String),
}

impl Verdict {
    /// True for [`Verdict::Verified`].
    pub fn ok(&self) -> bool {
        *self == Verdict::Verified
    }

    /// A short word for JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::Unsigned => "unsigned",
            Verdict::OtherKey => "other-key",
            Verdict::Keyless => "keyless",
            Verdict::OtherDigest(_) => "other-digest",
            Verdict::Malformed(_) => "malformed",
        }
    }

    /// Which of two failures says more (a signature by the key beats one by another key).
    fn rank(&self) -> u8 {
        match self {
            Verdict::Unsigned => 0,
            Verdict::Malformed(_) => 1,
            Verdict::OtherKey => 2,
            Verdict::Keyless => 3,
            Verdict::OtherDigest(_) => 4,
            Verdict::Verified => 5,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Verified => write!(f, "signature verified"),
            Verdict::Unsigned => {
                write!(f, "unsigned: no cosign signature (sha256-<hex>.sig) for it")
            }
            Verdict::OtherKey => write!(f, "signed, but not by this key"),
            Verdict::Keyless => write!(
                f,
                "signed keyless only (a Fulcio certificate): ferry verifies key-based signatures; \
                 keyless (Fulcio/Rekor) verification is out of scope"
            ),
            Verdict::OtherDigest(d) => write!(
                f,
                "its signature verifies but names another manifest ({d}): a signature moved from another image"
            ),
            Verdict::Malformed(why) => write!(f, "unreadable signature: {why}"),
        }
    }
}

/// Checks a signature manifest (the bytes of `sha256-<hex>.sig`) for the image `image`.
/// `payload` returns a layer's bytes, checked against its digest and size.
pub fn check_signature_manifest(
    image: &Digest,
    signature_manifest: &[u8],
    mut payload: impl FnMut(&Digest, u64) -> Result<Vec<u8>, String>,
    key: &PublicKey,
) -> Verdict {
    let layers = match Manifest::parse(signature_manifest, None) {
        Ok((Manifest::Image(m), _)) => m.layers().clone(),
        Ok((Manifest::Index(_), _)) => {
            return Verdict::Malformed("the signature tag names an index".into());
        }
        Err(e) => return Verdict::Malformed(e.to_string()),
    };
    let mut best = Verdict::Unsigned;
    for layer in layers {
        if layer.media_type().to_string() != SIMPLESIGNING {
            continue;
        }
        let annotations = layer.annotations().clone().unwrap_or_default();
        let verdict = match annotations.get(ANNOTATION_SIGNATURE) {
            None if annotations.contains_key(ANNOTATION_CERTIFICATE) => Verdict::Keyless,
            None => Verdict::Malformed("a payload layer without a signature annotation".into()),
            Some(signature) => {
                let read = manifest::descriptor_digest(&layer)
                    .map_err(|e| e.to_string())
                    .and_then(|d| {
                        if layer.size() > MAX_PAYLOAD {
                            return Err(format!("payload {d} is {} bytes", layer.size()));
                        }
                        payload(&d, layer.size())
                    });
                match read {
                    Ok(bytes) => check_layer(image, &bytes, signature, &annotations, key),
                    Err(e) => Verdict::Malformed(e),
                }
            }
        };
        if verdict.ok() {
            return verdict;
        }
        if verdict.rank() > best.rank() {
            best = verdict;
        }
    }
    best
}

/// One payload layer: the signature first (nothing in an unauthenticated payload is trusted),
/// then the digest it names.
fn check_layer(
    image: &Digest,
    payload: &[u8],
    signature: &str,
    annotations: &std::collections::HashMap<String, String>,
    key: &PublicKey,
) -> Verdict {
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return Verdict::Malformed("the signature annotation is not base64".into());
    };
    if !key.verifies(payload, &signature) {
        return if annotations.contains_key(ANNOTATION_CERTIFICATE) {
            Verdict::Keyless
        } else {
            Verdict::OtherKey
        };
    }
    match named_digest(payload) {
        Ok(named) if named == image.to_string() => Verdict::Verified,
        Ok(named) => Verdict::OtherDigest(named),
        Err(e) => Verdict::Malformed(e),
    }
}

/// `critical.image.docker-manifest-digest` of a simple-signing payload.
fn named_digest(payload: &[u8]) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| format!("payload: {e}"))?;
    value
        .pointer("/critical/image/docker-manifest-digest")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| "the payload names no critical.image.docker-manifest-digest".into())
}

/// One image's verdict.
#[derive(Debug, Clone)]
pub struct ImageVerdict {
    /// The image's name in index.json.
    pub reference: String,
    /// Its digest.
    pub digest: String,
    /// What its signatures say.
    pub verdict: Verdict,
}

/// Verifies every image of a bundle (its referrer entries are not images) against `key`,
/// reading signatures from the bundle only; every blob read is re-hashed.
pub fn verify_bundle(
    layout: &dyn BundleSource,
    key: &PublicKey,
) -> Result<Vec<ImageVerdict>, StoreError> {
    let index = layout.index()?;
    let mut out = Vec::new();
    for entry in index.entries() {
        let Some(name) = entry.name else { continue };
        if is_referrer_name(&name) {
            continue;
        }
        let digest = entry.descriptor.digest().to_string();
        let parsed = crate::manifest::descriptor_digest(&entry.descriptor);
        let verdict = match (name.parse::<ImageRef>(), parsed) {
            (Ok(reference), Ok(d)) => stored_verdict(layout, &index, &reference, &d, key),
            _ => Verdict::Malformed(format!(
                "{name} is not a reference with a digest ferry reads"
            )),
        };
        out.push(ImageVerdict {
            reference: name,
            digest,
            verdict,
        });
    }
    Ok(out)
}

fn stored_verdict(
    layout: &dyn BundleSource,
    index: &BundleIndex,
    reference: &ImageRef,
    digest: &Digest,
    key: &PublicKey,
) -> Verdict {
    let name = referrer_name(&reference.name(), digest, ReferrerKind::Signature);
    let Some(descriptor) = index.get(&name) else {
        return Verdict::Unsigned;
    };
    let manifest = match manifest::descriptor_digest(descriptor)
        .map_err(|e| e.to_string())
        .and_then(|d| layout.read_blob(&d).map_err(|e| e.to_string()))
    {
        Ok(bytes) => bytes,
        Err(e) => return Verdict::Malformed(format!("{name}: {e}")),
    };
    let read = |d: &Digest, size: u64| -> Result<Vec<u8>, String> {
        layout
            .open_blob(d, Some(size))
            .and_then(|b| b.read_verified(MAX_PAYLOAD))
            .map_err(|e| e.to_string())
    };
    check_signature_manifest(digest, &manifest, read, key)
}

/// Checks an image being bundled against the signature among its discovered referrers,
/// fetching the payloads (small, digest-checked) from its registry.
pub async fn check_resolved(
    registries: &Registries,
    image: &ResolvedImage,
    referrers: &[ResolvedImage],
    key: &PublicKey,
) -> Verdict {
    let digest = &image.root.digest;
    let name = referrer_name(&image.reference.name(), digest, ReferrerKind::Signature);
    let Some(signature) = referrers.iter().find(|r| r.reference.to_string() == name) else {
        return Verdict::Unsigned;
    };
    let Some(platform) = signature.platforms.first() else {
        return Verdict::Malformed(format!("{name} holds no manifest"));
    };
    let mut payloads = BTreeMap::new();
    for layer in &platform.layers {
        if layer.size > MAX_PAYLOAD {
            continue;
        }
        match registries
            .fetch_small_blob(&signature.remotes[0], &layer.digest, layer.size)
            .await
        {
            Ok(bytes) => {
                payloads.insert(layer.digest.clone(), bytes.to_vec());
            }
            Err(e) => return Verdict::Malformed(format!("{name}: {e}")),
        }
    }
    let read = |d: &Digest, _size: u64| {
        payloads
            .get(d)
            .cloned()
            .ok_or_else(|| format!("payload {d} was not fetched"))
    };
    check_signature_manifest(digest, &platform.manifest.bytes, read, key)
}

impl crate::error::Diagnostic for KeyError {
    fn kind(&self) -> crate::error::Kind {
        // A key file named by --key.
        crate::error::Kind::Configuration
    }

    fn hint(&self) -> Option<String> {
        self.hint.map(str::to_owned)
    }
}

#[cfg(test)]
mod tests;
