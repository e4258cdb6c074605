//! `ferry diff A B`: references added, removed and moved between two bundles or lock files,
//! and what B needs beyond A.

use std::collections::BTreeMap;

use super::Side;
use crate::digest::Digest;

/// How B differs from A.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// References in B only, with their digests.
    pub added: Vec<(String, Digest)>,
    /// References in A only, with their digests.
    pub removed: Vec<(String, Digest)>,
    /// References in both that point at other content: (reference, in A, in B).
    pub moved: Vec<(String, Digest, Digest)>,
    /// References in both, unchanged.
    pub unchanged: usize,
    /// Blobs B needs that A does not have, with sizes; `None` when a side records no blobs.
    pub new_blobs: Option<BTreeMap<Digest, u64>>,
}

impl Diff {
    /// Bytes B needs beyond A, when known.
    pub fn new_bytes(&self) -> Option<u64> {
        self.new_blobs.as_ref().map(|b| b.values().sum())
    }
}

/// Compares two sides.
pub fn diff(a: &Side, b: &Side) -> Diff {
    let mut out = Diff::default();
    for (name, digest) in &b.refs {
        match a.refs.get(name) {
            None => out.added.push((name.clone(), digest.clone())),
            Some(old) if old != digest => {
                out.moved.push((name.clone(), old.clone(), digest.clone()))
            }
            Some(_) => out.unchanged += 1,
        }
    }
    for (name, digest) in &a.refs {
        if !b.refs.contains_key(name) {
            out.removed.push((name.clone(), digest.clone()));
        }
    }
    if let (Some(ab), Some(bb)) = (&a.blobs, &b.blobs) {
        out.new_blobs = Some(
            bb.iter()
                .filter(|(d, _)| !ab.contains_key(*d))
                .map(|(d, s)| (d.clone(), *s))
                .collect(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::sha256_of(s.as_bytes())
    }

    fn side(refs: &[(&str, &str)], blobs: Option<&[(&str, u64)]>) -> Side {
        Side {
            refs: refs.iter().map(|(r, x)| ((*r).to_owned(), d(x))).collect(),
            blobs: blobs.map(|b| b.iter().map(|(x, s)| (d(x), *s)).collect()),
            lock_digest: d(""),
        }
    }

    #[test]
    fn added_removed_moved_and_bytes() {
        let a = side(
            &[("r/a:1", "A"), ("r/b:1", "B"), ("r/c:1", "C")],
            Some(&[("A", 10), ("B", 20), ("base", 100)]),
        );
        let b = side(
            &[("r/a:1", "A"), ("r/b:1", "B2"), ("r/d:1", "D")],
            Some(&[("A", 10), ("B2", 25), ("D", 7), ("base", 100)]),
        );
        let x = diff(&a, &b);
        assert_eq!(x.added, vec![("r/d:1".to_owned(), d("D"))]);
        assert_eq!(x.removed, vec![("r/c:1".to_owned(), d("C"))]);
        assert_eq!(x.moved, vec![("r/b:1".to_owned(), d("B"), d("B2"))]);
        assert_eq!(x.unchanged, 1);
        assert_eq!(x.new_bytes(), Some(32));
        let unknown = diff(&side(&[], None), &b);
        assert_eq!(unknown.new_bytes(), None);
        assert_eq!(diff(&b, &b).new_bytes(), Some(0));
    }
}
