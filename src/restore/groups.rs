//! Splitting a restore into independent imports that run side by side: images that share a
//! blob go into the same import (so no blob is written twice at once), and the groups are
//! spread over the workers by size, largest first.

use std::collections::HashMap;

use crate::digest::Digest;

/// Splits images (each given as its blobs with their sizes) into at most `workers` lists of
/// image indices, none empty, each list's images sharing no blob with another list's.
pub fn split(images: &[Vec<(Digest, u64)>], workers: usize) -> Vec<Vec<usize>> {
    // Union-find over images, joined through the blobs they share.
    let mut parent: Vec<usize> = (0..images.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: HashMap<&Digest, usize> = HashMap::new();
    for (i, blobs) in images.iter().enumerate() {
        for (d, _) in blobs {
            if let Some(&j) = owner.get(d) {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                parent[a] = b;
            } else {
                owner.insert(d, i);
            }
        }
    }
    // Components with their distinct bytes.
    let mut components: HashMap<usize, (Vec<usize>, HashMap<&Digest, u64>)> = HashMap::new();
    for (i, blobs) in images.iter().enumerate() {
        let root = find(&mut parent, i);
        let entry = components.entry(root).or_default();
        entry.0.push(i);
        for (d, size) in blobs {
            entry.1.insert(d, *size);
        }
    }
    let mut sized: Vec<(u64, Vec<usize>)> = components
        .into_values()
        .map(|(members, blobs)| (blobs.values().sum(), members))
        .collect();
    sized.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    // Largest first onto the least loaded worker.
    let workers = workers.clamp(1, sized.len().max(1));
    let mut bins: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); workers];
    for (bytes, members) in sized {
        let bin = bins
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("at least one worker");
        bin.0 += bytes;
        bin.1.extend(members);
    }
    bins.into_iter()
        .map(|(_, mut members)| {
            members.sort_unstable();
            members
        })
        .filter(|m| !m.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    #[test]
    fn images_sharing_a_blob_stay_together_and_loads_balance() {
        let images = vec![
            vec![(d(1), 100), (d(2), 10)],
            vec![(d(3), 90)],
            vec![(d(2), 10), (d(4), 5)],
            vec![(d(5), 50)],
            vec![(d(6), 40)],
        ];
        let groups = split(&images, 2);
        assert_eq!(groups.len(), 2);
        let with = |i| groups.iter().position(|g| g.contains(&i)).unwrap();
        assert_eq!(with(0), with(2), "they share d(2)");
        // 115 (0+2) | 90, then 50 onto 90, then 40 onto 115: 155 and 140.
        assert_eq!(with(1), with(3));
        assert_eq!(with(0), with(4));
        let mut all: Vec<usize> = groups.concat();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn never_more_groups_than_images_or_workers() {
        let images = vec![vec![(d(1), 1)], vec![(d(2), 1)]];
        assert_eq!(split(&images, 8).len(), 2);
        assert_eq!(split(&images, 1), vec![vec![0, 1]]);
        assert!(split(&[], 4).is_empty());
    }
}
