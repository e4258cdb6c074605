//! The minimum transfer rate (like curl's `--speed-limit` over `--speed-time`): a body that
//! keeps delivering a byte now and then never trips the stall timer, yet would take days.

use std::time::{Duration, Instant};

/// Bytes counted over one window of time.
pub(crate) struct Pace {
    window: Duration,
    min_rate: u64,
    start: Instant,
    bytes: u64,
}

impl Pace {
    /// A pace check averaging over `window` (the stall timeout); `min_rate` 0 turns it off.
    pub fn new(window: Duration, min_rate: u64) -> Pace {
        Pace {
            window,
            min_rate,
            start: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `n` bytes that arrived. Once a window has passed, fails (with the reason) when it
    /// carried fewer bytes than the minimum rate, else starts the next window.
    pub fn record(&mut self, n: usize) -> Result<(), String> {
        self.bytes += n as u64;
        let elapsed = self.start.elapsed();
        if self.min_rate == 0 || elapsed < self.window {
            return Ok(());
        }
        let rate = self.bytes as f64 / elapsed.as_secs_f64();
        if rate < self.min_rate as f64 {
            return Err(format!(
                "{rate:.0} bytes/s over {:.0} s, under the minimum of {} bytes/s (--min-rate)",
                elapsed.as_secs_f64(),
                self.min_rate
            ));
        }
        self.start = Instant::now();
        self.bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_below_the_rate_fails_and_a_fast_one_restarts() {
        let mut p = Pace::new(Duration::from_millis(1), 1 << 30);
        std::thread::sleep(Duration::from_millis(5));
        assert!(p.record(10).is_err(), "10 bytes in 5 ms is under 1 GiB/s");
        let mut p = Pace::new(Duration::from_millis(1), 1);
        std::thread::sleep(Duration::from_millis(5));
        assert!(p.record(1 << 20).is_ok());
        let mut off = Pace::new(Duration::ZERO, 0);
        assert!(off.record(0).is_ok());
        let mut long = Pace::new(Duration::from_secs(3600), 1 << 30);
        assert!(
            long.record(1).is_ok(),
            "judged only once a window has passed"
        );
    }
}
