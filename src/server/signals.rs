//! SIGINT/SIGTERM handling for a serving process: the first signal triggers the shutdown
//! signal and starts the drain deadline; a second one exits at once.

use std::io;
use std::thread;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::server::Shutdown;

/// On the first SIGINT/SIGTERM, triggers `shutdown` and gives in-flight requests
/// `drain_timeout` to finish before the process exits anyway (status 1); a second signal
/// exits at once (status 130). Starts a thread: call it after any `fork`.
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
                    thread::sleep(drain_timeout);
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
