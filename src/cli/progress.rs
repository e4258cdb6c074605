//! Draws bundle and push events: bars on a terminal (overall bytes and one bar per active blob,
//! named after its images), plain lines otherwise (one per image as it resolves, completes or
//! fails, and running totals every `FERRY_LOG_INTERVAL` seconds, 10 by default), and the lines
//! that matter (failures, retries) everywhere.

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use ferry::digest::Digest;
use ferry::report::{Event, Reporter};
use ferry::supply::is_referrer_name;
use ferry::untrusted::printable;

use super::output;

/// How the run is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Progress bars (a terminal, no `--no-progress`, no `-v`).
    Bars,
    /// One plain line per image and periodic totals (CI, a log file, `--no-progress`).
    Lines,
    /// Only errors (`--quiet`).
    Quiet,
}

impl Style {
    /// The style for a command's `--no-progress` and `--quiet`.
    pub fn pick(no_progress: bool, quiet: bool) -> Style {
        if quiet {
            Style::Quiet
        } else if no_progress || !output::stderr_is_terminal() || super::log::enabled() {
            Style::Lines
        } else {
            Style::Bars
        }
    }
}

/// The CLI's reporter for `ferry bundle` and `ferry push`.
pub struct BundleProgress {
    bars: Option<Bars>,
    style: Style,
    totals: Arc<Mutex<Totals>>,
    /// Stops the periodic totals (started once the run is planned: before, the resolved
    /// lines show the progress).
    ticker: Mutex<Option<mpsc::Sender<()>>>,
}

struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    blobs: Mutex<HashMap<Digest, ProgressBar>>,
    /// The images each blob belongs to (from the plan).
    owners: Mutex<Arc<HashMap<Digest, Vec<String>>>>,
    /// The blobs the plan transfers (0 before it is made), for the overall bar's text.
    blobs_planned: Mutex<usize>,
}

/// Counts for the periodic totals line.
struct Totals {
    start: Instant,
    images: usize,
    done: usize,
    failed: usize,
    bytes: u64,
    bytes_total: u64,
}

impl Totals {
    fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (self.bytes as f64 / secs) as u64
        } else {
            0
        };
        format!(
            "progress: {} of {} images done, {} failed; {} of {}, {}/s, {:.0} s",
            self.done,
            self.images,
            self.failed,
            output::bytes(self.bytes),
            output::bytes(self.bytes_total),
            output::bytes(rate),
            secs
        )
    }
}

/// The interval of the totals line: `FERRY_LOG_INTERVAL` seconds (10 by default).
fn interval() -> Duration {
    std::env::var("FERRY_LOG_INTERVAL")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(10), Duration::from_secs_f64)
}

impl BundleProgress {
    /// A reporter drawing in `style`, for a run of `images` images.
    pub fn new(style: Style, images: usize) -> BundleProgress {
        let totals = Arc::new(Mutex::new(Totals {
            start: Instant::now(),
            images,
            done: 0,
            failed: 0,
            bytes: 0,
            bytes_total: 0,
        }));
        BundleProgress {
            bars: (style == Style::Bars).then(Bars::new),
            style,
            totals,
            ticker: Mutex::new(None),
        }
    }

    /// Prints a line above the bars (or plainly when there are none).
    pub fn line(&self, text: &str) {
        match &self.bars {
            Some(b) => b.multi.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// Counts an image that ended (for callers whose images end outside the events: push).
    pub fn count_image(&self, failed: bool) {
        {
            let mut t = self.totals.lock().expect("totals lock");
            if failed {
                t.failed += 1;
            } else {
                t.done += 1;
            }
        }
        self.show_count();
    }

    /// Sets how many images the run has, once known (bundle's `--chart` and `--add-file`
    /// entries, and the images charts name, join the references after the start).
    pub fn set_images(&self, images: usize) {
        self.totals.lock().expect("totals lock").images = images;
        self.show_count();
    }

    /// Shows `x of N images` on the overall bar (once the run is planned).
    fn show_count(&self) {
        if let Some(b) = &self.bars {
            let t = self.totals.lock().expect("totals lock");
            b.show_count(t.done + t.failed, t.images);
        }
    }

    /// Stops the periodic totals line, if it runs.
    fn stop_ticker(&self) {
        if let Some(stop) = self.ticker.lock().expect("ticker lock").take() {
            let _ = stop.send(());
        }
    }

    /// Removes the bars and stops the totals before the summary is printed.
    pub fn finish(&self) {
        self.stop_ticker();
        if let Some(b) = &self.bars {
            for (_, bar) in b.blobs.lock().expect("bars lock").drain() {
                bar.finish_and_clear();
            }
            b.total.finish_and_clear();
            let _ = b.multi.clear();
        }
    }

    /// The plain line an event deserves, if any (in every style but quiet).
    fn line_for(&self, event: &Event) -> Option<String> {
        let lines = self.style == Style::Lines;
        match event {
            Event::Retrying {
                what,
                attempt,
                delay,
                reason,
            } => Some(format!(
                "{} {}: attempt {attempt} failed ({}); retrying in {:.1} s",
                console::style("retry:").for_stderr().yellow(),
                printable(what),
                printable(reason),
                delay.as_secs_f64()
            )),
            Event::Resolved {
                reference,
                digest,
                platforms,
            } if lines => Some(format!(
                "resolved {reference} {digest} ({})",
                platforms_text(platforms)
            )),
            Event::ImageDone {
                reference,
                digest,
                bytes,
                elapsed,
            } if lines => Some(format!(
                "done {reference} {digest} {} in {:.1} s",
                output::bytes(*bytes),
                elapsed.as_secs_f64()
            )),
            Event::PlatformsMissing { reference, missing } => Some(format!(
                "{} {reference}: no {} image (a single-platform image: bundled for the \
                 platforms it has; --require-platforms fails it instead)",
                console::style("warning:").for_stderr().yellow().bold(),
                missing.join(" or ")
            )),
            // The error itself is shown once, at the end (grouped when it is the registry's).
            Event::ImageFailed { reference, error } => Some(format!(
                "{} {} ({}; the error is shown at the end)",
                console::style("failed").for_stderr().red().bold(),
                printable(reference),
                error.kind()
            )),
            _ => None,
        }
    }

    /// Keeps the counts of the totals line and of the overall bar.
    fn count(&self, event: &Event) {
        match event {
            Event::ImageDone { reference, .. } | Event::ImageFailed { reference, .. }
                if !is_referrer_name(reference) =>
            {
                self.count_image(matches!(event, Event::ImageFailed { .. }));
                return;
            }
            _ => {}
        }
        // Only the plain-lines style shows byte totals: the others skip the lock on the hot
        // path.
        if self.style != Style::Lines {
            return;
        }
        let mut t = self.totals.lock().expect("totals lock");
        match event {
            Event::Planned { bytes_to_fetch, .. } => {
                t.bytes_total = *bytes_to_fetch;
                let mut ticker = self.ticker.lock().expect("ticker lock");
                if ticker.is_none() {
                    *ticker = Some(start_ticker(self.totals.clone()));
                }
            }
            Event::BlobStarted { offset, .. } => t.bytes += offset,
            Event::BlobProgress { bytes, .. } => t.bytes += bytes,
            Event::BlobRewound { bytes, .. } => t.bytes = t.bytes.saturating_sub(*bytes),
            _ => {}
        }
    }
}

impl Drop for BundleProgress {
    /// A run that ends in an error never reaches `finish`: its totals stop here.
    fn drop(&mut self) {
        self.stop_ticker();
    }
}

/// `2 platforms: linux/amd64, linux/arm64`.
fn platforms_text(platforms: &[String]) -> String {
    match platforms {
        [] => "no platform named".into(),
        [one] => format!("1 platform: {one}"),
        all => format!("{} platforms: {}", all.len(), all.join(", ")),
    }
}

/// Prints the totals line every interval until told to stop.
fn start_ticker(totals: Arc<Mutex<Totals>>) -> mpsc::Sender<()> {
    let (stop, stopped) = mpsc::channel::<()>();
    let every = interval();
    std::thread::spawn(move || {
        while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
            let line = totals.lock().expect("totals lock").line();
            eprintln!("{line}");
        }
    });
    stop
}

impl Bars {
    fn new() -> Bars {
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
            owners: Mutex::new(Arc::default()),
            blobs_planned: Mutex::new(0),
        }
    }

    fn draw(&self, event: &Event) {
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
        self.total.set_length(bytes);
        self.total.set_position(0);
        self.total.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar:.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        *self.blobs_planned.lock().expect("blobs lock") = blobs;
    }

    /// `3 of 12 images, 40 blobs` on the overall bar, once planned.
    fn show_count(&self, ended: usize, images: usize) {
        let blobs = *self.blobs_planned.lock().expect("blobs lock");
        if self.total.length().is_some() {
            self.total
                .set_message(format!("{ended} of {images} images, {blobs} blobs"));
        }
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

impl Reporter for BundleProgress {
    fn event(&self, event: &Event) {
        self.count(event);
        if self.style != Style::Quiet
            && let Some(line) = self.line_for(event)
        {
            self.line(&line);
        }
        if let Some(b) = &self.bars {
            b.draw(event);
            if matches!(event, Event::Planned { .. }) {
                self.show_count();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overall_bar_counts_images_of_the_whole_run() {
        let p = BundleProgress::new(Style::Bars, 1);
        p.set_images(3);
        let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        p.event(&Event::Planned {
            blobs_to_fetch: 2,
            bytes_to_fetch: 10,
            blobs_present: 0,
            bytes_present: 0,
            owners: Arc::default(),
        });
        let total = &p.bars.as_ref().unwrap().total;
        assert_eq!(total.message(), "0 of 3 images, 2 blobs");
        p.event(&Event::ImageDone {
            reference: "registry.example/a:1".into(),
            digest: digest.clone(),
            bytes: 10,
            elapsed: Duration::ZERO,
        });
        p.count_image(true);
        assert_eq!(total.message(), "2 of 3 images, 2 blobs");
        // A signature is no image of the count.
        p.event(&Event::ImageDone {
            reference: format!("registry.example/a:sha256-{}.sig", "b".repeat(64)),
            digest,
            bytes: 1,
            elapsed: Duration::ZERO,
        });
        assert_eq!(total.message(), "2 of 3 images, 2 blobs");
    }

    #[test]
    fn platforms_are_counted_and_named() {
        assert_eq!(
            platforms_text(&["linux/amd64".into()]),
            "1 platform: linux/amd64"
        );
        assert_eq!(
            platforms_text(&["linux/amd64".into(), "linux/arm64".into()]),
            "2 platforms: linux/amd64, linux/arm64"
        );
    }
}
