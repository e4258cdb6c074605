//! restore.sh: the script every bundle carries, with the bundle's image list written into it.
//!
//! The list is data: one line of five checked tokens per image, inside a quoted here-document
//! whose delimiter holds a `%`, which no token can contain. The script only reads it with
//! `read` and quotes every expansion; it never evaluates it.

use super::{ANNOTATION_PLATFORMS, BundleIndex, IndexEntry, check_entry};

/// The script's file name in a bundle.
pub const SCRIPT_NAME: &str = "restore.sh";

const TEMPLATE: &str = include_str!("restore.sh");

/// The pin records and `--replace`, spliced into the template (kept apart to stay readable).
const PINS: &str = include_str!("pins.sh");

/// The here-document delimiter in the template: `%` is in no token's grammar.
pub const LIST_END: &str = "FERRY%IMAGES";

/// The image list restore.sh reads: `REFERENCE DIGEST MEDIA-TYPE SIZE PLATFORMS` a line,
/// PLATFORMS comma separated or `-` when the image declares none. Entries without a name, or
/// with any field that fails its grammar, are left out (index.json is checked when read; this
/// is the last line of defence for a root shell script).
fn image_lines(index: &BundleIndex) -> Vec<String> {
    index.entries().iter().filter_map(image_line).collect()
}

fn image_line(e: &IndexEntry) -> Option<String> {
    let d = &e.descriptor;
    // Checks the name, the media type, the digest, the platform and io.ferry.platforms.
    let name = check_entry(d).ok()??;
    if e.name.as_deref() != Some(name.as_str()) {
        return None;
    }
    // Signatures and SBOMs travel in the bundle; they are not images to import.
    if crate::reference::is_referrer_name(&name) || d.artifact_type().is_some() {
        return None;
    }
    let platforms = match d
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_PLATFORMS))
    {
        Some(p) if !p.is_empty() => p.clone(),
        _ => crate::manifest::descriptor_platform(d)
            .ok()?
            .map_or_else(|| "-".to_owned(), |p| p.to_string()),
    };
    // None of the tokens can hold a space, a newline, a quote, a backslash or a `%`.
    Some(format!(
        "{name} {} {} {} {platforms}",
        d.digest(),
        d.media_type(),
        d.size()
    ))
}

/// The artifacts restore.sh leaves alone (charts, files, models: no runtime runs them):
/// `REFERENCE ARTIFACT-TYPE` a line, both checked like the image list's tokens.
fn artifact_lines(index: &BundleIndex) -> Vec<String> {
    let line = |e: &IndexEntry| -> Option<String> {
        let d = &e.descriptor;
        let name = check_entry(d).ok()??;
        let kind = d.artifact_type().as_ref()?;
        (e.name.as_deref() == Some(name.as_str()) && !crate::reference::is_referrer_name(&name))
            .then(|| format!("{name} {kind}"))
    };
    index.entries().iter().filter_map(line).collect()
}

/// The script for a bundle with this index.
pub fn render(index: &BundleIndex) -> String {
    TEMPLATE
        .replace("@@PINS@@", PINS.trim_end())
        .replace("@@ARTIFACTS@@", &artifact_lines(index).join("\n"))
        .replace("@@IMAGES@@", &image_lines(index).join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{Descriptor, MediaType};

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn descriptor(media_type: &str) -> Descriptor {
        Descriptor::new(
            MediaType::from(media_type),
            5,
            oci_spec::image::Digest::try_from(D).unwrap(),
        )
    }

    #[test]
    fn only_checked_tokens_reach_the_script() {
        let mut index = BundleIndex::default();
        let good = "docker.io/library/alpine:3.20";
        index.upsert(good, descriptor(crate::manifest::OCI_MANIFEST));
        // upsert takes any string: what another tool or a bug could put there.
        index.upsert(
            "evil\nFERRY%IMAGES\ntouch /tmp/x\ncat <<'FERRY%IMAGES'",
            descriptor(crate::manifest::OCI_MANIFEST),
        );
        index.upsert(
            "docker.io/library/short",
            descriptor(crate::manifest::OCI_MANIFEST),
        );
        index.upsert(
            "docker.io/library/media:1",
            descriptor("application/vnd.oci.image.manifest.v1+json\nx y"),
        );
        let lines = image_lines(&index);
        assert_eq!(
            lines,
            [format!("{good} {D} {} 5 -", crate::manifest::OCI_MANIFEST)]
        );
        let script = render(&index);
        assert!(!script.contains("touch"), "{script}");
        assert!(
            script.contains(&format!("<<'{LIST_END}'")),
            "the template uses LIST_END"
        );
        assert_eq!(script.matches(LIST_END).count(), 4, "{script}");
    }

    #[test]
    fn artifacts_are_listed_apart_and_never_imported() {
        let mut index = BundleIndex::default();
        let mut chart = descriptor(crate::manifest::OCI_MANIFEST);
        chart.set_artifact_type(Some(MediaType::from(crate::artifact::HELM_CONFIG)));
        index.upsert("example.com/charts/nginx:15.4.2", chart);
        index.upsert(
            "docker.io/library/alpine:3.20",
            descriptor(crate::manifest::OCI_MANIFEST),
        );
        assert_eq!(image_lines(&index).len(), 1);
        assert!(image_lines(&index)[0].starts_with("docker.io/library/alpine:3.20 "));
        assert_eq!(
            artifact_lines(&index),
            [format!(
                "example.com/charts/nginx:15.4.2 {}",
                crate::artifact::HELM_CONFIG
            )]
        );
    }
}
