//! Draws bundle and push events, and the copies out of a bundle (export, apply, restore): bars
//! on a terminal (overall bytes, rate, ETA and `x of N images`, and one bar per active blob,
//! named after its images), plain lines otherwise (one per image as it resolves, completes or
//! fails, and running totals every `FERRY_LOG_INTERVAL` seconds, 10 by default; a copy's once
//! more at its end), and the lines that matter (failures, retries) everywhere.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressDrawTarget};

use ferry::report::{Event, Reporter};
use ferry::supply::is_referrer_name;
use ferry::untrusted::printable;

use super::output;

mod bars;
use bars::Bars;

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

/// `--no-progress` and `-q/--quiet` of the commands that copy out of a bundle (export,
/// apply, restore).
#[derive(Debug, clap::Args)]
pub struct ProgressArgs {
    /// No progress bars, even on a terminal: plain lines instead, with running totals every
    /// FERRY_LOG_INTERVAL seconds (10 by default) and the totals at the end.
    #[arg(long)]
    pub no_progress: bool,
    /// Only errors and warnings on stderr: no progress, no summary.
    #[arg(short, long)]
    pub quiet: bool,
}

impl ProgressArgs {
    /// A reporter for a copy, its spinner saying `starting` until the copy is counted.
    pub fn progress(&self, starting: &str) -> BundleProgress {
        BundleProgress::with_spinner(Style::pick(self.no_progress, self.quiet), 0, starting)
    }
}

/// The bars on the terminal now: a signal handler takes them off before it says anything.
static ON_SCREEN: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Clears the bars from the terminal and keeps them off (a run being stopped draws no
/// more), so that what is printed next starts on a clean line.
pub fn take_off_screen() {
    if let Some(multi) = ON_SCREEN.lock().expect("screen lock").take() {
        let _ = multi.clear();
        multi.set_draw_target(ProgressDrawTarget::hidden());
    }
}

/// The CLI's reporter for `ferry bundle` and `ferry push`, and for the copies out of a bundle
/// (export, apply, restore).
pub struct BundleProgress {
    bars: Option<Bars>,
    style: Style,
    totals: Arc<Mutex<Totals>>,
    /// Stops the periodic totals (started once the run is planned: before, the resolved
    /// lines show the progress).
    ticker: Mutex<Option<mpsc::Sender<()>>>,
}

/// Counts for the periodic totals line.
struct Totals {
    start: Instant,
    images: usize,
    done: usize,
    failed: usize,
    bytes: u64,
    bytes_total: u64,
    /// A copy out of a bundle (export, apply, restore), not a transfer.
    copy: bool,
}

impl Totals {
    fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        // A copy's total is its tar's size, exact; the count never passes it.
        let bytes = if self.copy {
            self.bytes.min(self.bytes_total)
        } else {
            self.bytes
        };
        let rate = if secs > 0.0 {
            (bytes as f64 / secs) as u64
        } else {
            0
        };
        // An export or apply counts bytes only.
        let images = if self.copy && self.images == 0 {
            String::new()
        } else {
            format!(
                "{} of {} images done, {} failed; ",
                self.done, self.images, self.failed
            )
        };
        format!(
            "progress: {images}{} of {}, {}/s, {:.0} s",
            output::bytes(bytes),
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
        Self::with_spinner(style, images, "resolving references")
    }

    /// A reporter whose spinner says `starting` until the work is counted.
    pub fn with_spinner(style: Style, images: usize, starting: &str) -> BundleProgress {
        let totals = Arc::new(Mutex::new(Totals {
            start: Instant::now(),
            images,
            done: 0,
            failed: 0,
            bytes: 0,
            bytes_total: 0,
            copy: false,
        }));
        BundleProgress {
            bars: (style == Style::Bars).then(|| {
                let bars = Bars::new(starting);
                *ON_SCREEN.lock().expect("screen lock") = Some(bars.multi.clone());
                bars
            }),
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
            b.clear();
            ON_SCREEN.lock().expect("screen lock").take();
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
            Event::ImageCopied { failed, .. } => return self.count_image(*failed),
            Event::CopyStarted { images, bytes } => return self.copy_started(*images, *bytes),
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
            Event::Copied { bytes } => t.bytes += bytes,
            _ => {}
        }
    }

    /// A copy out of a bundle starts: its totals, and the ticker of the plain lines.
    fn copy_started(&self, images: usize, bytes: u64) {
        {
            let mut t = self.totals.lock().expect("totals lock");
            t.images = images;
            t.bytes_total = bytes;
            t.copy = true;
            // Each copy of a run counts from zero (export writes one output after another).
            (t.done, t.failed, t.bytes) = (0, 0, 0);
        }
        if self.style == Style::Lines {
            let mut ticker = self.ticker.lock().expect("ticker lock");
            if ticker.is_none() {
                *ticker = Some(start_ticker(self.totals.clone()));
            }
        }
        if let Some(b) = &self.bars {
            b.copy_started(bytes);
        }
        self.show_count();
    }

    /// [`finish`](Self::finish), then, in plain lines, the totals of the copy (export, apply,
    /// restore) once more, final.
    pub fn finish_copy(&self) {
        self.finish();
        let t = self.totals.lock().expect("totals lock");
        if self.style == Style::Lines && t.copy {
            eprintln!("{}", t.line());
        }
    }
}

impl Drop for BundleProgress {
    /// A run that ends in an error never reaches `finish`: its totals stop and its bars go
    /// here, before the error is printed.
    fn drop(&mut self) {
        self.finish();
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
        let digest: ferry::digest::Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
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
