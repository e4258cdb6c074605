//! Diagnostic logs: `-v` / `--verbose` (repeatable) and `RUST_LOG` turn the library's `tracing`
//! events (requests, retries, auth scopes, timings) into lines on stderr.

use std::sync::atomic::{AtomicU8, Ordering};

use tracing_subscriber::EnvFilter;

/// How many `-v` were given, or 1 when `RUST_LOG` asks for logs; 0 when none are shown.
static VERBOSITY: AtomicU8 = AtomicU8::new(0);

/// HTTP libraries whose debug and trace events show URLs with their query strings (a signed
/// object-store URL in a redirect) or header frames: kept at info unless RUST_LOG names them.
const QUIET_BELOW_INFO: [&str; 4] = ["reqwest", "hyper", "hyper_util", "h2"];

/// The filter for `-v` counts: ferry's own events, at debug then trace (`-vvv` adds the other
/// libraries' events, but for those of [`QUIET_BELOW_INFO`]).
fn directives(verbose: u8) -> &'static str {
    match verbose {
        0 => "off",
        1 => "ferry=debug",
        2 => "ferry=trace",
        _ => "trace",
    }
}

/// `spec` with the libraries of [`QUIET_BELOW_INFO`] it does not name held at info.
fn with_quiet_http(spec: &str) -> String {
    let mut out = spec.to_owned();
    for lib in QUIET_BELOW_INFO {
        let named = spec
            .split(',')
            .any(|d| d.trim().split(['=', '[', ':']).next() == Some(lib));
        if !named {
            out.push_str(&format!(",{lib}=info"));
        }
    }
    out
}

/// Installs the stderr subscriber. `RUST_LOG`, when set, takes precedence over `-v`.
pub fn init(verbose: u8) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let fallback = directives(verbose.max(1));
    let spec = match &from_env {
        Some(spec) => match EnvFilter::try_new(spec) {
            Ok(_) => spec.clone(),
            Err(e) => {
                super::output::warning(&format!("RUST_LOG: {e}; using {fallback}"));
                fallback.to_owned()
            }
        },
        None if verbose == 0 => return,
        None => directives(verbose).to_owned(),
    };
    let filter = EnvFilter::new(with_quiet_http(&spec));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_libraries_stay_at_info_unless_named() {
        assert_eq!(
            with_quiet_http("trace"),
            "trace,reqwest=info,hyper=info,hyper_util=info,h2=info"
        );
        assert_eq!(
            with_quiet_http("ferry=debug,reqwest=trace"),
            "ferry=debug,reqwest=trace,hyper=info,hyper_util=info,h2=info"
        );
    }
}
