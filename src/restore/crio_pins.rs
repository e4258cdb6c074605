//! CRI-O's pinned_images drop-in, with the bundles that pinned each name. A later drop-in
//! replaces the whole list, so one file holds every bundle's pins; each name carries a TOML
//! comment with the ferry.lock digests of the bundles that pinned it:
//!
//! ```toml
//! [crio.image]
//! pinned_images = [
//!   "docker.io/library/alpine:3.20", # sha256:<lock of bundle v1> sha256:<lock of v2>
//! ]
//! ```
//! restore.sh reads and writes the same format.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::RestoreError;
use crate::digest::Digest;

/// The drop-in's file name.
pub const PIN_FILE: &str = "50-ferry-pinned.conf";

/// The pinned names, each with the bundles (lock digests) recorded as pinning it; an empty
/// set for a name pinned before records were kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinList(pub BTreeMap<String, BTreeSet<Digest>>);

impl PinList {
    /// Reads `dir`'s drop-in; an absent file is an empty list.
    pub fn read(dir: &Path) -> PinList {
        PinList::parse(&std::fs::read_to_string(dir.join(PIN_FILE)).unwrap_or_default())
    }

    /// Parses the drop-in's `"NAME", # DIGEST...` lines; other lines (and unknown words in a
    /// comment) are left out.
    pub fn parse(text: &str) -> PinList {
        let mut out = PinList::default();
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some((name, tail)) = rest.split_once("\",") else {
                continue;
            };
            if name.contains('"') {
                continue;
            }
            let ids = tail
                .trim_start()
                .strip_prefix('#')
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|w| w.parse::<Digest>().ok());
            out.0.entry(name.to_owned()).or_default().extend(ids);
        }
        out
    }

    /// The drop-in's text.
    pub fn render(&self) -> String {
        let mut text = String::from(
            "# Written by ferry: images kept from kubelet's image GC, each with the ferry.lock\n\
             # digests of the bundles that pinned it.\n[crio.image]\npinned_images = [\n",
        );
        for (name, ids) in &self.0 {
            text.push_str(&format!("  \"{name}\","));
            if !ids.is_empty() {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                text.push_str(&format!(" # {}", ids.join(" ")));
            }
            text.push('\n');
        }
        text.push_str("]\n");
        text
    }

    /// Pins `name`, for the bundle `record` when given.
    pub fn add(&mut self, name: &str, record: Option<&Digest>) {
        self.0
            .entry(name.to_owned())
            .or_default()
            .extend(record.cloned());
    }

    /// Takes the bundle `old` off every name; a name of `gone` left with no bundle leaves the
    /// list. Returns the names that left, and those of `gone` kept with the bundles that
    /// still pin them.
    pub fn forget(
        &mut self,
        old: &Digest,
        gone: &BTreeSet<String>,
    ) -> (Vec<String>, Vec<(String, Vec<Digest>)>) {
        for ids in self.0.values_mut() {
            ids.remove(old);
        }
        let (mut dropped, mut kept) = (Vec::new(), Vec::new());
        for name in gone {
            match self.0.get(name) {
                None => {}
                Some(ids) if ids.is_empty() => {
                    self.0.remove(name);
                    dropped.push(name.clone());
                }
                Some(ids) => kept.push((name.clone(), ids.iter().cloned().collect())),
            }
        }
        (dropped, kept)
    }

    /// Writes the drop-in into `dir` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), RestoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| RestoreError::runtime(format!("cannot create {}: {e}", dir.display())))?;
        crate::fsutil::write_atomic(&dir.join(PIN_FILE), self.render().as_bytes(), None).map_err(
            |e| RestoreError::runtime(format!("cannot write the CRI-O pinning drop-in: {e}")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    #[test]
    fn records_survive_a_round_trip_and_an_old_list_still_reads() {
        let old_format = "[crio.image]\npinned_images = [\n  \"a:1\",\n  \"b:1\",\n]\n";
        let mut list = PinList::parse(old_format);
        assert_eq!(list.0.len(), 2);
        assert!(list.0["a:1"].is_empty());
        list.add("b:1", Some(&id(1)));
        list.add("c:1", Some(&id(2)));
        list.add("c:1", Some(&id(1)));
        let text = list.render();
        assert!(
            text.contains(&format!("  \"b:1\", # {}\n", id(1))),
            "{text}"
        );
        assert_eq!(PinList::parse(&text), list);
    }

    #[test]
    fn forgetting_a_bundle_drops_only_what_no_other_bundle_pins() {
        let mut list = PinList::default();
        list.add("only-old", Some(&id(1)));
        list.add("legacy", None);
        list.add("both-bundles", Some(&id(1)));
        list.add("both-bundles", Some(&id(3)));
        list.add("shared", Some(&id(1)));
        list.add("shared", Some(&id(2)));
        let gone: BTreeSet<String> = ["only-old", "legacy", "both-bundles", "absent"]
            .map(String::from)
            .into();
        let (dropped, kept) = list.forget(&id(1), &gone);
        assert_eq!(dropped, ["legacy", "only-old"]);
        assert_eq!(kept, [("both-bundles".to_owned(), vec![id(3)])]);
        assert_eq!(list.0["shared"], [id(2)].into());
        assert!(!list.0.contains_key("only-old"));
    }
}
