//! Images resolved before the run, whose blobs the bundle holds already: charts packed from
//! HTTP repositories and local files (src/chart, src/artifact), committed like any image.

use super::Run;
use crate::error::Error;
use crate::report::Event;
use crate::resolve::ResolvedImage;

/// An image resolved before the run, or why it could not be: (reference, error).
pub type Prepared = Result<ResolvedImage, (String, Error)>;

/// Adds the prepared images to the resolved ones (failures to the run's report), in order.
pub(super) fn add(run: &mut Run, images: &mut Vec<ResolvedImage>, prepared: &[Prepared]) {
    for p in prepared {
        match p {
            Ok(image) => {
                run.reporter.event(&Event::Resolved {
                    reference: image.reference.to_string(),
                    digest: image.root.digest.clone(),
                    platforms: Vec::new(),
                });
                images.push(image.clone());
            }
            Err((reference, error)) => run.fail(reference.clone(), None, 0, error.clone(), 0),
        }
    }
    images.sort_by(|a, b| a.reference.cmp(&b.reference));
}
