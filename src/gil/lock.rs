//! The lock itself: `take` and `release` as CPython's `take_gil` / `drop_gil` (Python/ceval_gil.c
//! in 3.2–3.12), the legacy tick check of 2.x's eval loop and Beazley's priority rule, with
//! statistics and trace events recorded at each transition under the same mutex.
//!
//! The two condition variables of CPython (`cond` for waiters, `switch_cond` for the forced
//! handoff) share one mutex here. The handoff check of `last_holder` and the wait on
//! `switch_cond` are then atomic with respect to `take`, which is what CPython's
//! lock ordering achieves with two mutexes.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::gil::stats::{GilReport, ThreadStats};
use crate::gil::sync::{AtomicBool, AtomicI64, Condvar, Mutex, MutexGuard, Ordering};
use crate::gil::trace::{Event, EventKind, RecentEvents, Trace, TraceBuffer};
use crate::gil::{GilConfig, SwitchPoints, Variant};
use crate::work::{Interpreter, Pace};

/// One interpreter's lock. Cheap to clone: clones share the lock.
#[derive(Clone, Debug)]
pub struct Gil {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: GilConfig,
    /// The work between two checkpoints, from `config.tick` and `config.fib_tick`.
    pace: Pace,
    /// CPython ≤3.12's `gil_drop_request` in the eval breaker: the one word a checkpoint reads.
    drop_request: AtomicBool,
    /// legacy: the shared tick counter; only the holder changes it.
    ticker: AtomicI64,
    /// Whether any thread waits on `cond` (a mirror of `State::waiters`, read without the
    /// mutex): legacy's release-and-reacquire is skipped while nobody could take the GIL.
    contended: AtomicBool,
    state: Mutex<State>,
    /// Waiters for the GIL.
    cond: Condvar,
    /// A thread forced to drop waits here until another thread has taken the GIL.
    switch_cond: Condvar,
    created: Instant,
    /// loom: the injected "switch interval elapsed" event.
    #[cfg(clab_loom)]
    interval_elapsed: AtomicBool,
}

#[derive(Debug)]
struct State {
    locked: bool,
    last_holder: Option<u32>,
    /// Acquisitions by a thread other than `last_holder`.
    switch_number: u64,
    /// priority: whether the holder was last forced to drop.
    holder_cpu_bound: bool,
    /// priority: I/O-bound threads waiting; CPU-bound ones stand back while there are any.
    priority_waiters: usize,
    /// Threads waiting on `cond` / `switch_cond`: a release or an acquisition signals only
    /// when someone waits, as CPython's lock does, so a lone thread makes no system call.
    waiters: usize,
    handoff_waiters: usize,
    /// When the pending drop request was set, for its latency.
    request_set_at: Option<Instant>,
    next_thread: u32,
    threads: HashMap<u32, ThreadStats>,
    ended: ThreadStats,
    hold_total: Duration,
    trace: Option<TraceBuffer>,
}

/// Why a thread releases the GIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// Around a blocking call.
    Voluntary,
    /// At a checkpoint, because of a drop request (or, legacy, the ticker).
    Forced,
    /// The thread detaches for good.
    Final,
}

impl Gil {
    /// A new, free lock. `config.variant` must not be [`Variant::None`] (which has no lock;
    /// use [`GilConfig::lock`]).
    pub fn new(config: GilConfig) -> Gil {
        assert!(
            config.variant != Variant::None,
            "the `none` variant has no lock"
        );
        let config = GilConfig {
            switch_interval: config.switch_interval.max(Duration::from_micros(1)),
            ..config
        };
        let trace = config.trace_capacity.map(TraceBuffer::new);
        Gil {
            shared: Arc::new(Shared {
                drop_request: AtomicBool::new(false),
                ticker: AtomicI64::new(i64::from(config.check_interval)),
                contended: AtomicBool::new(false),
                state: Mutex::new(State {
                    locked: false,
                    last_holder: None,
                    switch_number: 0,
                    holder_cpu_bound: false,
                    priority_waiters: 0,
                    waiters: 0,
                    handoff_waiters: 0,
                    request_set_at: None,
                    next_thread: 1,
                    threads: HashMap::new(),
                    ended: ThreadStats::new("ended threads".into()),
                    hold_total: Duration::ZERO,
                    trace,
                }),
                cond: Condvar::new(),
                switch_cond: Condvar::new(),
                created: Instant::now(),
                pace: Pace::for_ticks(config.tick, config.fib_tick),
                config,
                #[cfg(clab_loom)]
                interval_elapsed: AtomicBool::new(false),
            }),
        }
    }

    /// Registers the calling OS thread under `name` and takes the GIL for it.
    pub fn attach(&self, name: impl Into<String>) -> GilThread {
        let id = {
            let mut state = self.shared.lock_state();
            let id = state.next_thread;
            state.next_thread += 1;
            let name = name.into();
            let State { trace, threads, .. } = &mut *state;
            if let Some(trace) = trace.as_mut() {
                trace.attached(id, name.clone(), |id| threads.contains_key(&id));
            }
            state.threads.insert(id, ThreadStats::new(name));
            id
        };
        let mut thread = GilThread {
            shared: Arc::clone(&self.shared),
            id,
            holding: false,
            cpu_bound: false,
            acquired_at: Instant::now(),
            _not_send: PhantomData,
        };
        thread.take();
        thread
    }

    /// How many times the GIL has changed hands so far.
    pub fn switches(&self) -> u64 {
        self.shared.lock_state().switch_number
    }

    /// A snapshot of the statistics.
    pub fn report(&self) -> GilReport {
        let state = self.shared.lock_state();
        let mut threads: Vec<_> = state.threads.iter().collect();
        threads.sort_by_key(|(id, _)| **id);
        let lifetime = self.shared.created.elapsed().as_secs_f64();
        GilReport {
            variant: self.shared.config.variant.name().to_owned(),
            switch_interval_us: self.shared.config.switch_interval.as_micros() as u64,
            switches: state.switch_number,
            utilisation: if lifetime > 0.0 {
                (state.hold_total.as_secs_f64() / lifetime).min(1.0)
            } else {
                0.0
            },
            threads: threads
                .into_iter()
                .map(|(_, stats)| stats.report())
                .collect(),
            ended_threads: state.ended.report(),
        }
    }

    /// The events recorded so far, if tracing is on.
    pub fn trace(&self) -> Option<Trace> {
        let state = self.shared.lock_state();
        let buffer = state.trace.as_ref()?;
        Some(Trace::from_buffer(
            buffer,
            self.shared.config.variant.name(),
            self.shared.config.switch_interval.as_micros() as u64,
        ))
    }

    /// The events after `since_ns` (on the lock's clock), if tracing is on: a watcher's
    /// poll, which holds the lock's mutex only to copy a few thousand events at most.
    pub fn recent_events(&self, since_ns: u64) -> Option<RecentEvents> {
        let state = self.shared.lock_state();
        let buffer = state.trace.as_ref()?;
        Some(RecentEvents::from_buffer(
            buffer,
            since_ns,
            self.shared.created.elapsed().as_nanos() as u64,
            self.shared.config.variant.name(),
            self.shared.config.switch_interval.as_micros() as u64,
        ))
    }

    /// loom: lets one switch interval elapse for whoever is waiting (loom never times out).
    #[cfg(clab_loom)]
    pub fn elapse_interval(&self) {
        let _state = self.shared.lock_state();
        self.shared.interval_elapsed.store(true, Ordering::SeqCst);
        self.shared.cond.notify_all();
    }
}

impl Shared {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the state; recover it if something ever does.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn event(&self, state: &mut State, thread: u32, event: EventKind, at: Instant) {
        if let Some(trace) = state.trace.as_mut() {
            let t_ns = at.duration_since(self.created).as_nanos() as u64;
            trace.push(Event {
                t_ns,
                thread,
                event,
            });
        }
    }

    /// One pass of a waiter's wait: `true` if the switch interval elapsed.
    #[cfg(not(clab_loom))]
    fn wait_interval<'a>(&self, state: MutexGuard<'a, State>) -> (MutexGuard<'a, State>, bool) {
        let (state, result) = self
            .cond
            .wait_timeout(state, self.config.switch_interval)
            .unwrap_or_else(|e| e.into_inner());
        (state, result.timed_out())
    }

    #[cfg(clab_loom)]
    fn wait_interval<'a>(&self, state: MutexGuard<'a, State>) -> (MutexGuard<'a, State>, bool) {
        if self.interval_elapsed.swap(false, Ordering::SeqCst) {
            return (state, true);
        }
        let state = self.cond.wait(state).unwrap_or_else(|e| e.into_inner());
        (state, self.interval_elapsed.swap(false, Ordering::SeqCst))
    }

    fn wait<'a>(&self, condvar: &Condvar, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        condvar.wait(state).unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the drop request on behalf of waiter `thread`, unless one is pending.
    fn request_drop(&self, state: &mut State, thread: u32) {
        if self.drop_request.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        self.drop_request.store(true, Ordering::Relaxed);
        state.request_set_at = Some(now);
        if let Some(stats) = state.threads.get_mut(&thread) {
            stats.drop_requests += 1;
        }
        self.event(state, thread, EventKind::DropRequest, now);
    }
}

/// One OS thread's attachment to a [`Gil`]. It holds the GIL except inside
/// [`allow_threads`](Interpreter::allow_threads); dropping it releases the GIL for good.
/// Not `Send`: it stands for the thread that created it.
#[derive(Debug)]
pub struct GilThread {
    shared: Arc<Shared>,
    id: u32,
    holding: bool,
    /// priority: set by a forced drop, cleared by a voluntary release.
    cpu_bound: bool,
    acquired_at: Instant,
    _not_send: PhantomData<*const ()>,
}

impl GilThread {
    /// Releases the GIL around a wait that is not one closure — an event loop parking in
    /// `epoll_wait` — until [`reattach`](GilThread::reattach); a voluntary release, like
    /// [`allow_threads`](Interpreter::allow_threads).
    pub fn detach(&mut self) {
        if self.holding {
            self.release(Release::Voluntary);
        }
    }

    /// Takes the GIL back after [`detach`](GilThread::detach).
    pub fn reattach(&mut self) {
        if !self.holding {
            self.take();
        }
    }

    /// Runs `f` holding the GIL with no checkpoint inside — one long C-level instruction
    /// (`sum(range(10**8))`): no other thread runs Python until it returns.
    pub fn uninterruptible<R>(&mut self, f: impl FnOnce() -> R) -> R {
        debug_assert!(self.holding, "uninterruptible work needs the GIL");
        f()
    }

    /// `take_gil`: waits until this thread holds the GIL.
    fn take(&mut self) {
        let shared = &*self.shared;
        let variant = shared.config.variant;
        let asked = Instant::now();
        let mut state = shared.lock_state();
        // priority: an I/O-bound thread goes first; CPU-bound ones stand back for it.
        let priority_waiter = variant == Variant::Priority && !self.cpu_bound;
        let must_wait = |state: &State| {
            state.locked
                || (variant == Variant::Priority && !priority_waiter && state.priority_waiters > 0)
        };
        if must_wait(&state) {
            shared.event(&mut state, self.id, EventKind::Wait, asked);
            if priority_waiter {
                state.priority_waiters += 1;
            }
            state.waiters += 1;
            shared.contended.store(true, Ordering::Relaxed);
            while must_wait(&state) {
                let woken;
                (state, woken) = match variant {
                    Variant::Legacy => {
                        // No timed wait and no request: just wait for a release.
                        (shared.wait(&shared.cond, state), true)
                    }
                    Variant::Priority
                        if priority_waiter && state.locked && state.holder_cpu_bound =>
                    {
                        // Preempt a CPU-bound holder at once, then wait for its release.
                        shared.request_drop(&mut state, self.id);
                        (shared.wait(&shared.cond, state), true)
                    }
                    _ => {
                        // A fresh full interval on every pass: a spurious or lost wake-up
                        // restarts the clock, as in CPython.
                        let saved = state.switch_number;
                        let (mut state, timed_out) = shared.wait_interval(state);
                        if timed_out && state.locked && state.switch_number == saved {
                            shared.request_drop(&mut state, self.id);
                        }
                        (state, !timed_out)
                    }
                };
                if woken && must_wait(&state) {
                    // Woken by a release, and the GIL is taken again: someone barged in.
                    if let Some(stats) = state.threads.get_mut(&self.id) {
                        stats.retries += 1;
                    }
                    shared.event(&mut state, self.id, EventKind::Retry, Instant::now());
                }
            }
            state.waiters -= 1;
            shared.contended.store(state.waiters > 0, Ordering::Relaxed);
            if priority_waiter {
                state.priority_waiters -= 1;
            }
        }
        let now = Instant::now();
        state.locked = true;
        if state.last_holder != Some(self.id) {
            state.last_holder = Some(self.id);
            state.switch_number += 1;
        }
        state.holder_cpu_bound = self.cpu_bound;
        // ≤3.12: taking the GIL clears any pending request, even another waiter's.
        shared.drop_request.store(false, Ordering::Relaxed);
        state.request_set_at = None;
        if state.handoff_waiters > 0 {
            shared.switch_cond.notify_all();
        }
        if let Some(stats) = state.threads.get_mut(&self.id) {
            stats.acquisitions += 1;
            stats.record_wait(now - asked);
        }
        shared.event(&mut state, self.id, EventKind::Acquire, now);
        drop(state);
        shared
            .ticker
            .store(i64::from(shared.config.check_interval), Ordering::Relaxed);
        self.holding = true;
        self.acquired_at = now;
    }

    /// `drop_gil`, with CPython's forced handoff (FORCE_SWITCHING) for new and priority.
    fn release(&mut self, why: Release) {
        debug_assert!(self.holding, "released a GIL this thread does not hold");
        let shared = &*self.shared;
        let variant = shared.config.variant;
        let mut state = shared.lock_state();
        let now = Instant::now();
        let held = now - self.acquired_at;
        state.hold_total += held;
        state.locked = false;
        state.last_holder = Some(self.id);
        let latency = state
            .request_set_at
            .map(|set| now.saturating_duration_since(set));
        if let Some(stats) = state.threads.get_mut(&self.id) {
            stats.hold += held;
            match why {
                Release::Forced => stats.forced_releases += 1,
                Release::Voluntary | Release::Final => stats.voluntary_releases += 1,
            }
            if let Some(latency) = latency {
                stats.record_drop_request_latency(latency);
            }
        }
        let kind = if why == Release::Forced {
            EventKind::ReleaseForced
        } else {
            EventKind::ReleaseVoluntary
        };
        shared.event(&mut state, self.id, kind, now);
        if state.priority_waiters > 0 {
            // Make sure the I/O-bound waiter is among those woken.
            shared.cond.notify_all();
        } else if state.waiters > 0 {
            shared.cond.notify_one();
        }
        self.holding = false;
        match why {
            Release::Forced => self.cpu_bound = true,
            Release::Voluntary => self.cpu_bound = false,
            Release::Final => {}
        }
        // FORCE_SWITCHING: with a drop request pending, do not run on (and barge back in)
        // until some other thread has taken the GIL.
        let handoff = variant != Variant::Legacy
            && why != Release::Final
            && shared.drop_request.load(Ordering::Relaxed)
            && state.last_holder == Some(self.id);
        if handoff {
            shared.drop_request.store(false, Ordering::Relaxed);
            state.handoff_waiters += 1;
            while state.last_holder == Some(self.id) {
                state = shared.wait(&shared.switch_cond, state);
            }
            state.handoff_waiters -= 1;
            if let Some(stats) = state.threads.get_mut(&self.id) {
                stats.handoff_wait += now.elapsed();
            }
        }
    }

    /// The slow path of a checkpoint: give the GIL away, then queue up for it again.
    #[cold]
    #[inline(never)]
    fn forced_switch(&mut self) {
        let shared = &*self.shared;
        if shared.config.variant == Variant::Legacy && !shared.contended.load(Ordering::Relaxed) {
            // Nobody waits: releasing and re-taking would change nothing but cost two trips
            // through the state mutex (CPython 2's semaphore does this in user space).
            shared
                .ticker
                .store(i64::from(shared.config.check_interval), Ordering::Relaxed);
            return;
        }
        // legacy: a plain release and immediate re-acquire, with no handoff, so on several
        // cores this thread usually wins its own lock back before a woken waiter runs.
        self.release(Release::Forced);
        self.take();
    }
}

impl Interpreter for GilThread {
    #[inline]
    fn checkpoint(&mut self) {
        debug_assert!(self.holding, "a checkpoint outside the GIL");
        let shared = &*self.shared;
        let switch = if shared.config.variant == Variant::Legacy {
            // Only the holder touches the ticker, so a plain load and store suffice.
            let ticks = shared.ticker.load(Ordering::Relaxed) - 1;
            shared.ticker.store(ticks, Ordering::Relaxed);
            ticks < 0
        } else {
            shared.drop_request.load(Ordering::Relaxed)
        };
        if switch {
            self.forced_switch();
        }
    }

    #[inline]
    fn instruction(&mut self) {
        if self.shared.config.switch_points == SwitchPoints::EveryInstruction {
            self.checkpoint();
        }
    }

    fn pace(&self) -> Option<Pace> {
        Some(self.shared.pace)
    }

    fn allow_threads<R>(&mut self, f: impl FnOnce() -> R) -> R {
        self.detach();
        let result = f();
        self.reattach();
        result
    }

    fn detach(&mut self) {
        GilThread::detach(self);
    }

    fn reattach(&mut self) {
        GilThread::reattach(self);
    }
}

impl Drop for GilThread {
    fn drop(&mut self) {
        if self.holding {
            self.release(Release::Final);
        }
        let mut state = self.shared.lock_state();
        if let Some(stats) = state.threads.remove(&self.id) {
            state.ended.absorb(&stats);
        }
    }
}

#[cfg(all(test, not(clab_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};
    use std::thread;

    fn gil(variant: Variant, interval: Duration) -> Gil {
        Gil::new(GilConfig {
            switch_interval: interval,
            trace_capacity: Some(10_000),
            ..GilConfig::new(variant)
        })
    }

    /// Many threads mixing checkpoints and blocking sections: never two inside at once, and
    /// every thread gets through (no lost wake-up leaves one stuck).
    #[test]
    fn stress_mutual_exclusion_for_every_variant() {
        for variant in [Variant::New, Variant::Legacy, Variant::Priority] {
            let gil = gil(variant, Duration::from_micros(50));
            let inside = Arc::new(AtomicUsize::new(0));
            let work_done = Arc::new(AtomicUsize::new(0));
            thread::scope(|scope| {
                for index in 0..8 {
                    let (gil, inside, work_done) = (gil.clone(), &inside, &work_done);
                    scope.spawn(move || {
                        let mut py = gil.attach(format!("t{index}"));
                        for round in 0..2_000 {
                            assert_eq!(
                                inside.fetch_add(1, StdOrdering::SeqCst),
                                0,
                                "{variant}: two holders"
                            );
                            crate::work::fib(12, &mut crate::work::Free);
                            inside.fetch_sub(1, StdOrdering::SeqCst);
                            py.checkpoint();
                            if round % 100 == index {
                                py.allow_threads(|| thread::sleep(Duration::from_micros(20)));
                            }
                            work_done.fetch_add(1, StdOrdering::Relaxed);
                        }
                    });
                }
            });
            assert_eq!(work_done.load(StdOrdering::Relaxed), 16_000);
            let report = gil.report();
            assert!(
                report.switches > 8,
                "{variant}: the threads hardly took turns: {report:?}"
            );
            assert!(report.threads.is_empty());
            assert_eq!(
                report.ended_threads.acquisitions,
                report.ended_threads.voluntary_releases + report.ended_threads.forced_releases
            );
        }
    }

    #[test]
    fn a_lone_thread_never_waits_or_switches() {
        let gil = gil(Variant::New, Duration::from_millis(5));
        let mut py = gil.attach("main");
        for _ in 0..1_000 {
            py.checkpoint();
        }
        py.allow_threads(|| ());
        let report = gil.report();
        let me = &report.threads[0];
        assert_eq!(
            (me.acquisitions, me.voluntary_releases, me.forced_releases),
            (2, 1, 0)
        );
        assert_eq!((report.switches, me.drop_requests), (1, 0));
    }

    /// A waiter asks after one interval; the holder drops at its next checkpoint and does not
    /// take the GIL back before the waiter has had it (the forced handoff).
    #[test]
    fn a_waiter_gets_the_gil_from_a_checkpointing_holder() {
        let gil = gil(Variant::New, Duration::from_millis(2));
        let mut holder = gil.attach("cpu");
        let waiter = {
            let gil = gil.clone();
            thread::spawn(move || {
                let asked = Instant::now();
                let py = gil.attach("waiter");
                let waited = asked.elapsed();
                drop(py);
                waited
            })
        };
        while !waiter.is_finished() {
            holder.checkpoint();
        }
        let waited = waiter.join().unwrap();
        assert!(
            waited >= Duration::from_millis(2),
            "got it after {waited:?}, before one interval"
        );
        let report = gil.report();
        assert_eq!(report.threads[0].forced_releases, 1);
        assert_eq!(report.ended_threads.drop_requests, 1);
        let trace = gil.trace().unwrap();
        let kinds: Vec<_> = trace.events.iter().map(|e| (e.thread, e.event)).collect();
        let forced = kinds
            .iter()
            .position(|k| *k == (1, EventKind::ReleaseForced))
            .unwrap();
        assert_eq!(
            kinds[forced + 1],
            (2, EventKind::Acquire),
            "the waiter takes over next: {kinds:?}"
        );
    }

    #[test]
    fn legacy_releases_every_check_interval_while_someone_waits() {
        let gil = Gil::new(GilConfig {
            check_interval: 10,
            ..GilConfig::new(Variant::Legacy)
        });
        let mut py = gil.attach("main");
        for _ in 0..105 {
            py.checkpoint();
        }
        // Alone, a release and re-take would change nothing: none is made.
        assert_eq!(gil.report().threads[0].forced_releases, 0);
        let waiter = {
            let gil = gil.clone();
            thread::spawn(move || drop(gil.attach("waiter")))
        };
        let mut checkpoints = 0u64;
        while !waiter.is_finished() {
            py.checkpoint();
            checkpoints += 1;
        }
        waiter.join().unwrap();
        let report = gil.report();
        assert!(
            report.threads[0].forced_releases >= 1,
            "{checkpoints} checkpoints and no release for a waiter: {report:?}"
        );
        assert!(report.threads[0].forced_releases <= checkpoints / 10 + 1);
    }
}

#[cfg(all(test, clab_loom))]
mod loom_tests {
    //! Model checks of the lock: `RUSTFLAGS="--cfg clab_loom" cargo test --release --lib loom`.
    use super::*;
    use loom::sync::atomic::{AtomicBool as LoomBool, AtomicUsize};
    use loom::thread;

    fn gil(variant: Variant) -> Gil {
        Gil::new(GilConfig {
            check_interval: 1,
            ..GilConfig::new(variant)
        })
    }

    /// Explores every interleaving with up to two preemptions, which keeps each model in
    /// seconds; most concurrency bugs need no more (the loom docs' advice).
    fn model(test: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(test);
    }

    /// Two threads mixing checkpoints and a blocking section, with one interval elapsing at
    /// any point: never two holders, and no interleaving leaves a thread asleep for good
    /// (loom reports a deadlock if one does).
    fn exclusion_and_progress(variant: Variant) {
        model(move || {
            let gil = gil(variant);
            let inside = Arc::new(AtomicUsize::new(0));
            let run = |gil: Gil, inside: Arc<AtomicUsize>, name: &'static str| {
                move || {
                    let mut py = gil.attach(name);
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    inside.fetch_sub(1, Ordering::SeqCst);
                    py.checkpoint();
                    py.allow_threads(|| ());
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            };
            let other = thread::spawn(run(gil.clone(), inside.clone(), "b"));
            let ticker = {
                let gil = gil.clone();
                thread::spawn(move || gil.elapse_interval())
            };
            run(gil, inside, "a")();
            other.join().unwrap();
            ticker.join().unwrap();
        });
    }

    #[test]
    fn new_gil_excludes_and_progresses() {
        exclusion_and_progress(Variant::New);
    }

    #[test]
    fn legacy_gil_excludes_and_progresses() {
        exclusion_and_progress(Variant::Legacy);
    }

    #[test]
    fn priority_gil_excludes_and_progresses() {
        exclusion_and_progress(Variant::Priority);
    }

    /// A holder forced to drop at a checkpoint does not run on until the waiter that asked
    /// has taken the GIL.
    #[test]
    fn forced_handoff_lets_the_waiter_in_first() {
        model(|| {
            let gil = gil(Variant::New);
            let mut holder = gil.attach("cpu");
            let waiter_ran = Arc::new(LoomBool::new(false));
            let waiter = {
                let (gil, waiter_ran) = (gil.clone(), waiter_ran.clone());
                thread::spawn(move || {
                    let _py = gil.attach("waiter");
                    waiter_ran.store(true, Ordering::SeqCst);
                })
            };
            let ticker = {
                let gil = gil.clone();
                thread::spawn(move || gil.elapse_interval())
            };
            loop {
                holder.checkpoint();
                let forced = gil.report().threads[0].forced_releases;
                if forced > 0 {
                    assert!(
                        waiter_ran.load(Ordering::SeqCst),
                        "the holder came back before the waiter"
                    );
                    break;
                }
                if waiter_ran.load(Ordering::SeqCst) {
                    break;
                }
                thread::yield_now();
            }
            drop(holder);
            waiter.join().unwrap();
            ticker.join().unwrap();
        });
    }
}
