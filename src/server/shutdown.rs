//! The shutdown signal every model takes: triggered once (by SIGINT/SIGTERM in `clab serve`,
//! by the test itself in tests), observed by blocking loops through a file descriptor they
//! can `poll`, by async loops through a future, and by whoever registered an action to run
//! at the moment it fires.

use std::io::{PipeReader, PipeWriter};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::sync::lock;

/// A cloneable, one-shot shutdown signal.
#[derive(Clone, Debug)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

type Action = Box<dyn FnOnce() + Send>;

struct Inner {
    triggered: AtomicBool,
    /// Readable (at end of file) once the writer is dropped: level-triggered, so every
    /// poller sees it for as long as it looks, and no byte has to be consumed.
    wake_reader: PipeReader,
    wake_writer: Mutex<Option<PipeWriter>>,
    watch: watch::Sender<bool>,
    /// Run once by `trigger`; `None` once they have run.
    actions: Mutex<Option<Vec<Action>>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.triggered)
            .finish_non_exhaustive()
    }
}

impl Shutdown {
    pub fn new() -> std::io::Result<Shutdown> {
        let (wake_reader, wake_writer) = std::io::pipe()?;
        Ok(Shutdown {
            inner: Arc::new(Inner {
                triggered: AtomicBool::new(false),
                wake_reader,
                wake_writer: Mutex::new(Some(wake_writer)),
                watch: watch::Sender::new(false),
                actions: Mutex::new(Some(Vec::new())),
            }),
        })
    }

    /// Asks every holder of this signal to stop; later calls do nothing.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        lock(&self.inner.wake_writer).take();
        self.inner.watch.send_replace(true);
        let actions = lock(&self.inner.actions).take().unwrap_or_default();
        for action in actions {
            action();
        }
    }

    /// Runs `action` when the signal is triggered, or now if it already was.
    pub fn on_trigger(&self, action: impl FnOnce() + Send + 'static) {
        let mut actions = lock(&self.inner.actions);
        match actions.as_mut() {
            Some(pending) => pending.push(Box::new(action)),
            None => {
                drop(actions);
                action();
            }
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// A descriptor that becomes readable when the signal is triggered, for `poll`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.wake_reader.as_fd()
    }

    /// Completes when the signal is triggered.
    pub async fn triggered(&self) {
        let mut receiver = self.inner.watch.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = receiver.wait_for(|triggered| *triggered).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

    fn readable(shutdown: &Shutdown) -> bool {
        let mut fds = [PollFd::new(shutdown.fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
    }

    #[test]
    fn trigger_is_seen_by_flag_fd_and_future() {
        let shutdown = Shutdown::new().unwrap();
        assert!(!shutdown.is_triggered());
        assert!(!readable(&shutdown));
        let clone = shutdown.clone();
        let waiter = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(clone.triggered());
        });
        shutdown.trigger();
        shutdown.trigger();
        waiter.join().unwrap();
        assert!(shutdown.is_triggered());
        assert!(readable(&shutdown));
        assert!(readable(&shutdown), "stays readable for every later poller");
    }

    #[test]
    fn actions_run_once_at_trigger_or_at_once_when_late() {
        use std::sync::atomic::AtomicUsize;
        let shutdown = Shutdown::new().unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        shutdown.on_trigger(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        shutdown.trigger();
        shutdown.trigger();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let counter = Arc::clone(&runs);
        shutdown.on_trigger(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
