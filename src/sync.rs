//! Synchronisation this crate shares: one way to lock its plain-data mutexes, and the
//! blocking queue its pools hand work through.

use std::collections::VecDeque;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[cfg(clab_loom)]
use loom::sync::{Condvar, Mutex};
#[cfg(not(clab_loom))]
use std::sync::{Condvar, Mutex};

/// How many times a thread about to sleep on a queue or a future first yields its CPU.
/// Free-threaded CPython's `PyMutex` yields 40 times (`MAX_SPIN_COUNT` in a `--disable-gil`
/// build, 0 with a GIL) before it parks, and every `threading` wait — a `Condition`, a
/// `Queue.get`, a future's result — acquires one. 3.13's `_PyMutex_LockTimed` does not look
/// at the lock between those yields, so a wait costs all 40 even when what it waits for comes
/// at the first: on 3.13.5t's process-pool server about 140 yields a request. On a CPU shared
/// with a CPU-bound process each yield can hand that process the CPU. Set once per process,
/// by a server emulating such an interpreter; 0 (sleep at once) otherwise.
static YIELDS_BEFORE_SLEEPING: AtomicU32 = AtomicU32::new(0);

/// Free-threaded CPython's `MAX_SPIN_COUNT`.
pub const FREE_THREADED_YIELDS: u32 = 40;

/// This process's threads yield `times` times before they sleep on a queue or a future.
pub fn yield_before_sleeping(times: u32) {
    YIELDS_BEFORE_SLEEPING.store(times, Ordering::Relaxed);
}

/// The yields a thread about to sleep has yet to spend, by [`Yields::instead_of_sleeping`].
pub(crate) struct Yields(u32);

impl Yields {
    pub fn new() -> Yields {
        Yields(YIELDS_BEFORE_SLEEPING.load(Ordering::Relaxed))
    }

    /// The first time, with yields to spend: lets go of `guard`, yields the CPU that many
    /// times without looking, and returns the lock taken again by `relock`, for the caller
    /// to look once more. After that (or with none to spend), gives `guard` back untouched,
    /// for the caller to sleep on.
    pub fn instead_of_sleeping<G>(&mut self, guard: G, relock: impl FnOnce() -> G) -> Result<G, G> {
        if self.0 == 0 {
            return Err(guard);
        }
        drop(guard);
        self.spend();
        Ok(relock())
    }

    /// Yields the CPU the times left, holding nothing: a wait whose end this thread does not
    /// look for (see the process pool's manager).
    pub fn spend(&mut self) {
        for _ in 0..std::mem::take(&mut self.0) {
            std::thread::yield_now();
        }
    }
}

/// Locks `mutex`, recovering its data if a holder panicked: every mutex this is used on
/// guards plain data that no panic can leave half-updated.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A queue many threads put into and take from, where a taker with nothing to take sleeps
/// on a condition variable until a put wakes it — as CPython's `queue` and executors wait.
///
/// Not a channel that spins and then yields before it sleeps (crossbeam's, and std's mpsc):
/// on a core shared with a CPU-bound thread, every `sched_yield` of a worker going idle gave
/// that thread the core for a whole scheduler slice, so each hand-off through a pool waited
/// about a timer tick (4 ms) — a cost of the channel, not of the model being measured.
pub(crate) struct BlockingQueue<T> {
    state: Mutex<Queued<T>>,
    /// Signalled on every put and on closing.
    ready: Condvar,
}

struct Queued<T> {
    items: VecDeque<T>,
    open: bool,
}

/// What [`BlockingQueue::take_timeout`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken<T> {
    Item(T),
    TimedOut,
    /// Closed, and everything put before the close has been taken.
    Closed,
}

impl<T> std::fmt::Debug for BlockingQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("BlockingQueue")
            .field("queued", &state.items.len())
            .field("open", &state.open)
            .finish()
    }
}

impl<T> Default for BlockingQueue<T> {
    fn default() -> Self {
        BlockingQueue {
            state: Mutex::new(Queued {
                items: VecDeque::new(),
                open: true,
            }),
            ready: Condvar::new(),
        }
    }
}

impl<T> BlockingQueue<T> {
    fn state(&self) -> impl std::ops::DerefMut<Target = Queued<T>> + '_ {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` and wakes one taker; gives it back if the queue is closed.
    pub fn put(&self, item: T) -> Result<(), T> {
        let mut state = self.state();
        if !state.open {
            return Err(item);
        }
        state.items.push_back(item);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    /// The oldest item, waiting for one as long as it takes; `None` once the queue is closed
    /// and empty.
    pub fn take(&self) -> Option<T> {
        let mut yields = Yields::new();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(item) = state.items.pop_front() {
                return Some(item);
            }
            if !state.open {
                return None;
            }
            let relock = || self.state.lock().unwrap_or_else(|e| e.into_inner());
            state = match yields.instead_of_sleeping(state, relock) {
                Ok(state) => state,
                Err(state) => self.ready.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// As [`take`](Self::take), waiting at most `timeout`, and sleeping at once: a process
    /// pool's manager takes its jobs so, standing for CPython's management thread, which
    /// waits in `poll()` rather than on a lock.
    pub fn take_timeout(&self, timeout: Duration) -> Taken<T> {
        let deadline = std::time::Instant::now() + timeout;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(item) = state.items.pop_front() {
                return Taken::Item(item);
            }
            if !state.open {
                return Taken::Closed;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Taken::TimedOut;
            }
            state = self
                .ready
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Takes no more items; takers get what is queued, then `None`.
    pub fn close(&self) {
        self.state().open = false;
        self.ready.notify_all();
    }

    pub fn is_open(&self) -> bool {
        self.state().open
    }
}

#[cfg(all(test, not(clab_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    /// The yields are spent at once, the lock let go and taken again around them; then the
    /// guard comes back untouched, for its holder to sleep on.
    #[test]
    fn yields_are_spent_then_the_thread_sleeps() {
        let mutex = std::sync::Mutex::new(0);
        let mut yields = Yields(2);
        let guard = lock(&mutex);
        let guard = yields
            .instead_of_sleeping(guard, || lock(&mutex))
            .unwrap_or_else(|_| panic!("the yields were to spend"));
        assert!(yields.instead_of_sleeping(guard, || lock(&mutex)).is_err());
        let mut spent = Yields(2);
        spent.spend();
        assert!(
            spent
                .instead_of_sleeping(lock(&mutex), || lock(&mutex))
                .is_err()
        );
    }

    #[test]
    fn items_come_out_in_order_and_a_close_drains_before_it_ends() {
        let queue = BlockingQueue::default();
        for item in 0..3 {
            queue.put(item).unwrap();
        }
        queue.close();
        assert_eq!(queue.put(9), Err(9), "closed: the item comes back");
        assert_eq!(
            (queue.take(), queue.take(), queue.take()),
            (Some(0), Some(1), Some(2))
        );
        assert_eq!(queue.take(), None);
        assert_eq!(queue.take_timeout(Duration::from_secs(5)), Taken::Closed);
    }

    #[test]
    fn a_waiting_taker_is_woken_by_a_put_and_by_a_close() {
        let queue = Arc::new(BlockingQueue::default());
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || queue.take())
            })
            .collect();
        queue.put("job").unwrap();
        queue.close();
        let mut taken: Vec<_> = takers.into_iter().map(|t| t.join().unwrap()).collect();
        taken.sort();
        assert_eq!(taken, [None, Some("job")]);
        let empty = BlockingQueue::<()>::default();
        assert_eq!(
            empty.take_timeout(Duration::from_millis(10)),
            Taken::TimedOut
        );
    }
}

#[cfg(all(test, clab_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// An item put before a close is taken exactly once, whatever the interleaving, and no
    /// taker sleeps through the close. (One item: two make the model take minutes.)
    #[test]
    fn loom_queue_hands_each_item_to_one_taker_and_close_wakes_them_all() {
        loom::model(|| {
            let queue = Arc::new(BlockingQueue::default());
            let takers: Vec<_> = (0..2)
                .map(|_| {
                    let queue = Arc::clone(&queue);
                    thread::spawn(move || {
                        let mut taken = Vec::new();
                        while let Some(item) = queue.take() {
                            taken.push(item);
                        }
                        taken
                    })
                })
                .collect();
            queue.put(1).unwrap();
            queue.close();
            let mut all: Vec<i32> = takers
                .into_iter()
                .flat_map(|taker| taker.join().unwrap())
                .collect();
            all.sort();
            assert_eq!(all, [1]);
        });
    }
}
