//! SIGINT/SIGTERM handling for a serving process: the first signal triggers the shutdown
//! signal and starts the drain deadline; a second one exits at once.
//!
//! Shortly before the deadline the drain is cut: connections still open are closed both
//! ways, so a thread or task blocked writing to a client that never reads ends at once and
//! the server can still exit 0 in time. Only a request still computing at the deadline
//! makes it exit 1.

use std::io;
use std::thread;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::server::Shutdown;

/// On the first SIGINT/SIGTERM, triggers `shutdown` and gives in-flight requests
/// `drain_timeout` to finish: [`cut_before`] it the drain is cut, and at it the process exits
/// anyway (status 1); a second signal exits at once (status 130). Starts a thread: call it
/// after any `fork`.
pub fn watch(shutdown: Shutdown, drain_timeout: Duration) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    thread::Builder::new()
        .name("clab-signals".into())
        .spawn(move || {
            let mut signals = signals.forever();
            if let Some(signal) = signals.next() {
                tracing::info!(
                    signal,
                    ?drain_timeout,
                    "stopping: answering requests in flight"
                );
                shutdown.trigger();
                thread::spawn(move || {
                    let margin = cut_before(drain_timeout);
                    thread::sleep(drain_timeout - margin);
                    tracing::info!("drain deadline near: closing the connections still open");
                    shutdown.cut();
                    thread::sleep(margin);
                    eprintln!(
                        "clab: requests still in flight after {drain_timeout:?}; exiting anyway"
                    );
                    std::process::exit(1);
                });
            }
            if signals.next().is_some() {
                eprintln!("clab: second signal; exiting at once");
                std::process::exit(130);
            }
        })?;
    Ok(())
}

/// How long before the drain deadline the drain is cut: a tenth of it, at most a second —
/// time for the connections' threads and tasks to see their sockets closed and return.
pub fn cut_before(drain_timeout: Duration) -> Duration {
    (drain_timeout / 10).min(Duration::from_secs(1))
}
