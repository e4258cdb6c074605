//! Diagnostic logs: `-v` / `--verbose` (repeatable) and `RUST_LOG` turn the library's `tracing`
//! events (requests, retries, auth scopes, timings) into lines on stderr.

use std::sync::atomic::{AtomicU8, Ordering};

use tracing_subscriber::EnvFilter;

/// How many `-v` were given, or 1 when `RUST_LOG` asks for logs; 0 when none are shown.
static VERBOSITY: AtomicU8 = AtomicU8::new(0);

/// The filter for `-v` counts: ferry's own events only, at debug then trace; `-vvv` adds
/// the libraries' (hyper, rustls) trace events.
fn directives(verbose: u8) -> &'static str {
    match verbose {
        0 => "off",
        1 => "ferry=debug",
        2 => "ferry=trace",
        _ => "trace",
    }
}

/// Installs the stderr subscriber. `RUST_LOG`, when set, takes precedence over `-v`.
pub fn init(verbose: u8) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let filter = match &from_env {
        Some(spec) => match EnvFilter::try_new(spec) {
            Ok(f) => f,
            Err(e) => {
                super::output::warning(&format!(
                    "RUST_LOG: {e}; using {}",
                    directives(verbose.max(1))
                ));
                EnvFilter::new(directives(verbose.max(1)))
            }
        },
        None if verbose == 0 => return,
        None => EnvFilter::new(directives(verbose)),
    };
    VERBOSITY.store(verbose.max(1), Ordering::Relaxed);
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!no_color && super::output::stderr_is_terminal())
        .with_target(true)
        .try_init();
}

/// Whether diagnostic logs go to stderr (then progress bars stay off: they would tear the lines).
pub fn enabled() -> bool {
    VERBOSITY.load(Ordering::Relaxed) > 0
}
