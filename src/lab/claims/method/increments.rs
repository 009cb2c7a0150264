//! The race method: two threads incrementing one counter by a read and a separate write —
//! on the emulated GIL (or without one, or with a lock or an atomic) in the lab's own process,
//! and `counter[0] += 1` in `python/clab_bench.py race` on CPython.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::gil::{GilConfig, PythonThread, SwitchPoints, Variant};
use crate::lab::running::health::HealthLog;
use crate::lab::running::{Lab, LabError};
use crate::work::{self, Interpreter};

/// How two threads increment one counter.
pub(crate) enum Counting {
    Unsynchronised,
    UnderGil(GilConfig),
    Locked,
    Atomic,
}

/// Lost increments of two threads doing `each` increments each under the emulated GIL
/// configured by `config`.
pub(crate) fn lost_under_gil(config: GilConfig, each: u64, placed: (&[usize], &HealthLog)) -> u64 {
    2 * each - count(&Counting::UnderGil(config), each, placed)
}

/// A GIL with a short interval, so a forced switch can land between read and write often.
pub(crate) fn eager(switch_points: SwitchPoints) -> GilConfig {
    GilConfig {
        switch_interval: Duration::from_micros(50),
        switch_points,
        ..GilConfig::new(Variant::New)
    }
}

/// Two threads, `each` increments each; returns the final count.
pub(crate) fn count(method: &Counting, each: u64, (cpus, log): (&[usize], &HealthLog)) -> u64 {
    let counter = AtomicU64::new(0);
    let locked = Mutex::new(0u64);
    let gil = match method {
        Counting::UnderGil(config) => config.lock(),
        _ => None,
    };
    // Both threads start counting together: one must not finish before the other begins.
    let start = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        for index in 0..2 {
            let (counter, locked, gil, start) = (&counter, &locked, gil.as_ref(), &start);
            let cpu = cpus[index % cpus.len()];
            scope.spawn(move || {
                log.pin_thread(&format!("incrementer {index}"), &[cpu]);
                start.wait();
                match method {
                    Counting::Unsynchronised => {
                        for _ in 0..each {
                            // A load and a store: two atomic steps, not one atomic increment.
                            let value = counter.load(Ordering::Relaxed);
                            counter.store(value + 1, Ordering::Relaxed);
                        }
                    }
                    Counting::UnderGil(_) => {
                        let mut thread = PythonThread::attach(gil, &format!("incrementer {index}"));
                        for _ in 0..each {
                            // `counter[0] += 1` as CPython ≤ 3.9 runs it, about eleven
                            // instructions of a tick each: the load (BINARY_SUBSCR)…
                            let value = counter.load(Ordering::Relaxed);
                            // …three instructions in which a switch leaves it stale…
                            work::instructions(3, &mut thread);
                            counter.store(value + 1, Ordering::Relaxed);
                            // …the store, the rest of the loop body…
                            work::instructions(7, &mut thread);
                            // …and the backward jump: a checkpoint in every era.
                            thread.checkpoint();
                        }
                    }
                    Counting::Locked => {
                        for _ in 0..each {
                            *crate::sync::lock(locked) += 1;
                        }
                    }
                    Counting::Atomic => {
                        for _ in 0..each {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    match method {
        Counting::Locked => *crate::sync::lock(&locked),
        _ => counter.load(Ordering::Relaxed),
    }
}

/// What CPython's `clab_bench.py race` prints.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct PythonRace {
    /// The final count.
    total: u64,
    /// The increments made: two threads × `each`.
    expected: u64,
    pub lost: u64,
}

/// The same race in real CPython: two threads doing `counter[0] += 1`, `each` times each,
/// at the interpreter's default switch interval (or check interval on 2.x).
pub(crate) fn python_race(
    lab: &Lab,
    python: &crate::lab::running::pythons::Python,
    each: u64,
    cpus: &[usize],
) -> Result<PythonRace, LabError> {
    let race: PythonRace = crate::lab::running::pythons::bench(
        &python.path,
        &lab.scripts,
        &["race", "--each", &each.to_string()],
        Some((cpus, &lab.health)),
        Duration::from_secs(120),
    )
    .map_err(|why| LabError::Measurement(format!("{} race: {why}", python.label())))?;
    // A count the program did not make, or a loss it did not count, is not a race measured.
    if race.expected != 2 * each || race.total + race.lost != race.expected {
        return Err(LabError::Measurement(format!(
            "{} race: {race:?} for {} increments asked for",
            python.label(),
            2 * each
        )));
    }
    Ok(race)
}
