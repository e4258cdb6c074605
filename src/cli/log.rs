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
    // No colors: every event's text goes through the escaping writer below, which would show
    // the colors' own escape sequences as text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| EscapingStderr)
        .with_ansi(false)
        .with_target(true)
        .try_init();
}

/// stderr for log events: each event (one `write` of its whole text) is shown through
/// [`ferry::untrusted::printable`], so that a field quoting a registry (an error message, a
/// header) can hold no escape sequence, carriage return or line break; the event's own final
/// line break stays.
struct EscapingStderr;

impl std::io::Write for EscapingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, end) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (text.as_ref(), ""),
        };
        let shown = format!("{}{end}", ferry::untrusted::printable(body));
        std::io::stderr().lock().write_all(shown.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
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
