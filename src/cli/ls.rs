//! `ferry ls`: what a bundle holds.

use std::path::PathBuf;

use clap::Args;

use ferry::artifact::{Kind, kind_of_entry};
use ferry::lock::LockFile;
use ferry::platform::Platform;
use ferry::store::{BundleSource, IndexEntry, inspect_entry};
use ferry::supply::{ReferrerKind, parse_referrer_name};

use super::stdout::outln;
use super::{Exit, Failure, output};

/// List the images in a bundle: reference, digest, platforms, size, and the signatures, SBOMs
/// and other referrers stored with each.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The bundle: a folder, or an archive (`.tar`, `.tar.zst`) read in place.
    pub bundle: PathBuf,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One image of the listing.
struct Row {
    reference: String,
    /// Image, index, Helm chart or another artifact.
    kind: Kind,
    digest: String,
    media_type: String,
    /// One per platform image, in the order of `platforms` of the old listing.
    manifests: Vec<Manifest>,
    size: u64,
    problems: usize,
    referrers: Vec<serde_json::Value>,
}

/// One platform's image manifest: what a node of that platform pulls.
struct Manifest {
    platform: Option<Platform>,
    digest: String,
    /// Unknown for a delta, whose lock records only the manifest's digest and size.
    media_type: Option<String>,
    size: Option<u64>,
}

impl Manifest {
    fn platform_name(&self) -> String {
        self.platform
            .as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string)
    }
}

/// What `ls` reads from the bundle.
struct Listing {
    layout: std::sync::Arc<dyn BundleSource>,
    entries: Vec<IndexEntry>,
    marker: Option<ferry::delta::Marker>,
    lock: LockFile,
}

/// Runs `ferry ls`.
pub fn run(args: LsArgs) -> Result<Exit, Failure> {
    let listing = open(&args.bundle)?;
    if let Some(m) = &listing.marker {
        eprintln!(
            "{} is a delta of the bundle whose ferry.lock is {}: it holds only the blobs that bundle lacks",
            args.bundle.display(),
            m.base_lock,
        );
        output::hint(&format!(
            "`ferry apply {} BASE` turns that bundle into this set",
            args.bundle.display()
        ));
        for line in super::bindelta::patched_lines(m) {
            output::line(&line);
        }
    }
    let rows = rows(&listing);
    if args.json {
        output::json(&listing_json(&args.bundle, &rows, listing.marker.as_ref()));
    } else {
        print_table(&rows);
    }
    Ok(Exit::Ok)
}

/// Reads the bundle's index, delta marker and lock.
fn open(bundle: &std::path::Path) -> Result<Listing, Failure> {
    let layout = super::source_arg::open_bundle(bundle)?;
    let entries = layout.index()?.entries();
    let marker = ferry::delta::Marker::of(&*layout)?;
    let lock = layout.lock()?.unwrap_or_default();
    Ok(Listing {
        layout,
        entries,
        marker,
        lock,
    })
}

/// One row per image; referrers (signatures, SBOMs) are listed with the image they name.
fn rows(listing: &Listing) -> Vec<Row> {
    let (referrers, images): (Vec<&IndexEntry>, Vec<&IndexEntry>) = listing
        .entries
        .iter()
        .partition(|e| e.name.as_deref().and_then(parse_referrer_name).is_some());
    images
        .into_iter()
        .map(|entry| match listing.marker {
            Some(_) => delta_row(&*listing.layout, &listing.lock, entry),
            None => image_row(&*listing.layout, entry, &referrers),
        })
        .collect()
}

fn reference_of(entry: &IndexEntry) -> String {
    entry.name.clone().unwrap_or_else(|| "(unnamed)".into())
}

/// A delta lacks its base's blobs by design: what each image is comes from its lock.
fn delta_row(layout: &dyn BundleSource, lock: &LockFile, entry: &IndexEntry) -> Row {
    let reference = reference_of(entry);
    let locked = lock.get(&reference);
    Row {
        kind: kind_of_entry(layout, entry),
        digest: entry.descriptor.digest().to_string(),
        media_type: entry.descriptor.media_type().to_string(),
        manifests: locked.map_or_else(Vec::new, |l| {
            l.platforms
                .iter()
                .map(|p| Manifest {
                    platform: p.platform.clone(),
                    digest: p.digest.to_string(),
                    media_type: None,
                    size: None,
                })
                .collect()
        }),
        size: locked.map_or(0, |l| l.total_size),
        problems: 0,
        referrers: Vec::new(),
        reference,
    }
}

/// An image of a whole bundle, walked blob by blob, with the referrers whose subject it holds.
fn image_row(layout: &dyn BundleSource, entry: &IndexEntry, referrers: &[&IndexEntry]) -> Row {
    let reference = reference_of(entry);
    let contents = inspect_entry(layout, entry);
    let repository = reference
        .parse::<ferry::reference::ImageRef>()
        .ok()
        .map(|r| r.name());
    let own: Vec<serde_json::Value> = referrers
        .iter()
        .filter_map(|r| {
            let (repo, subject, kind) = parse_referrer_name(r.name.as_deref()?)?;
            let mine = Some(&repo) == repository.as_ref() && contents.blobs.contains_key(&subject);
            mine.then(|| referrer_json(layout, r, &subject, kind))
        })
        .collect();
    Row {
        kind: kind_of_entry(layout, entry),
        reference,
        digest: entry.descriptor.digest().to_string(),
        media_type: entry.descriptor.media_type().to_string(),
        manifests: contents
            .manifests
            .iter()
            .map(|m| Manifest {
                platform: m.platform.clone(),
                digest: m.digest.to_string(),
                media_type: Some(m.media_type.clone()),
                size: Some(m.size),
            })
            .collect(),
        size: contents.total_size(),
        problems: contents.problems.len(),
        referrers: own,
    }
}

/// The `--json` document (README: "JSON output").
fn listing_json(
    bundle: &std::path::Path,
    rows: &[Row],
    marker: Option<&ferry::delta::Marker>,
) -> serde_json::Value {
    let images: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut item = serde_json::json!({
                "reference": r.reference,
                "kind": r.kind.as_str(),
                "artifactType": r.kind.artifact_type(),
                "digest": r.digest,
                "mediaType": r.media_type,
                "platforms": r.manifests.iter().map(Manifest::platform_name).collect::<Vec<_>>(),
                "manifests": r.manifests.iter().map(manifest_json).collect::<Vec<_>>(),
                "size": r.size,
                "complete": r.problems == 0 && marker.is_none(),
                "referrers": r.referrers,
            });
            if let Some(m) = marker {
                item["deltaOf"] = serde_json::json!(m.base_lock.to_string());
            }
            item
        })
        .collect();
    let mut listing = serde_json::json!({
        "version": 1,
        "bundle": bundle.display().to_string(),
        "delta": marker.is_some(),
        "images": images,
    });
    if let Some(m) = marker.filter(|m| !m.patched.is_empty()) {
        listing["patched"] = super::bindelta::patched_json(m);
    }
    listing
}

fn manifest_json(m: &Manifest) -> serde_json::Value {
    serde_json::json!({
        "platform": m.platform.as_ref().map(ToString::to_string),
        "os": m.platform.as_ref().map(Platform::os),
        "architecture": m.platform.as_ref().map(Platform::architecture),
        "variant": m.platform.as_ref().and_then(Platform::variant),
        "digest": m.digest,
        "mediaType": m.media_type,
        "size": m.size,
    })
}

/// A referrer entry for JSON: its name, kind, subject, digest and the artifact types it holds.
fn referrer_json(
    layout: &dyn BundleSource,
    entry: &IndexEntry,
    subject: &ferry::digest::Digest,
    kind: ReferrerKind,
) -> serde_json::Value {
    serde_json::json!({
        "reference": entry.name,
        "kind": kind.as_str(),
        "subject": subject.to_string(),
        "digest": entry.descriptor.digest().to_string(),
        "artifactTypes": artifact_types(layout, entry),
    })
}

/// What a referrer holds: the `artifactType`s an index lists (an SBOM, an attestation...), or
/// the layers' media types of a single manifest (cosign's simple-signing payload).
fn artifact_types(layout: &dyn BundleSource, entry: &IndexEntry) -> Vec<String> {
    let Ok(digest) = entry.descriptor.digest().to_string().parse() else {
        return Vec::new();
    };
    let Ok(bytes) = layout.read_blob(&digest) else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    let list = |key: &str, field: &str| -> Vec<String> {
        value[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m[field].as_str().map(str::to_owned))
            .collect()
    };
    let mut types = match value.get("manifests") {
        Some(_) => list("manifests", "artifactType"),
        None => list("layers", "mediaType"),
    };
    types.sort();
    types.dedup();
    types
}

/// The referrer column: artifact types of referrer indexes, else the kind (signature...).
fn referrer_kinds(row: &Row) -> String {
    let mut kinds: Vec<String> = row
        .referrers
        .iter()
        .map(|v| match v["kind"].as_str() {
            Some("referrers") => v["artifactTypes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            kind => kind.unwrap_or_default().to_owned(),
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    if kinds.is_empty() {
        "-".to_owned()
    } else {
        kinds.join(",")
    }
}

fn short(digest: &str) -> String {
    digest.get(..19).unwrap_or(digest).to_owned()
}

/// The table: one line per image, and under an index one line per platform manifest.
fn print_table(rows: &[Row]) {
    let mut table: Vec<[String; 6]> = Vec::new();
    for r in rows {
        let mut platforms = r
            .manifests
            .iter()
            .map(Manifest::platform_name)
            .collect::<Vec<_>>()
            .join(",");
        if r.problems > 0 {
            platforms.push_str(" (incomplete: run ferry verify)");
        }
        table.push([
            r.reference.clone(),
            r.kind.to_string(),
            short(&r.digest),
            platforms,
            output::bytes(r.size),
            referrer_kinds(r),
        ]);
        if r.manifests.iter().all(|m| m.digest == r.digest) {
            continue; // a single manifest: its line says it all
        }
        for m in &r.manifests {
            table.push([
                format!("  {}", m.platform_name()),
                String::new(),
                short(&m.digest),
                String::new(),
                m.size.map_or_else(String::new, output::bytes),
                String::new(),
            ]);
        }
    }
    let header = [
        "REFERENCE",
        "KIND",
        "DIGEST",
        "PLATFORMS",
        "SIZE",
        "REFERRERS",
    ]
    .map(str::to_owned);
    let width = |i: usize| {
        table
            .iter()
            .chain([&header])
            .map(|row| row[i].len())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2, w3, w4) = (width(0), width(1), width(2), width(3), width(4));
    for [r, k, d, p, s, x] in std::iter::once(&header).chain(&table) {
        outln!(
            "{}",
            format!("{r:w0$}  {k:w1$}  {d:w2$}  {p:w3$}  {s:>w4$}  {x}").trim_end()
        );
    }
}
