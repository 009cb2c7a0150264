//! Two threads incrementing one counter with a read, then a write: increments that
//! interleave between the two are lost. A lock or an atomic increment loses none; the GIL
//! does not save the unsynchronised version — it only makes losses rarer, since a switch
//! must land between the read and the write. Real CPython runs it as the claim's fidelity pair.

use crate::gil::{GilConfig, SwitchPoints, Variant};
use crate::lab::claims::experiment::{self, Experiment, Report, Rules};
use crate::lab::claims::method::increments::{Counting, count, eager};
use crate::lab::claims::metrics;
use crate::lab::model::Era;
use crate::lab::model::eras::{EraClaim, EraMetric, Rule, Unit};
use crate::lab::model::outcome::{Check, Verdict};
use crate::lab::model::outcome::{RuleChange, Table};
use crate::lab::running::{Lab, LabError};

pub static EXPERIMENT: Experiment = Experiment {
    id: "race",
    claim: "unsynchronised read-modify-write from two threads loses updates; a lock or an atomic does not",
    essay: "Maniakowska, An Introduction to Concurrency in Python: two threads modifying a global variable without locking",
    rule: Rules {
        measures: "",
        marks: &[],
        besides: "holds when the unsynchronised counter (no GIL) ends short of the increments made, and \
           the locked and atomic counters end exactly right; does not hold otherwise.",
    },
    history: &[RuleChange {
        date: "2026-12-04",
        change: "CPython's two incrementing threads run on a CPU each, as the emulation's already did, instead of both on either",
        reason: "one placement per quantity on both sides: the bench's workers now take a CPU each in every claim that runs two (left to the scheduler, two threads taking turns at a GIL sometimes shared one CPU)",
    }],
    era: Some(&ERA),
    pair: Some(crate::lab::claims::metrics::Pair::Race),
    run: experiment::Method::Measure(run),
};

/// In each era: two threads of one Python process incrementing one counter unsynchronised.
static ERA: EraClaim = EraClaim {
    claim: "two threads of one Python process doing an unsynchronised read-modify-write lose updates: the lock of the era does not make it atomic",
    metric: "share of the increments lost",
    rule: Rule::AboveZero,
    unit: Unit::Percent,
    measured_by: EraMetric::Pair(metrics::RACE_LOST),
    except: &[(
        Era::PerInterpreter,
        EraMetric::NotMeaningful(
            "interpreters share no objects to race on; the threads of one interpreter race as under the new GIL",
        ),
    )],
};

/// One way of counting: how many increments each thread made and where the count ended.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    label: String,
    each: u64,
    total: u64,
}

impl Row {
    fn lost(&self) -> u64 {
        2 * self.each - self.total
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.label.clone(),
            self.each.to_string(),
            self.total.to_string(),
            self.lost().to_string(),
        ]
    }
}

/// Two threads of the lab's own process, pinned to the server CPUs, counting by `method`.
fn counted(lab: &mut Lab, method: Counting, label: &str, each: u64) -> Result<Row, LabError> {
    lab.step(&format!("race: {label}"))?;
    let cpus = lab.placement.server_all.clone();
    let total = count(&method, each, (&cpus, &lab.health));
    Ok(Row {
        label: label.into(),
        each,
        total,
    })
}

fn checks(unsynchronised: &Row, locked: &Row, atomic: &Row) -> Vec<Check> {
    let verdict = |holds| match holds {
        true => Verdict::Holds,
        false => Verdict::DoesNotHold,
    };
    vec![
        Check::new(
            "unsynchronised read-modify-write loses updates",
            verdict(unsynchronised.lost() > 0),
            format!(
                "{} of {} increments lost",
                unsynchronised.lost(),
                2 * unsynchronised.each
            ),
        ),
        Check::new(
            "a lock and an atomic lose none",
            verdict(locked.lost() == 0 && atomic.lost() == 0),
            format!("lost: lock {}, atomic {}", locked.lost(), atomic.lost()),
        ),
    ]
}

fn run(lab: &mut Lab) -> Result<Report, LabError> {
    let each: u64 = lab.profile.pick(2_000_000, 10_000_000, 10_000_000);
    // Under the emulated GIL each increment is eleven instructions of a tick each, as in
    // CPython: a tenth as many keep those rows as short as the others.
    let each_under_gil = each / 10;
    let unsynchronised = counted(
        lab,
        Counting::Unsynchronised,
        "read, then write (no GIL)",
        each,
    )?;
    let every_instruction = counted(
        lab,
        Counting::UnderGil(eager(SwitchPoints::EveryInstruction)),
        "read, then write, under --gil new switching at every instruction (≤ 3.9), 50 µs interval",
        each_under_gil,
    )?;
    let calls_and_jumps = counted(
        lab,
        Counting::UnderGil(eager(SwitchPoints::CallsAndJumps)),
        "read, then write, under --gil new switching at calls and jumps (3.10+), 50 µs interval",
        each_under_gil,
    )?;
    let legacy = counted(
        lab,
        Counting::UnderGil(GilConfig::new(Variant::Legacy)),
        "read, then write, under --gil legacy (a forced release every 100 ticks, as 2.x)",
        each_under_gil,
    )?;
    let locked = counted(lab, Counting::Locked, "a mutex around the increment", each)?;
    let atomic = counted(lab, Counting::Atomic, "an atomic fetch_add", each)?;
    let emulated = [
        &unsynchronised,
        &legacy,
        &every_instruction,
        &calls_and_jumps,
        &locked,
        &atomic,
    ];
    let mut table = Table::new(
        "Two threads incrementing one counter",
        &["method", "increments each", "final count", "lost updates"],
    );
    for row in emulated {
        table.row(row.cells());
    }
    let mut report = Report {
        checks: checks(&unsynchronised, &locked, &atomic),
        summary: format!(
            "two threads lost {} of {} unsynchronised increments ({} under the emulated legacy GIL, {} under the new GIL switching at every instruction, {} switching only at calls and jumps); a lock and an atomic lost {} and {}",
            unsynchronised.lost(),
            2 * each,
            legacy.lost(),
            every_instruction.lost(),
            calls_and_jumps.lost(),
            locked.lost(),
            atomic.lost()
        ),
        tables: vec![table],
        setup: vec![
            format!(
                "in the lab's own process: two threads pinned to CPUs {}, {each} increments each, six ways",
                crate::lab::words::list(&lab.placement.server_all)
            ),
            "the unsynchronised increment is an atomic load followed by an atomic store, so the race is real but not undefined behaviour".into(),
            "each CPython measured runs `counter[0] += 1` from two threads (python/clab_bench.py race) at its default switch interval, or check interval on 2.x".into(),
        ],
        explanation: EXPLANATION.into(),
        ..Report::default()
    };
    report.raw("rows", emulated);
    Ok(report)
}

const EXPLANATION: &str = "A read-modify-write is two steps; if the other thread writes \
    between them, one of the two increments is overwritten. On two cores without a GIL this \
    happens constantly. Under the GIL only a thread switch between the read and the write can \
    do it, so losses are rarer but still there — and each one costs more: the stale write undoes \
    everything the other thread did while it held the lock. The GIL protects the interpreter's \
    own structures, not your data. Modern CPython (3.10+) checks for a switch only at calls and \
    backward jumps, which makes a plain `counter += 1` in a loop lose far fewer updates than the \
    essays' Pythons did — often none — but any call between the read and the write brings the \
    race back. A lock or an atomic increment makes the step indivisible.";
