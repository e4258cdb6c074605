//! Ctrl-C and SIGTERM for the long-running commands (bundle, push): the first one stops the
//! run cleanly, a second Ctrl-C exits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Exit, output};

/// Waits for Ctrl-C, SIGTERM (a Job being stopped) or the `timeout` deadline (which sets
/// `timed_out`), says `stopping`, cancels the run, then exits 130 on a second Ctrl-C.
pub async fn stop_on_signals(
    cancel: CancellationToken,
    timeout: Option<Duration>,
    timed_out: Arc<AtomicBool>,
    stopping: &'static str,
) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        () = deadline => {
            timed_out.store(true, Ordering::SeqCst);
            output::error("--timeout reached: stopping; finished images are kept, a re-run continues");
        }
    }
    output::warning(stopping);
    cancel.cancel();
    let _ = tokio::signal::ctrl_c().await;
    std::process::exit(Exit::Interrupted as i32);
}
