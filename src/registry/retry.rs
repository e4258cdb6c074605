//! When and how long to wait before trying again.

use std::time::{Duration, Instant, SystemTime};

use super::Registries;
use super::error::{ErrorKind, RegistryError, Stopped};
use crate::report::Event;

/// Retry and timeout settings for every request to a registry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `retries + 1` attempts at most).
    pub retries: u32,
    /// First backoff delay; doubles each retry, with full jitter.
    pub base_delay: Duration,
    /// Longest backoff delay (a `Retry-After` may ask for more, up to `max_retry_after`).
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a registry asking for more fails the request.
    pub max_retry_after: Duration,
    /// No byte for this long cuts the connection.
    pub stall_timeout: Duration,
    /// A body slower than this many bytes per second, averaged over `stall_timeout`, is cut
    /// (like curl's `--speed-limit`); 0 turns the check off.
    pub min_rate: u64,
    /// The first attempt's time limit; it doubles each attempt up to `max_attempt_timeout`.
    pub attempt_timeout: Duration,
    /// The ceiling for the growing attempt timeout.
    pub max_attempt_timeout: Duration,
    /// When the whole run must end, if ever.
    pub deadline: Option<Instant>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            stall_timeout: Duration::from_secs(30),
            min_rate: 1024,
            attempt_timeout: Duration::from_secs(30),
            max_attempt_timeout: Duration::from_secs(300),
            deadline: None,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1-based): exponential with full jitter, or the
    /// registry's `Retry-After` when it gave one.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after);
        }
        let exp = self
            .base_delay
            .saturating_mul(
                1u32.checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_delay);
        // Full jitter: spreads the retries of many clients (and many blobs) apart.
        let millis = exp.as_millis() as u64;
        Duration::from_millis(millis / 2 + fastrand::u64(0..=millis / 2))
    }

    /// The time limit of attempt number `attempt` (1-based): 30 s doubling to 5 min, as
    /// image-prefetcher does, never past the deadline.
    pub fn attempt_timeout(&self, attempt: u32) -> Duration {
        let grown = self
            .attempt_timeout
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_attempt_timeout);
        match self.remaining() {
            Some(left) => grown.min(left),
            None => grown,
        }
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether waiting `delay` would pass the deadline.
    fn past_deadline_after(&self, delay: Duration) -> bool {
        self.remaining().is_some_and(|left| delay >= left)
    }
}

/// Parses `Retry-After`: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    // delay-seconds is `1*DIGIT`; u64's parser would also take a sign (`+5`).
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    // httpdate takes the three date forms HTTP allows and refuses, rather than overflows on,
    // absurd years.
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Counts the attempts at one request and decides, after each failure, whether to try again
/// (after backoff or `Retry-After`) or give up.
pub struct Retrier<'a> {
    pool: &'a Registries,
    what: String,
    retries: u32,
    start: Instant,
    attempts: u32,
    in_a_row: u32,
}

impl<'a> Retrier<'a> {
    /// A retrier allowing `retries` failures in a row (mirrors get fewer than sources).
    pub(crate) fn new(pool: &'a Registries, what: String, retries: u32) -> Retrier<'a> {
        Retrier {
            pool,
            what,
            retries,
            start: Instant::now(),
            attempts: 0,
            in_a_row: 0,
        }
    }

    /// Starts the next attempt; returns its number (1-based).
    pub fn next_attempt(&mut self) -> u32 {
        self.attempts += 1;
        self.attempts
    }

    /// Retries so far.
    pub fn retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }

    /// Runs `attempt` (given its 1-based number) until it succeeds or [`Retrier::failed`]
    /// gives up: the one retry loop of every request that keeps nothing between attempts. A
    /// transfer that keeps bytes across attempts (fetch's ranged parts, a streamed upload that
    /// may have landed) counts its progress itself with `next_attempt` and `failed`.
    pub async fn run<T, F, Fut>(&mut self, mut attempt: F) -> Result<T, RegistryError>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        loop {
            let number = self.next_attempt();
            match attempt(number).await {
                Ok(value) => return Ok(value),
                Err(e) => self.failed(e, false).await?,
            }
        }
    }

    /// Records a failed attempt. `progressed` (bytes were stored) resets the count of failures
    /// in a row. Returns after the backoff when another attempt is worth it, or the final
    /// error (with attempts and elapsed time) when not.
    pub async fn failed(
        &mut self,
        error: RegistryError,
        progressed: bool,
    ) -> Result<(), RegistryError> {
        let policy = &self.pool.options.retry;
        // The reason shown in a retry line: this attempt's error, before it learns the totals.
        let reason = error
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        // Bytes that trickled in below --min-rate are no progress: a registry dripping them
        // would otherwise be retried for ever.
        let progressed = progressed && error.kind != ErrorKind::TooSlow;
        self.in_a_row = if progressed { 0 } else { self.in_a_row + 1 };
        let error = error.counted(self.attempts, self.start.elapsed());
        if !error.kind.is_retryable() || self.in_a_row > self.retries {
            return Err(error);
        }
        if error
            .retry_after
            .is_some_and(|ra| ra > policy.max_retry_after)
        {
            return Err(error.stopped(Stopped::RetryAfterTooLong));
        }
        let delay = policy.delay(self.in_a_row.max(1), error.retry_after);
        if policy.past_deadline_after(delay) {
            return Err(error.stopped(Stopped::Deadline));
        }
        self.pool
            .retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(
            "retrying {}: attempt {} failed ({}); next in {} ms",
            crate::redact::redact(&self.what),
            self.attempts,
            crate::redact::redact(&reason),
            delay.as_millis()
        );
        self.pool.reporter.event(&Event::Retrying {
            what: self.what.clone(),
            attempt: self.attempts,
            delay,
            reason,
        });
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_digits_or_a_date() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        // Found by tests/parsers: u64's parser takes a sign.
        assert_eq!(parse_retry_after("+0"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn delays_grow_and_cap() {
        let p = RetryPolicy::default();
        for retry in 1..12 {
            let d = p.delay(retry, None);
            let exp = p
                .base_delay
                .saturating_mul(1 << (retry - 1))
                .min(p.max_delay);
            assert!(d >= exp / 2 && d <= exp, "retry {retry}: {d:?} vs {exp:?}");
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(9999))),
            p.max_retry_after
        );
    }

    #[test]
    fn attempt_timeouts_double_to_five_minutes() {
        let p = RetryPolicy::default();
        let t: Vec<u64> = (1..=6).map(|a| p.attempt_timeout(a).as_secs()).collect();
        assert_eq!(t, [30, 60, 120, 240, 300, 300]);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT").unwrap()
                > Duration::from_secs(1 << 30)
        );
        assert_eq!(parse_retry_after("soon"), None);
        // Years that overflowed the hand-written parser (a panic in debug builds).
        for absurd in [
            "Sun, 06 Nov 292277026596 08:49:37 GMT",
            "Sun, 06 Nov -9223372036854775808 08:49:37 GMT",
            "Sun, 99 Nov 1994 99:99:99 GMT",
        ] {
            assert_eq!(parse_retry_after(absurd), None, "{absurd}");
        }
    }
}
