//! The future a pool hands back for a submitted job: wait on it (with or without a
//! timeout), `.await` it, cancel it while it is still queued, or attach done-callbacks —
//! `concurrent.futures.Future`, for protocol requests.

use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::protocol::Reply;
use crate::sync::{Yields, lock};

/// Why a job has no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("the job was cancelled before it started")]
    Cancelled,
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("the pool was shut down before the job ran")]
    PoolClosed,
}

/// What a finished job ended with. Workers that die are not errors here: their jobs end
/// with `Reply::Error("worker died")`, as the server sends it.
pub type JobOutcome = Result<Reply, JobError>;

type Callback = Box<dyn FnOnce(&JobOutcome) + Send>;

#[derive(Default)]
struct Slot {
    state: Mutex<State>,
    finished: Condvar,
}

#[derive(Default)]
struct State {
    status: Status,
    callbacks: Vec<Callback>,
    wakers: Vec<Waker>,
    /// When a worker started the job, and how long it then took: the job's own cost,
    /// without its time in the queue.
    started: Option<Instant>,
    run_time: Option<Duration>,
}

#[derive(Debug, Default)]
enum Status {
    #[default]
    Queued,
    Running,
    Finished(JobOutcome),
}

impl Slot {
    fn state(&self) -> MutexGuard<'_, State> {
        // Callbacks run outside the lock, so nothing can panic while holding it.
        lock(&self.state)
    }
}

/// The caller's side of a submitted job.
#[derive(Clone)]
pub struct JobFuture {
    slot: Arc<Slot>,
}

/// The pool's side of a submitted job.
pub(crate) struct Completer {
    slot: Arc<Slot>,
}

/// A new job: the future for the caller, the completer for the pool.
pub(crate) fn job() -> (JobFuture, Completer) {
    let slot = Arc::new(Slot::default());
    (
        JobFuture {
            slot: Arc::clone(&slot),
        },
        Completer { slot },
    )
}

impl JobFuture {
    /// Blocks until the job has finished.
    pub fn wait(&self) -> JobOutcome {
        let mut yields = Yields::new();
        let mut state = self.slot.state();
        loop {
            if let Status::Finished(outcome) = &state.status {
                return outcome.clone();
            }
            state = match yields.instead_of_sleeping(state, || self.slot.state()) {
                Ok(state) => state,
                Err(state) => self
                    .slot
                    .finished
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Blocks until the job has finished or `timeout` has passed (the job goes on).
    pub fn wait_timeout(&self, timeout: Duration) -> JobOutcome {
        let deadline = Instant::now() + timeout;
        let mut yields = Yields::new();
        let mut state = self.slot.state();
        loop {
            if let Status::Finished(outcome) = &state.status {
                return outcome.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(JobError::Timeout(timeout));
            }
            state = match yields.instead_of_sleeping(state, || self.slot.state()) {
                Ok(state) => state,
                Err(state) => {
                    self.slot
                        .finished
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// Cancels the job if it has not started; `true` if it is (now) cancelled.
    pub fn cancel(&self) -> bool {
        let mut state = self.slot.state();
        match state.status {
            Status::Queued => {}
            Status::Finished(Err(JobError::Cancelled)) => return true,
            Status::Running | Status::Finished(_) => return false,
        }
        state.status = Status::Finished(Err(JobError::Cancelled));
        finish(&self.slot, state);
        true
    }

    /// How long the job took once a worker had started it (set when it has finished).
    pub fn run_time(&self) -> Option<Duration> {
        self.slot.state().run_time
    }

    /// The job's outcome if it has finished, without waiting.
    pub fn outcome(&self) -> Option<JobOutcome> {
        match &self.slot.state().status {
            Status::Finished(outcome) => Some(outcome.clone()),
            Status::Queued | Status::Running => None,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.slot.state().status, Status::Finished(_))
    }

    /// Calls `callback` with the outcome once the job has finished — at once, on this
    /// thread, if it already has; otherwise on the thread that finishes it.
    pub fn add_done_callback(&self, callback: impl FnOnce(&JobOutcome) + Send + 'static) {
        let mut state = self.slot.state();
        if let Status::Finished(outcome) = &state.status {
            let outcome = outcome.clone();
            drop(state);
            callback(&outcome);
        } else {
            state.callbacks.push(Box::new(callback));
        }
    }
}

impl std::future::Future for JobFuture {
    type Output = JobOutcome;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<JobOutcome> {
        let mut state = self.slot.state();
        if let Status::Finished(outcome) = &state.status {
            return Poll::Ready(outcome.clone());
        }
        if !state
            .wakers
            .iter()
            .any(|waker| waker.will_wake(context.waker()))
        {
            state.wakers.push(context.waker().clone());
        }
        Poll::Pending
    }
}

/// Two futures are equal when they are for the same job.
impl PartialEq for JobFuture {
    fn eq(&self, other: &JobFuture) -> bool {
        Arc::ptr_eq(&self.slot, &other.slot)
    }
}

impl Eq for JobFuture {}

impl std::fmt::Debug for JobFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobFuture")
            .field("status", &self.slot.state().status)
            .finish()
    }
}

impl Completer {
    /// Marks the job running; `false` if it was cancelled and must be skipped.
    pub fn start(&self) -> bool {
        let mut state = self.slot.state();
        match state.status {
            Status::Queued => {
                state.status = Status::Running;
                state.started = Some(Instant::now());
                true
            }
            _ => false,
        }
    }

    pub fn finish(self, outcome: JobOutcome) {
        let mut state = self.slot.state();
        if matches!(state.status, Status::Finished(_)) {
            return;
        }
        state.run_time = state.started.map(|started| started.elapsed());
        state.status = Status::Finished(outcome);
        finish(&self.slot, state);
    }
}

impl Drop for Completer {
    /// A job the pool drops unfinished (it shut down first) ends with `PoolClosed`, so no
    /// waiter waits forever.
    fn drop(&mut self) {
        let mut state = self.slot.state();
        if !matches!(state.status, Status::Finished(_)) {
            state.status = Status::Finished(Err(JobError::PoolClosed));
            finish(&self.slot, state);
        }
    }
}

/// Wakes every waiter of a slot that has just finished, then runs its callbacks unlocked.
fn finish(slot: &Slot, mut state: MutexGuard<'_, State>) {
    let callbacks = std::mem::take(&mut state.callbacks);
    let wakers = std::mem::take(&mut state.wakers);
    let Status::Finished(outcome) = &state.status else {
        return;
    };
    let outcome = outcome.clone();
    drop(state);
    slot.finished.notify_all();
    wakers.into_iter().for_each(Waker::wake);
    for callback in callbacks {
        callback(&outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_finished_job_wakes_waiters_and_runs_callbacks_once() {
        let (future, completer) = job();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        future.add_done_callback(move |outcome| {
            assert_eq!(outcome, &Ok(Reply::Fib(55)));
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let waiter = {
            let future = future.clone();
            std::thread::spawn(move || future.wait())
        };
        assert!(completer.start());
        completer.finish(Ok(Reply::Fib(55)));
        assert_eq!(waiter.join().unwrap(), Ok(Reply::Fib(55)));
        assert!(future.run_time().is_some());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let late = Arc::clone(&calls);
        future.add_done_callback(move |_| {
            late.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "a late callback runs at once"
        );
        assert!(!future.cancel(), "a finished job cannot be cancelled");
    }

    #[test]
    fn only_a_queued_job_can_be_cancelled() {
        let (queued, completer) = job();
        assert!(queued.cancel());
        assert!(!completer.start(), "the pool skips a cancelled job");
        assert_eq!(queued.wait(), Err(JobError::Cancelled));

        let (running, completer) = job();
        assert!(completer.start());
        assert!(!running.cancel());
        assert_eq!(
            running.wait_timeout(Duration::from_millis(10)),
            Err(JobError::Timeout(Duration::from_millis(10)))
        );
        drop(completer);
        assert_eq!(
            running.wait(),
            Err(JobError::PoolClosed),
            "a dropped job does not hang its waiter"
        );
    }

    #[test]
    fn a_future_can_be_awaited() {
        let (future, completer) = job();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            completer.start();
            completer.finish(Ok(Reply::Echo("hi".into())));
        });
        assert_eq!(runtime.block_on(future), Ok(Reply::Echo("hi".into())));
    }
}
