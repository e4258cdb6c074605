//! Draws bundle events: bars on a terminal (overall bytes and one bar per active blob), and
//! the lines that matter (failures, retries) everywhere.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use ferry::digest::Digest;
use ferry::report::{Event, Reporter};

/// The CLI's reporter for `ferry bundle`.
pub struct BundleProgress {
    bars: Option<Bars>,
    quiet: bool,
}

struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    blobs: Mutex<HashMap<Digest, ProgressBar>>,
}

impl BundleProgress {
    /// `draw`: whether to draw bars (a terminal and no --no-progress). `quiet`: no retry lines.
    pub fn new(draw: bool, quiet: bool) -> BundleProgress {
        let bars = draw.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
            let total = multi.add(ProgressBar::new_spinner());
            total.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .expect("valid template")
                    .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
            );
            total.set_message("resolving references");
            total.enable_steady_tick(Duration::from_millis(100));
            Bars {
                multi,
                total,
                blobs: Mutex::new(HashMap::new()),
            }
        });
        BundleProgress { bars, quiet }
    }

    /// Prints a line above the bars (or plainly when there are none).
    pub fn line(&self, text: &str) {
        match &self.bars {
            Some(b) => b.multi.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// Removes the bars before the summary is printed.
    pub fn finish(&self) {
        if let Some(b) = &self.bars {
            for (_, bar) in b.blobs.lock().expect("bars lock").drain() {
                bar.finish_and_clear();
            }
            b.total.finish_and_clear();
            let _ = b.multi.clear();
        }
    }
}

impl Reporter for BundleProgress {
    fn event(&self, event: &Event) {
        match event {
            Event::Retrying {
                what,
                attempt,
                delay,
                reason,
            } if !self.quiet => {
                self.line(&format!(
                    "{} {what}: attempt {attempt} failed ({reason}); retrying in {:.1} s",
                    console::style("retry:").for_stderr().yellow(),
                    delay.as_secs_f64()
                ));
            }
            // With bars on screen a failure would go unseen until the end; without them the
            // final summary lists every failure in full, so once is enough.
            Event::ImageFailed { reference, error } if self.bars.is_some() => {
                let first = error.to_string();
                self.line(&format!(
                    "{} {reference}: {first}",
                    console::style("failed:").for_stderr().red().bold()
                ));
            }
            _ => {}
        }
        let Some(b) = &self.bars else { return };
        match event {
            Event::Planned {
                bytes_to_fetch,
                blobs_to_fetch,
                ..
            } => {
                b.total.set_length(*bytes_to_fetch);
                b.total.set_position(0);
                b.total.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar:.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                b.total.set_message(format!("{blobs_to_fetch} blobs"));
            }
            Event::BlobStarted {
                digest,
                size,
                offset,
            } => {
                let bar = b.multi.insert_from_back(1, ProgressBar::new(*size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "  {msg:20} {bar:30} {bytes:>10}/{total_bytes:10}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_message(digest.short());
                bar.set_position(*offset);
                b.total.inc(*offset);
                b.blobs
                    .lock()
                    .expect("bars lock")
                    .insert(digest.clone(), bar);
            }
            Event::BlobProgress { digest, bytes } => {
                b.total.inc(*bytes);
                if let Some(bar) = b.blobs.lock().expect("bars lock").get(digest) {
                    bar.inc(*bytes);
                }
            }
            Event::BlobRewound { digest, bytes } => {
                b.total
                    .set_position(b.total.position().saturating_sub(*bytes));
                if let Some(bar) = b.blobs.lock().expect("bars lock").get(digest) {
                    bar.set_position(0);
                }
            }
            Event::BlobDone { digest } | Event::BlobFailed { digest } => {
                if let Some(bar) = b.blobs.lock().expect("bars lock").remove(digest) {
                    bar.finish_and_clear();
                    b.multi.remove(&bar);
                }
            }
            _ => {}
        }
    }
}
