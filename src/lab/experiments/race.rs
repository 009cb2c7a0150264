//! Two threads incrementing one counter with a read, then a write: increments that
//! interleave between the two are lost. A lock or an atomic increment loses none; the GIL
//! does not save the unsynchronised version — it only makes losses rarer, since a switch
//! must land between the read and the write. Real CPython is run too, where available.

use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::gil::{GilConfig, Variant};
use crate::lab::outcome::Table;
use crate::lab::process::run_to_completion;
use crate::lab::{Check, Experiment, Lab, LabError, Report, Verdict};
use crate::work::Interpreter;

pub static EXPERIMENT: Experiment = Experiment {
    id: "race",
    claim: "unsynchronised read-modify-write from two threads loses updates; a lock or an atomic does not",
    essay: "Maniakowska, An Introduction to Concurrency in Python: two threads modifying a global variable without locking",
    rule: "holds when the unsynchronised counter (no GIL) ends short of the increments made, and \
           the locked and atomic counters end exactly right; does not hold otherwise.",
    run,
};

enum Method {
    Unsynchronised,
    UnderGil,
    Locked,
    Atomic,
}

/// Two threads, `each` increments each; returns the final count.
fn count(method: &Method, each: u64, cpus: &[usize]) -> u64 {
    let counter = AtomicU64::new(0);
    let locked = Mutex::new(0u64);
    let mut config = GilConfig::new(Variant::New);
    // A short interval, so a forced switch can land between read and write often enough.
    config.switch_interval = Duration::from_micros(50);
    let gil = config.lock().expect("the new GIL");
    // Both threads start counting together: one must not finish before the other begins.
    let start = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        for index in 0..2 {
            let (counter, locked, gil, start) = (&counter, &locked, &gil, &start);
            let cpu = cpus[index % cpus.len()];
            scope.spawn(move || {
                let _ = crate::load::pin(&[cpu]);
                start.wait();
                match method {
                    Method::Unsynchronised => {
                        for _ in 0..each {
                            // A load and a store: two atomic steps, not one atomic increment.
                            let value = counter.load(Ordering::Relaxed);
                            counter.store(value + 1, Ordering::Relaxed);
                        }
                    }
                    Method::UnderGil => {
                        let mut thread = gil.attach(format!("incrementer {index}"));
                        for _ in 0..each {
                            let value = counter.load(Ordering::Relaxed);
                            // `counter += 1` is several bytecodes: a switch may come between.
                            thread.checkpoint();
                            counter.store(value + 1, Ordering::Relaxed);
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

/// The same race in real CPython: two threads doing `counter += 1` on a global.
const PYTHON_RACE: &str = r#"
import sys, threading
sys.setswitchinterval(1e-6)
each = int(sys.argv[1])
counter = 0
def work():
    global counter
    for _ in range(each):
        counter += 1
threads = [threading.Thread(target=work) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
print(counter)
"#;

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let each: u64 = lab.profile.pick(2_000_000, 10_000_000, 10_000_000);
    let cpus = lab.placement.server_all.clone();
    let mut table = Table::new(
        format!(
            "Two threads, {each} increments each ({} expected)",
            2 * each
        ),
        &["method", "final count", "lost updates"],
    );
    let mut lost = Vec::new();
    for (method, label) in [
        (Method::Unsynchronised, "read, then write (no GIL)"),
        (
            Method::UnderGil,
            "read, then write, under --gil new (50 µs interval)",
        ),
        (Method::Locked, "a mutex around the increment"),
        (Method::Atomic, "an atomic fetch_add"),
    ] {
        lab.step(&format!("race: {label}"));
        let total = count(&method, each, &cpus);
        let missing = 2 * each - total;
        table.row(vec![label.into(), total.to_string(), missing.to_string()]);
        lost.push(missing);
    }
    lab.step("race: CPython");
    let python_each = lab.profile.pick(1_000_000, 2_000_000, 2_000_000);
    let mut python = Command::new("python3");
    python.args(["-c", PYTHON_RACE, &python_each.to_string()]);
    let python_result = run_to_completion(python, Duration::from_secs(60));
    let python_note = match &python_result {
        Ok(out) => match out.trim().parse::<u64>() {
            Ok(total) => {
                let missing = 2 * python_each - total;
                table.row(vec![
                    format!("CPython `counter += 1`, {python_each} each, switch interval 1 µs"),
                    total.to_string(),
                    missing.to_string(),
                ]);
                format!("real CPython lost {missing} of {}", 2 * python_each)
            }
            Err(_) => format!("python3 printed {out:?}"),
        },
        Err(e) => format!("CPython not run: {e}"),
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
        if lost[2] == 0 && lost[3] == 0 {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        },
        format!("lost: lock {}, atomic {}", lost[2], lost[3]),
    ));
    report.summary = format!(
        "two threads lost {} of {} unsynchronised increments ({} under the emulated GIL); a lock and an atomic lost {} and {}; {python_note}",
        lost[0],
        2 * each,
        lost[1],
        lost[2],
        lost[3]
    );
    report.tables.push(table);
    report.setup = vec![
        format!("in the lab's own process: two threads pinned to CPUs {}, {each} increments each, four ways", super::list(&cpus)),
        "the unsynchronised increment is an atomic load followed by an atomic store, so the race is real but not undefined behaviour".into(),
        "CPython runs the essay's version, `counter += 1` on a global from two threads, with the switch interval at its 1 µs minimum".into(),
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
