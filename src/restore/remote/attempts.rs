//! Attempts with growing time limits, as image-prefetcher pulls and as ferry's registry client
//! fetches: attempt n may take `attempt_timeout` doubled n-1 times (30 s to 5 min by default),
//! with jittered backoff between attempts, never past the deadline.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::registry::RetryPolicy;

/// Why one attempt did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Worth another attempt (a timeout, a broken connection, a 5xx).
    Retry(String),
    /// Another attempt would fail the same way (not found, refused).
    Fail(String),
}

/// Runs `attempt` (given its time limit) until it succeeds, fails for good, or the policy's
/// attempts are spent; the error says why the last attempt failed and how many were made.
pub fn run_attempts<T>(
    policy: &RetryPolicy,
    mut attempt: impl FnMut(Duration) -> Result<T, Attempt>,
) -> Result<T, String> {
    let mut last = String::new();
    let mut made = 0;
    for n in 1..=policy.retries.saturating_add(1) {
        if n > 1 {
            let delay = policy.delay(n - 1, None);
            if policy.remaining().is_some_and(|left| delay >= left) {
                break;
            }
            std::thread::sleep(delay);
        }
        made = n;
        match attempt(policy.attempt_timeout(n)) {
            Ok(v) => return Ok(v),
            Err(Attempt::Fail(e)) => return Err(e),
            Err(Attempt::Retry(e)) => last = e,
        }
    }
    Err(format!("{last} (failed after {made} attempt(s))"))
}

/// Runs a command for at most `limit`: its stdout when it exits 0; else a retryable failure
/// for a timeout and `classify(stderr)` for a failure.
pub fn run_for(
    mut command: Command,
    limit: Duration,
    classify: impl Fn(String) -> Attempt,
) -> Result<String, Attempt> {
    let program = command.get_program().to_string_lossy().into_owned();
    let start = Instant::now();
    let ran = crate::tool::run_until(&mut command, || start.elapsed() >= limit)
        .map_err(|e| Attempt::Fail(format!("cannot run {program}: {e}")))?;
    match ran.status {
        None => Err(Attempt::Retry(format!(
            "{program} took longer than {}",
            humantime::format_duration(limit)
        ))),
        Some(s) if s.success() => Ok(ran.stdout),
        Some(_) => Err(classify(ran.stderr.trim().to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> RetryPolicy {
        RetryPolicy {
            retries: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            attempt_timeout: Duration::from_millis(300),
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn limits_grow_and_attempts_stop() {
        let mut limits = Vec::new();
        let r: Result<(), String> = run_attempts(&quick(), |limit| {
            limits.push(limit);
            Err(Attempt::Retry("cut".into()))
        });
        assert_eq!(limits, [300, 600, 1200].map(Duration::from_millis).to_vec());
        assert_eq!(r.unwrap_err(), "cut (failed after 3 attempt(s))");
        let mut calls = 0;
        let r: Result<(), String> = run_attempts(&quick(), |_| {
            calls += 1;
            Err(Attempt::Fail("not found".into()))
        });
        assert_eq!((calls, r.unwrap_err().as_str()), (1, "not found"));
    }

    #[test]
    fn a_command_past_its_limit_is_cut_and_retried() {
        let mut c = Command::new("sleep");
        c.arg("5");
        let r = run_for(c, Duration::from_millis(100), Attempt::Fail);
        assert!(
            matches!(r, Err(Attempt::Retry(ref m)) if m.contains("longer than")),
            "{r:?}"
        );
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo nope >&2; exit 3"]);
        assert_eq!(
            run_for(c, Duration::from_secs(5), Attempt::Fail),
            Err(Attempt::Fail("nope".into()))
        );
        let mut c = Command::new("echo");
        c.arg("hi");
        assert_eq!(
            run_for(c, Duration::from_secs(5), Attempt::Fail).unwrap(),
            "hi\n"
        );
    }
}
