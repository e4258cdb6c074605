//! The bars of a run on a terminal: the overall one (bytes, rate, ETA, `x of N images`) and
//! one per blob in flight, named after its images.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use ferry::digest::Digest;
use ferry::report::Event;

/// The bars of one run: the overall one, and one per blob in flight.
pub(super) struct Bars {
    pub(super) multi: MultiProgress,
    pub(super) total: ProgressBar,
    blobs: Mutex<HashMap<Digest, ProgressBar>>,
    /// The images each blob belongs to (from the plan).
    owners: Mutex<Arc<HashMap<Digest, Vec<String>>>>,
    /// The blobs the plan transfers (0 before it is made), for the overall bar's text.
    blobs_planned: Mutex<usize>,
}

impl Bars {
    pub(super) fn new(starting: &str) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let total = multi.add(ProgressBar::new_spinner());
        total.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .expect("valid template")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
        );
        total.set_message(starting.to_owned());
        total.enable_steady_tick(Duration::from_millis(100));
        Bars {
            multi,
            total,
            blobs: Mutex::new(HashMap::new()),
            owners: Mutex::new(Arc::default()),
            blobs_planned: Mutex::new(0),
        }
    }

    /// Removes every bar from the terminal.
    pub(super) fn clear(&self) {
        for (_, bar) in self.blobs.lock().expect("bars lock").drain() {
            bar.finish_and_clear();
        }
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }

    pub(super) fn draw(&self, event: &Event) {
        match event {
            Event::Planned {
                bytes_to_fetch,
                blobs_to_fetch,
                owners,
                ..
            } => self.planned(*bytes_to_fetch, *blobs_to_fetch, owners),
            Event::BlobStarted {
                digest,
                size,
                offset,
            } => self.blob_started(digest, *size, *offset),
            Event::BlobProgress { digest, bytes } => {
                self.total.inc(*bytes);
                if let Some(bar) = self.blobs.lock().expect("bars lock").get(digest) {
                    bar.inc(*bytes);
                }
            }
            Event::BlobRewound { digest, bytes } => {
                self.total
                    .set_position(self.total.position().saturating_sub(*bytes));
                if let Some(bar) = self.blobs.lock().expect("bars lock").get(digest) {
                    bar.set_position(0);
                }
            }
            Event::Copied { bytes } => self.total.inc(*bytes),
            Event::BlobDone { digest } | Event::BlobFailed { digest } => {
                if let Some(bar) = self.blobs.lock().expect("bars lock").remove(digest) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
            }
            _ => {}
        }
    }

    fn planned(&self, bytes: u64, blobs: usize, owners: &Arc<HashMap<Digest, Vec<String>>>) {
        *self.owners.lock().expect("owners lock") = Arc::clone(owners);
        self.counting(bytes);
        *self.blobs_planned.lock().expect("blobs lock") = blobs;
    }

    /// A copy out of a bundle starts: `bytes` to write.
    pub(super) fn copy_started(&self, bytes: u64) {
        self.counting(bytes);
    }

    /// The spinner becomes a bar towards `bytes`, with its rate and ETA.
    fn counting(&self, bytes: u64) {
        self.total.set_length(bytes);
        self.total.set_position(0);
        self.total.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar:.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
    }

    /// `3 of 12 images, 40 blobs` on the overall bar, once planned (a copy: `3 of 12
    /// images`, or nothing when it counts bytes only).
    pub(super) fn show_count(&self, ended: usize, images: usize) {
        let blobs = *self.blobs_planned.lock().expect("blobs lock");
        if self.total.length().is_none() {
            return;
        }
        self.total.set_message(match (images, blobs) {
            (0, 0) => String::new(),
            (_, 0) => format!("{ended} of {images} images"),
            _ => format!("{ended} of {images} images, {blobs} blobs"),
        });
    }

    fn blob_started(&self, digest: &Digest, size: u64, offset: u64) {
        let bar = self.multi.insert_from_back(1, ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template("  {msg:50} {bar:30} {bytes:>10}/{total_bytes:10}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(self.blob_label(digest));
        bar.set_position(offset);
        self.total.inc(offset);
        self.blobs
            .lock()
            .expect("bars lock")
            .insert(digest.clone(), bar);
    }

    /// `docker.io/library/alpine:3.20 (+2) 1a2b3c4d5e6f`: the first image needing the blob, how many more do,
    /// and the blob's short digest.
    fn blob_label(&self, digest: &Digest) -> String {
        let owners = self.owners.lock().expect("owners lock");
        let names = owners.get(digest).map(Vec::as_slice).unwrap_or_default();
        let Some(first) = names.first() else {
            return digest.short();
        };
        // The end of a long name says most (repository and tag).
        let first = if first.chars().count() > 32 {
            let tail: String = first.chars().rev().take(31).collect();
            format!("…{}", tail.chars().rev().collect::<String>())
        } else {
            first.clone()
        };
        let more = match names.len() {
            1 => String::new(),
            n => format!(" (+{})", n - 1),
        };
        format!("{first}{more} {}", digest.short())
    }
}
