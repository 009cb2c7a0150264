//! The shutdown signal every model takes: triggered once (by SIGINT/SIGTERM in `clab serve`,
//! by the test itself in tests), observed by blocking loops through a file descriptor they
//! can `poll`, by async loops through a future, and by whoever registered an action to run
//! at the moment it fires.
//!
//! A drain has a second stage, the *cut*: when its deadline is near, the server stops
//! waiting for clients (one that never reads its replies would otherwise hold a writer
//! forever), and whoever registered for the cut closes what it holds.

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
    /// Run once by `trigger`.
    on_trigger: Actions,
    /// Run once by `cut`.
    on_cut: Actions,
}

/// Actions to run once; `None` once they have run.
struct Actions(Mutex<Option<Vec<Action>>>);

impl Actions {
    fn new() -> Actions {
        Actions(Mutex::new(Some(Vec::new())))
    }

    /// Keeps `action` for `run`, or runs it now if `run` already happened.
    fn add(&self, action: Action) {
        let mut actions = lock(&self.0);
        match actions.as_mut() {
            Some(pending) => pending.push(action),
            None => {
                drop(actions);
                action();
            }
        }
    }

    fn run(&self) {
        let actions = lock(&self.0).take().unwrap_or_default();
        for action in actions {
            action();
        }
    }
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
                on_trigger: Actions::new(),
                on_cut: Actions::new(),
            }),
        })
    }

    /// Asks every holder of this signal to stop; later calls do nothing.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        lock(&self.inner.wake_writer).take();
        self.inner.watch.send_replace(true);
        self.inner.on_trigger.run();
    }

    /// Runs `action` when the signal is triggered, or now if it already was.
    pub fn on_trigger(&self, action: impl FnOnce() + Send + 'static) {
        self.inner.on_trigger.add(Box::new(action));
    }

    /// The drain's deadline is near: stop waiting for clients. Triggers the signal if it
    /// was not, then runs the actions registered with [`Shutdown::on_cut`]; later calls do
    /// nothing.
    pub fn cut(&self) {
        self.trigger();
        self.inner.on_cut.run();
    }

    /// Runs `action` at the cut, or now if it already came.
    pub fn on_cut(&self, action: impl FnOnce() + Send + 'static) {
        self.inner.on_cut.add(Box::new(action));
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

    #[test]
    fn a_cut_triggers_first_and_runs_its_own_actions_once() {
        use std::sync::atomic::AtomicUsize;
        let shutdown = Shutdown::new().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (first, second, counter) = (Arc::clone(&order), Arc::clone(&order), Arc::clone(&cuts));
        shutdown.on_trigger(move || lock(&first).push("trigger"));
        shutdown.on_cut(move || {
            lock(&second).push("cut");
            counter.fetch_add(1, Ordering::SeqCst);
        });
        shutdown.cut();
        shutdown.cut();
        assert!(shutdown.is_triggered());
        assert_eq!(*lock(&order), ["trigger", "cut"]);
        assert_eq!(cuts.load(Ordering::SeqCst), 1);
    }
}
