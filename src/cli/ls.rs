//! `ferry ls`: what a bundle holds.

use std::path::PathBuf;

use clap::Args;

use ferry::store::{Layout, inspect_entry};

use super::{Exit, Failure, output};

/// List the images in a bundle: reference, digest, platforms, size.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ferry ls`.
pub fn run(args: LsArgs) -> Result<Exit, Failure> {
    let layout = Layout::open_read(&args.bundle).map_err(|e| e.to_string())?;
    let index = layout.read_index().map_err(|e| e.to_string())?;
    let marker = ferry::delta::Marker::read(&args.bundle).map_err(|e| e.to_string())?;
    if let Some(m) = &marker {
        eprintln!(
            "{} is a delta of the bundle whose ferry.lock is {}: it holds only the blobs that bundle lacks\nhint: `ferry apply {} BASE` turns that bundle into this set",
            args.bundle.display(),
            m.base_lock,
            args.bundle.display()
        );
    }
    let lock = layout.read_lock().map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for entry in index.entries() {
        if marker.is_some() {
            // A delta lacks its base's blobs by design: what each image is comes from its lock.
            let name = entry.name.clone().unwrap_or_else(|| "(unnamed)".into());
            let locked = lock.get(&name);
            rows.push((
                name,
                entry.descriptor.digest().to_string(),
                entry.descriptor.media_type().to_string(),
                locked.map_or_else(Vec::new, |l| {
                    l.platforms
                        .iter()
                        .map(|p| {
                            p.platform
                                .as_ref()
                                .map_or_else(|| "-".to_owned(), |p| p.to_string())
                        })
                        .collect()
                }),
                locked.map_or(0, |l| l.total_size),
                0,
            ));
            continue;
        }
        let contents = inspect_entry(&layout, &entry);
        let platforms: Vec<String> = contents
            .platforms
            .iter()
            .map(|p| p.as_ref().map_or_else(|| "-".to_owned(), |p| p.to_string()))
            .collect();
        rows.push((
            entry.name.clone().unwrap_or_else(|| "(unnamed)".into()),
            entry.descriptor.digest().to_string(),
            entry.descriptor.media_type().to_string(),
            platforms,
            contents.total_size(),
            contents.problems.len(),
        ));
    }
    if args.json {
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|(r, d, m, p, size, problems)| {
                let mut item = serde_json::json!({"reference": r, "digest": d, "mediaType": m, "platforms": p, "size": size, "complete": *problems == 0 && marker.is_none()});
                if let Some(m) = &marker {
                    item["deltaOf"] = serde_json::json!(m.base_lock.to_string());
                }
                item
            })
            .collect();
        output::json(&serde_json::Value::Array(items));
        return Ok(Exit::Ok);
    }
    let table: Vec<[String; 4]> = rows
        .iter()
        .map(|(r, d, _, p, size, problems)| {
            let mut platforms = p.join(",");
            if *problems > 0 {
                platforms.push_str(" (incomplete: run ferry verify)");
            }
            [
                r.clone(),
                d.get(..19).unwrap_or(d).to_owned(),
                platforms,
                output::bytes(*size),
            ]
        })
        .collect();
    let header = ["REFERENCE", "DIGEST", "PLATFORMS", "SIZE"].map(str::to_owned);
    let width = |i: usize| {
        table
            .iter()
            .chain([&header])
            .map(|row| row[i].len())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
    for [r, d, p, s] in std::iter::once(&header).chain(&table) {
        println!("{r:w0$}  {d:w1$}  {p:w2$}  {s:>w3$}");
    }
    Ok(Exit::Ok)
}
