//! Refusing up front what cannot fit: sizes come from manifests, which a registry may lie in
//! (a layer declared as 1 TB would fill the volume and leave a useless partial behind). Checked
//! against the free space of the bundle's filesystem before any blob is written.

use indicatif::HumanBytes;

use super::{Pending, Run, Users};
use crate::fsutil::free_space;
use crate::plan::Download;
use crate::resolve::ResolvedImage;
use crate::store::Layout;

/// Kept free beyond the blobs: manifests, configs, index.json, the lock file, and the
/// filesystem's own metadata.
const MARGIN: u64 = 4 << 20;

fn with_margin(bytes: u64) -> u64 {
    bytes.saturating_add(MARGIN + bytes / 100)
}

fn figure(n: u64) -> String {
    format!("{n} bytes ({})", HumanBytes(n))
}

/// Fails the images that cannot fit and returns the downloads left to run. A blob that alone
/// needs more than the free space fails the images that use it (the others go on); then, when
/// what is left does not fit either, every image still waiting fails and nothing is fetched.
/// A partial download of a blob larger than the whole filesystem is removed (it can never
/// complete); other partials are kept for a run with more space.
pub(super) fn refuse_what_cannot_fit<'p>(
    layout: &Layout,
    downloads: &'p [Download],
    images: &[ResolvedImage],
    users: &Users,
    pending: &mut [Pending],
    run: &mut Run,
) -> Vec<&'p Download> {
    // statvfs failing is no reason to refuse: a full disk is still caught while writing.
    let Ok(space) = free_space(layout.root()) else {
        return downloads.iter().collect();
    };
    let root = layout.root().display();
    let need = |d: &Download| d.size - layout.partial_len(&d.digest, d.size);
    for d in downloads {
        if with_margin(need(d)) <= space.available {
            continue;
        }
        let partial = layout.partial_len(&d.digest, d.size);
        let fate = if d.size > space.total {
            // It can never complete here: what an earlier run left of it is junk.
            layout.remove_partial(&d.digest);
            format!(
                "; the whole filesystem is {}: check the image's manifest",
                figure(space.total)
            )
        } else if partial > 0 {
            format!(
                "; the {} an earlier run downloaded are kept for a run with more space",
                figure(partial)
            )
        } else {
            String::new()
        };
        let why = format!(
            "blob {} declares {}, more than the {} free on the bundle's filesystem \
             ({root}){fate}; nothing was written for it in this run",
            d.digest,
            figure(d.size),
            figure(space.available),
        );
        for &i in users.of(&d.digest) {
            pending[i].fail(run, &images[i], no_room(&why, SPACE_HINT));
        }
    }
    let live: Vec<&Download> = downloads
        .iter()
        .filter(|d| users.of(&d.digest).iter().any(|&i| pending[i].open))
        .collect();
    let total: u64 = live.iter().map(|d| need(d)).sum();
    if with_margin(total) <= space.available {
        return live;
    }
    let why = format!(
        "the images need {} more on the bundle's filesystem ({root}), which has {} free; \
         nothing was fetched",
        figure(with_margin(total)),
        figure(space.available),
    );
    for d in &live {
        for &i in users.of(&d.digest) {
            pending[i].fail(run, &images[i], no_room(&why, FEWER_HINT));
        }
    }
    Vec::new()
}

const SPACE_HINT: &str = "free space there or bundle onto a larger volume (-o)";
const FEWER_HINT: &str =
    "free space there, bundle onto a larger volume (-o), or bundle fewer images per run";

fn no_room(why: &str, hint: &str) -> crate::error::Error {
    crate::error::Error::msg(crate::error::Kind::Io, why).with_hint(hint)
}
