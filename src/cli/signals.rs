//! Ctrl-C and SIGTERM for the long-running commands (bundle, push): the first one stops the
//! run cleanly, a second Ctrl-C exits at once. Either way the progress bars leave the terminal
//! before anything is said.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::{Exit, output, progress};

/// Waits for Ctrl-C, SIGTERM (a Job being stopped) or the `timeout` deadline (which sets
/// `timed_out`), says `stopping`, cancels the run, then exits 130 on a second Ctrl-C.
///
/// The listeners are set up when this is called, not when the returned future first runs: a
/// Ctrl-C is caught from the moment the run can make a request, and one stream sees both
/// Ctrl-Cs, so a second one that follows the first at once is not lost.
pub fn stop_on_signals(
    cancel: CancellationToken,
    timeout: Option<Duration>,
    timed_out: Arc<AtomicBool>,
    stopping: &'static str,
) -> impl Future<Output = ()> + Send + 'static {
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    async move {
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = next(&mut interrupt) => {}
            () = next(&mut term) => {}
            () = deadline => {
                timed_out.store(true, Ordering::SeqCst);
                progress::take_off_screen();
                output::error("--timeout reached: stopping; finished images are kept, a re-run continues");
            }
        }
        // The bars go first: a message printed under them would leave half a bar above it.
        progress::take_off_screen();
        output::warning(stopping);
        cancel.cancel();
        next(&mut interrupt).await;
        std::process::exit(Exit::Interrupted as i32);
    }
}

/// The next delivery of a signal; never, when it could not be listened for.
async fn next(signal: &mut Option<Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Runs `each` on every Ctrl-C or SIGTERM, in a task of `runtime`, for the commands that run
/// without one (export, apply, restore). The listeners exist once this returns.
pub fn on_each_signal(
    runtime: &tokio::runtime::Runtime,
    mut each: impl FnMut() + Send + 'static,
) -> Result<(), super::Failure> {
    use ferry::error::{Kind, ResultExt};
    let _guard = runtime.enter();
    let handler = |kind| signal(kind).context(Kind::Failed, || "cannot handle signals");
    let (mut int, mut term) = (
        handler(SignalKind::interrupt())?,
        handler(SignalKind::terminate())?,
    );
    runtime.spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            each();
        }
    });
    Ok(())
}
