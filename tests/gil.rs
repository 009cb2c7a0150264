//! The emulated GIL's behaviour, in process, against the shapes the essays describe: the
//! convoy, two CPU-bound jobs, a long uninterruptible instruction, and each era's switch points. Margins are wide; the
//! figures are printed so a run can be read, not just passed.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clab::gil::{Gil, GilConfig, PythonThread, SwitchPoints, Variant};
use clab::work::{self, Interpreter};

use common::{pin_to_nth_cpu as pin, timing_lock as serialise};

fn lock(variant: Variant) -> Option<Gil> {
    GilConfig::new(variant).lock()
}

/// Runs an I/O loop (release, block 50 µs, re-acquire) for `duration`, optionally beside a
/// checkpointing CPU-bound thread; returns its operations per second and, under a GIL, its
/// median wait for the GIL in milliseconds.
fn io_loop(variant: Variant, with_cpu_thread: bool, duration: Duration) -> (f64, Option<f64>) {
    let gil = lock(variant);
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        if with_cpu_thread {
            let (gil, stop) = (gil.as_ref(), &stop);
            scope.spawn(move || {
                pin(0);
                let mut py = PythonThread::attach(gil, "cpu");
                while !stop.load(Ordering::Relaxed) {
                    work::fib(20, &mut py);
                }
            });
            thread::sleep(Duration::from_millis(20));
        }
        pin(1);
        let mut py = PythonThread::attach(gil.as_ref(), "io");
        let started = Instant::now();
        let mut operations = 0u64;
        while started.elapsed() < duration {
            py.allow_threads(|| thread::sleep(Duration::from_micros(50)));
            operations += 1;
        }
        let rate = operations as f64 / started.elapsed().as_secs_f64();
        let median_wait = gil.as_ref().and_then(|gil| {
            let report = gil.report();
            let io = report
                .threads
                .iter()
                .find(|t| t.name == "io")
                .expect("the io thread");
            io.wait_ms.p50
        });
        stop.store(true, Ordering::Relaxed);
        drop(py);
        (rate, median_wait)
    })
}

#[test]
fn convoy_a_cpu_thread_collapses_an_io_thread_under_the_new_gil_only() {
    let _one = serialise();
    for variant in [Variant::New, Variant::None, Variant::Priority] {
        let (solo, _) = io_loop(variant, false, Duration::from_millis(500));
        let (beside, median_wait) = io_loop(variant, true, Duration::from_secs(1));
        let share = beside / solo;
        eprintln!(
            "{variant}: io loop {solo:.0} ops/s alone, {beside:.0} ops/s beside a CPU thread ({:.1} %), median wait {median_wait:?} ms",
            share * 100.0
        );
        match variant {
            Variant::New => {
                assert!(
                    share < 0.05,
                    "new: the io loop kept {:.1} % of its rate",
                    share * 100.0
                );
                let wait = median_wait.unwrap();
                assert!(
                    (3.0..=8.0).contains(&wait),
                    "new: median wait {wait} ms, not about one 5 ms interval"
                );
            }
            _ => assert!(
                share >= 0.5,
                "{variant}: the io loop kept only {:.1} % of its rate",
                share * 100.0
            ),
        }
    }
}

/// The CPU time this thread has used so far.
fn thread_cpu_time() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
        .expect("read this thread's CPU time");
    let (user, system) = (usage.user_time(), usage.system_time());
    let micros = |time: nix::sys::time::TimeVal| {
        Duration::from_secs(time.tv_sec() as u64) + Duration::from_micros(time.tv_usec() as u64)
    };
    micros(user) + micros(system)
}

/// Two threads, each pinned to its own CPU, compute the same fib at once; returns how many of
/// them ran at a time in each of five rounds: their CPU time together over the wall time of the
/// pair, sorted. Taking turns gives 1 whatever each CPU's speed; running at once gives up to 2.
/// Unlike a slowdown against solo runs, this needs no second measurement taken at another
/// moment, which a shared host's neighbour can slow by a third (CI here once timed one vCPU's
/// solo run at 183 ms and the other's at 114 ms).
fn two_jobs_concurrency(variant: Variant) -> Vec<f64> {
    const N: u32 = 38;
    let gil = lock(variant);
    let pair = || -> (Duration, Duration) {
        let started = Instant::now();
        let cpu: Duration = thread::scope(|scope| {
            let jobs: Vec<_> = (0..2)
                .map(|index| {
                    let gil = gil.as_ref();
                    scope.spawn(move || {
                        pin(index);
                        let before = thread_cpu_time();
                        let mut py = PythonThread::attach(gil, &format!("job {index}"));
                        work::fib(N, &mut py);
                        drop(py);
                        thread_cpu_time() - before
                    })
                })
                .collect();
            jobs.into_iter().map(|job| job.join().unwrap()).sum()
        });
        (cpu, started.elapsed())
    };
    let rounds: Vec<(Duration, Duration)> = (0..5).map(|_| pair()).collect();
    let mut concurrency: Vec<f64> = rounds
        .iter()
        .map(|(cpu, wall)| cpu.as_secs_f64() / wall.as_secs_f64())
        .collect();
    concurrency.sort_by(f64::total_cmp);
    eprintln!(
        "{variant}: two fib({N}) at once, (CPU time, wall time) per round {rounds:?}; \
         jobs running at a time {concurrency:.2?}"
    );
    concurrency
}

#[test]
fn two_cpu_bound_jobs_take_turns_under_the_gil_and_run_in_parallel_without() {
    let _one = serialise();
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    // Taking turns is 1 job at a time; the margin is for the hand-over and the waiter's wake-ups.
    // The median round: nothing a neighbour does can make turns overlap.
    let under_gil = two_jobs_concurrency(Variant::New)[2];
    assert!(
        under_gil <= 1.25,
        "new: {under_gil:.2} jobs ran at a time on average; the GIL lets one"
    );
    if cores >= 2 {
        // Halfway between taking turns (1) and running at once (2), in the best round: a vCPU
        // the host takes away (steal time, which no thread's CPU time counts) or a thread that
        // starts late only lowers the overlap — CI here once read 1.24, 1.37 and 1.56 — so the
        // best round is the closest to what the threads can do.
        let without = two_jobs_concurrency(Variant::None)[4];
        assert!(
            without >= 1.5,
            "none: at best {without:.2} jobs ran at a time on average on {cores} cores"
        );
    }
}

/// How long a thread that starts while another runs a 300 ms uninterruptible section waits
/// for its first checkpoint.
fn stall_behind_a_long_instruction(variant: Variant) -> Duration {
    let gil = lock(variant);
    let holding = AtomicBool::new(false);
    thread::scope(|scope| {
        let (gil_ref, holding_ref) = (gil.as_ref(), &holding);
        let long = scope.spawn(move || {
            pin(0);
            let started = Instant::now();
            let busy = || {
                holding_ref.store(true, Ordering::SeqCst);
                while started.elapsed() < Duration::from_millis(300) {
                    std::hint::spin_loop();
                }
            };
            match gil_ref {
                None => busy(),
                Some(gil) => gil.attach("long").uninterruptible(busy),
            }
        });
        while !holding.load(Ordering::SeqCst) {
            thread::yield_now();
        }
        pin(1);
        let asked = Instant::now();
        let mut py = PythonThread::attach(gil.as_ref(), "other");
        py.checkpoint();
        let stalled = asked.elapsed();
        drop(py);
        long.join().unwrap();
        stalled
    })
}

#[test]
fn a_long_uninterruptible_instruction_stalls_every_other_thread() {
    let _one = serialise();
    for variant in [
        Variant::New,
        Variant::Legacy,
        Variant::Priority,
        Variant::None,
    ] {
        let stalled = stall_behind_a_long_instruction(variant);
        eprintln!("{variant}: the other thread's first checkpoint came after {stalled:?}");
        if variant == Variant::None {
            assert!(
                stalled < Duration::from_millis(250),
                "none: stalled {stalled:?}"
            );
        } else {
            assert!(
                stalled >= Duration::from_millis(250),
                "{variant}: stalled only {stalled:?}"
            );
        }
    }
}

#[test]
fn the_trace_shows_the_convoy_cycle() {
    let _one = serialise();
    let gil = Gil::new(GilConfig {
        trace_capacity: Some(100_000),
        ..GilConfig::new(Variant::New)
    });
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let (gil, stop) = (&gil, &stop);
        scope.spawn(move || {
            pin(0);
            let mut py = gil.attach("cpu");
            while !stop.load(Ordering::Relaxed) {
                work::fib(20, &mut py);
            }
        });
        thread::sleep(Duration::from_millis(20));
        pin(1);
        let mut py = gil.attach("io");
        for _ in 0..20 {
            py.allow_threads(|| thread::sleep(Duration::from_micros(50)));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let trace = gil.trace().unwrap();
    let names: Vec<&str> = trace.threads.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["cpu", "io"]);
    let io = trace.threads[1].id;
    let count = |kind| {
        trace
            .events
            .iter()
            .filter(|e| e.thread == io && e.event == kind)
            .count()
    };
    use clab::gil::EventKind::*;
    assert!(
        count(ReleaseVoluntary) >= 20,
        "the io thread's releases are traced"
    );
    assert!(
        count(DropRequest) >= 15,
        "the io thread asks the cpu thread to drop, nearly every time"
    );
    assert!(
        trace
            .events
            .windows(2)
            .all(|pair| pair[0].t_ns <= pair[1].t_ns),
        "events are in time order"
    );
}

/// Two threads doing `x += 1` as CPython does it — a load, other instructions, a store, then
/// the loop's backward jump — for `duration` each under a new GIL with `switch_points`:
/// the increments lost, and the forced switches that happened.
fn lost_increments(switch_points: SwitchPoints, duration: Duration) -> (u64, u64) {
    use std::sync::atomic::AtomicU64;
    let gil = Gil::new(GilConfig {
        switch_interval: Duration::from_micros(20),
        switch_points,
        ..GilConfig::new(Variant::New)
    });
    let counter = AtomicU64::new(0);
    let start = std::sync::Barrier::new(2);
    let made: u64 = thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|index| {
                let (gil, counter, start) = (&gil, &counter, &start);
                scope.spawn(move || {
                    pin(index);
                    let mut py = gil.attach(format!("incrementer {index}"));
                    py.allow_threads(|| start.wait());
                    let started = Instant::now();
                    let mut made = 0u64;
                    // Long enough for hundreds of forced switches, however fast the loop.
                    while started.elapsed() < duration {
                        let value = counter.load(Ordering::Relaxed);
                        py.instruction();
                        counter.store(value + 1, Ordering::Relaxed);
                        py.checkpoint();
                        made += 1;
                    }
                    made
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    let switches = gil.report().ended_threads.forced_releases;
    (made - counter.load(Ordering::Relaxed), switches)
}

#[test]
fn a_bare_increment_is_cut_only_where_every_instruction_is_a_switch_point() {
    let _one = serialise();
    let duration = Duration::from_millis(50);
    // 3.10+: no switch between the load and the store, so nothing can be lost, ever.
    let (lost, switches) = lost_increments(SwitchPoints::CallsAndJumps, duration);
    assert!(switches >= 10, "only {switches} forced switches");
    assert_eq!(lost, 0, "lost with {switches} switches at calls and jumps");
    // ≤ 3.9: each forced switch lands between the two about half the time.
    let (lost, switches) = lost_increments(SwitchPoints::EveryInstruction, duration);
    assert!(switches >= 10, "only {switches} forced switches");
    assert!(
        lost > 0,
        "no increment was lost in {switches} switches at every instruction"
    );
}

#[test]
fn a_lone_legacy_thread_pays_nothing_for_its_check_interval() {
    let _one = serialise();
    // The uncontended release-and-reacquire costs nothing, as in CPython 2's user-space
    // semaphore: with a 2.7-like tick (a release every 100 × 8 ns), fib under the legacy GIL
    // takes about as long as under the new GIL, whose lone holder never releases.
    pin(0);
    let lock = |variant: Variant| {
        Gil::new(GilConfig {
            tick: Duration::from_nanos(8),
            ..GilConfig::new(variant)
        })
    };
    let (new_gil, legacy_gil) = (lock(Variant::New), lock(Variant::Legacy));
    let (mut on_new, mut on_legacy) = (new_gil.attach("new"), legacy_gil.attach("legacy"));
    let timed = |py: &mut clab::gil::GilThread| {
        let started = Instant::now();
        work::fib(27, py);
        started.elapsed()
    };
    // Fastest of fifteen, taken in turns: a neighbour's burst on a shared host slows a few
    // runs of both, not every run of one.
    let (mut new, mut legacy) = (Duration::MAX, Duration::MAX);
    for _ in 0..15 {
        new = new.min(timed(&mut on_new));
        legacy = legacy.min(timed(&mut on_legacy));
    }
    eprintln!("fib 27 alone: new GIL {new:?}, legacy GIL {legacy:?}");
    assert!(
        legacy.as_secs_f64() < new.as_secs_f64() * 1.5,
        "legacy {legacy:?} against new {new:?}"
    );
}
