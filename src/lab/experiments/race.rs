//! Two threads incrementing one counter with a read, then a write: increments that
//! interleave between the two are lost. A lock or an atomic increment loses none; the GIL
//! does not save the unsynchronised version — it only makes losses rarer, since a switch
//! must land between the read and the write. Real CPython is run too, where available.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::gil::{GilConfig, PythonThread, SwitchPoints, Variant};
use crate::lab::health::HealthLog;
use crate::lab::outcome::Table;
use crate::lab::{Check, Experiment, Lab, LabError, Report, Verdict};
use crate::work::{self, Interpreter};

pub static EXPERIMENT: Experiment = Experiment {
    id: "race",
    claim: "unsynchronised read-modify-write from two threads loses updates; a lock or an atomic does not",
    essay: "Maniakowska, An Introduction to Concurrency in Python: two threads modifying a global variable without locking",
    rule: "holds when the unsynchronised counter (no GIL) ends short of the increments made, and \
           the locked and atomic counters end exactly right; does not hold otherwise.",
    history: &[],
    run,
};

enum Method {
    Unsynchronised,
    UnderGil(GilConfig),
    Locked,
    Atomic,
}

/// Lost increments of two threads doing `each` increments each under the emulated GIL
/// configured by `config`.
pub(crate) fn lost_under_gil(config: GilConfig, each: u64, placed: (&[usize], &HealthLog)) -> u64 {
    2 * each - count(&Method::UnderGil(config), each, placed)
}

/// A GIL with a short interval, so a forced switch can land between read and write often.
fn eager(switch_points: SwitchPoints) -> GilConfig {
    GilConfig {
        switch_interval: Duration::from_micros(50),
        switch_points,
        ..GilConfig::new(Variant::New)
    }
}

/// Two threads, `each` increments each; returns the final count.
fn count(method: &Method, each: u64, (cpus, log): (&[usize], &HealthLog)) -> u64 {
    let counter = AtomicU64::new(0);
    let locked = Mutex::new(0u64);
    let gil = match method {
        Method::UnderGil(config) => config.lock(),
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
                    Method::Unsynchronised => {
                        for _ in 0..each {
                            // A load and a store: two atomic steps, not one atomic increment.
                            let value = counter.load(Ordering::Relaxed);
                            counter.store(value + 1, Ordering::Relaxed);
                        }
                    }
                    Method::UnderGil(_) => {
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
                    Method::Locked => {
                        for _ in 0..each {
                            *crate::sync::lock(locked) += 1;
                        }
                    }
                    Method::Atomic => {
                        for _ in 0..each {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    match method {
        Method::Locked => *crate::sync::lock(&locked),
        _ => counter.load(Ordering::Relaxed),
    }
}

/// What CPython's `clab_bench.py race` prints.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct PythonRace {
    pub total: u64,
    pub expected: u64,
    pub lost: u64,
}

/// The same race in real CPython: two threads doing `counter[0] += 1`, `each` times each,
/// at the interpreter's default switch interval (or check interval on 2.x).
pub(crate) fn python_race(
    lab: &Lab,
    python: &crate::lab::pythons::Python,
    each: u64,
    cpus: &[usize],
) -> Result<PythonRace, LabError> {
    crate::lab::pythons::bench(
        &python.path,
        &lab.scripts,
        &["race", "--each", &each.to_string()],
        Some((cpus, &lab.health)),
        Duration::from_secs(120),
    )
    .map_err(|why| LabError::Measurement(format!("{} race: {why}", python.label())))
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let each: u64 = lab.profile.pick(2_000_000, 10_000_000, 10_000_000);
    // Under the emulated GIL each increment is eleven instructions of a tick each, as in
    // CPython: a tenth as many keep those rows as short as the others.
    let each_under_gil = each / 10;
    let cpus = lab.placement.server_all.clone();
    let mut table = Table::new(
        "Two threads incrementing one counter",
        &["method", "increments each", "final count", "lost updates"],
    );
    let mut lost = Vec::new();
    for (method, label, each) in [
        (Method::Unsynchronised, "read, then write (no GIL)", each),
        (
            Method::UnderGil(eager(SwitchPoints::EveryInstruction)),
            "read, then write, under --gil new switching at every instruction (≤ 3.9), 50 µs interval",
            each_under_gil,
        ),
        (
            Method::UnderGil(eager(SwitchPoints::CallsAndJumps)),
            "read, then write, under --gil new switching at calls and jumps (3.10+), 50 µs interval",
            each_under_gil,
        ),
        (Method::Locked, "a mutex around the increment", each),
        (Method::Atomic, "an atomic fetch_add", each),
    ] {
        lab.step(&format!("race: {label}"));
        let total = count(&method, each, (&cpus, &lab.health));
        let missing = 2 * each - total;
        table.row(vec![
            label.into(),
            each.to_string(),
            total.to_string(),
            missing.to_string(),
        ]);
        lost.push(missing);
    }
    let python_each = lab.profile.pick(1_000_000, 2_000_000, 2_000_000);
    let mut python_notes = Vec::new();
    for python in lab.pythons.clone() {
        lab.step(&format!("race: {}", python.label()));
        let race = python_race(lab, &python, python_each, &cpus)?;
        table.row(vec![
            format!("{} `counter[0] += 1`, default switching", python.label()),
            python_each.to_string(),
            race.total.to_string(),
            race.lost.to_string(),
        ]);
        python_notes.push(format!(
            "{} lost {} of {}",
            python.label(),
            race.lost,
            race.expected
        ));
    }
    let python_note = if python_notes.is_empty() {
        "no CPython was measured".to_owned()
    } else {
        python_notes.join(", ")
    };
    let mut report = Report::default();
    report.checks.push(Check::new(
        "unsynchronised read-modify-write loses updates",
        if lost[0] > 0 {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        },
        format!("{} of {} increments lost", lost[0], 2 * each),
    ));
    report.checks.push(Check::new(
        "a lock and an atomic lose none",
        if lost[3] == 0 && lost[4] == 0 {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        },
        format!("lost: lock {}, atomic {}", lost[3], lost[4]),
    ));
    report.summary = format!(
        "two threads lost {} of {} unsynchronised increments ({} under the emulated GIL switching at every instruction, {} switching only at calls and jumps); a lock and an atomic lost {} and {}; {python_note}",
        lost[0],
        2 * each,
        lost[1],
        lost[2],
        lost[3],
        lost[4]
    );
    report.tables.push(table);
    report.setup = vec![
        format!("in the lab's own process: two threads pinned to CPUs {}, {each} increments each, four ways", super::list(&cpus)),
        "the unsynchronised increment is an atomic load followed by an atomic store, so the race is real but not undefined behaviour".into(),
        "each CPython measured runs `counter[0] += 1` from two threads (python/clab_bench.py race) at its default switch interval, or check interval on 2.x".into(),
    ];
    report.explanation = "A read-modify-write is two steps; if the other thread writes between them, \
        one of the two increments is overwritten. On two cores without a GIL this happens constantly. \
        Under the GIL only a thread switch between the read and the write can do it, so losses are \
        rarer but still there — and each one costs more: the stale write undoes everything the other \
        thread did while it held the lock. The GIL protects the interpreter's own structures, not your data. \
        Modern CPython (3.10+) checks for a switch only at calls and backward jumps, which makes a \
        plain `counter += 1` in a loop lose far fewer updates than the essays' Pythons did — often \
        none — but any call between the read and the write brings the race back. A lock or an atomic \
        increment makes the step indivisible."
        .into();
    report.raw("lost", &lost);
    report.raw("cpython", python_note);
    Ok(report)
}
