//! `ferry ls`: what a bundle holds.

use std::path::PathBuf;

use clap::Args;

use ferry::store::{IndexEntry, Layout, inspect_entry};
use ferry::supply::{ReferrerKind, parse_referrer_name};

use super::{Exit, Failure, output};

/// List the images in a bundle: reference, digest, platforms, size, and the signatures, SBOMs
/// and other referrers stored with each.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One image of the listing.
struct Row {
    reference: String,
    digest: String,
    media_type: String,
    platforms: Vec<String>,
    size: u64,
    problems: usize,
    referrers: Vec<serde_json::Value>,
}

/// Runs `ferry ls`.
pub fn run(args: LsArgs) -> Result<Exit, Failure> {
    let layout = Layout::open_read(&args.bundle)?;
    let index = layout.read_index()?;
    let marker = ferry::delta::Marker::read(&args.bundle)?;
    if let Some(m) = &marker {
        eprintln!(
            "{} is a delta of the bundle whose ferry.lock is {}: it holds only the blobs that bundle lacks",
            args.bundle.display(),
            m.base_lock,
        );
        output::hint(&format!(
            "`ferry apply {} BASE` turns that bundle into this set",
            args.bundle.display()
        ));
    }
    let lock = layout.read_lock()?;
    let entries = index.entries();
    let (referrers, images): (Vec<&IndexEntry>, Vec<&IndexEntry>) = entries
        .iter()
        .partition(|e| e.name.as_deref().and_then(parse_referrer_name).is_some());
    let mut rows = Vec::new();
    for entry in images {
        let reference = entry.name.clone().unwrap_or_else(|| "(unnamed)".into());
        if marker.is_some() {
            // A delta lacks its base's blobs by design: what each image is comes from its lock.
            let locked = lock.get(&reference);
            rows.push(Row {
                digest: entry.descriptor.digest().to_string(),
                media_type: entry.descriptor.media_type().to_string(),
                platforms: locked.map_or_else(Vec::new, |l| {
                    l.platforms
                        .iter()
                        .map(|p| {
                            p.platform
                                .as_ref()
                                .map_or_else(|| "-".to_owned(), |p| p.to_string())
                        })
                        .collect()
                }),
                size: locked.map_or(0, |l| l.total_size),
                problems: 0,
                referrers: Vec::new(),
                reference,
            });
            continue;
        }
        let contents = inspect_entry(&layout, entry);
        let repository = reference
            .parse::<ferry::reference::ImageRef>()
            .ok()
            .map(|r| r.name());
        let own: Vec<serde_json::Value> = referrers
            .iter()
            .filter_map(|r| {
                let (repo, subject, kind) = parse_referrer_name(r.name.as_deref()?)?;
                let mine =
                    Some(&repo) == repository.as_ref() && contents.blobs.contains_key(&subject);
                mine.then(|| referrer_json(&layout, r, &subject, kind))
            })
            .collect();
        rows.push(Row {
            reference,
            digest: entry.descriptor.digest().to_string(),
            media_type: entry.descriptor.media_type().to_string(),
            platforms: contents
                .platforms
                .iter()
                .map(|p| p.as_ref().map_or_else(|| "-".to_owned(), |p| p.to_string()))
                .collect(),
            size: contents.total_size(),
            problems: contents.problems.len(),
            referrers: own,
        });
    }
    if args.json {
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let mut item = serde_json::json!({"reference": r.reference, "digest": r.digest, "mediaType": r.media_type,
                    "platforms": r.platforms, "size": r.size, "complete": r.problems == 0 && marker.is_none(),
                    "referrers": r.referrers});
                if let Some(m) = &marker {
                    item["deltaOf"] = serde_json::json!(m.base_lock.to_string());
                }
                item
            })
            .collect();
        output::json(&serde_json::Value::Array(items));
        return Ok(Exit::Ok);
    }
    print_table(&rows);
    Ok(Exit::Ok)
}

/// A referrer entry for JSON: its name, kind, subject, digest and the artifact types it holds.
fn referrer_json(
    layout: &Layout,
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
fn artifact_types(layout: &Layout, entry: &IndexEntry) -> Vec<String> {
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

fn print_table(rows: &[Row]) {
    let table: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let mut platforms = r.platforms.join(",");
            if r.problems > 0 {
                platforms.push_str(" (incomplete: run ferry verify)");
            }
            let mut kinds: Vec<String> = r
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
            let referrers = if kinds.is_empty() {
                "-".to_owned()
            } else {
                kinds.join(",")
            };
            [
                r.reference.clone(),
                r.digest.get(..19).unwrap_or(&r.digest).to_owned(),
                platforms,
                output::bytes(r.size),
                referrers,
            ]
        })
        .collect();
    let header = ["REFERENCE", "DIGEST", "PLATFORMS", "SIZE", "REFERRERS"].map(str::to_owned);
    let width = |i: usize| {
        table
            .iter()
            .chain([&header])
            .map(|row| row[i].len())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
    for [r, d, p, s, x] in std::iter::once(&header).chain(&table) {
        println!("{r:w0$}  {d:w1$}  {p:w2$}  {s:>w3$}  {x}");
    }
}
