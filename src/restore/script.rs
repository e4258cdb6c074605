//! restore.sh: the script every bundle carries, with the bundle's image list written into it.

use crate::store::{ANNOTATION_PLATFORMS, BundleIndex};

/// The script's file name in a bundle.
pub const SCRIPT_NAME: &str = "restore.sh";

const TEMPLATE: &str = include_str!("restore.sh");

/// The image list restore.sh reads: `REFERENCE DIGEST MEDIA-TYPE SIZE PLATFORMS` a line,
/// PLATFORMS comma separated or `-` when the image declares none.
pub fn image_lines(index: &BundleIndex) -> Vec<String> {
    index
        .entries()
        .into_iter()
        .filter_map(|e| {
            let name = e.name?;
            // Signatures and SBOMs travel in the bundle; they are not images to import.
            if crate::supply::is_referrer_name(&name) {
                return None;
            }
            let d = &e.descriptor;
            let platforms = match d
                .annotations()
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_PLATFORMS))
            {
                Some(p) if !p.is_empty() => p.clone(),
                _ => crate::manifest::descriptor_platform(d)
                    .map_or_else(|| "-".to_owned(), |p| p.to_string()),
            };
            // Names and digests never hold spaces; the script splits on them.
            Some(format!(
                "{name} {} {} {} {platforms}",
                d.digest(),
                d.media_type(),
                d.size()
            ))
        })
        .collect()
}

/// The script for a bundle with this index.
pub fn render(index: &BundleIndex) -> String {
    TEMPLATE.replace("@@IMAGES@@", &image_lines(index).join("\n"))
}
