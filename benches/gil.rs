//! The GIL's costs: an uncontended checkpoint (without a GIL it should compile to nothing;
//! under the new GIL the fast path is one relaxed load), and one forced handoff between two
//! threads. Run with `cargo bench --bench gil`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clab::gil::{GilConfig, Variant};
use clab::work::{Free, Interpreter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CHECKPOINTS: u64 = 1_000;

fn checkpoints(interpreter: &mut impl Interpreter) {
    for round in 0..CHECKPOINTS {
        interpreter.checkpoint();
        black_box(round);
    }
}

fn uncontended_checkpoint(c: &mut Criterion) {
    let mut group = c.benchmark_group("checkpoint");
    group.throughput(Throughput::Elements(CHECKPOINTS));
    group.bench_function("none", |b| b.iter(|| checkpoints(&mut Free)));
    for variant in [Variant::New, Variant::Legacy, Variant::Priority] {
        let gil = GilConfig::new(variant).lock().expect("a lock");
        let mut thread = gil.attach("bench");
        group.bench_function(variant.name(), |b| b.iter(|| checkpoints(&mut thread)));
    }
    group.finish();
}

/// Two threads checkpointing in a loop under the new GIL with a 1 µs switch interval, so
/// every slice ends in a drop request and a forced handoff; the time per switch is the
/// handoff's cost plus the interval.
fn forced_handoff(c: &mut Criterion) {
    c.bench_function("handoff/new, 1 µs interval", |b| {
        b.iter_custom(|switches| {
            let config = GilConfig {
                switch_interval: Duration::from_micros(1),
                ..GilConfig::new(Variant::New)
            };
            let gil = config.lock().expect("a lock");
            let stop = Arc::new(AtomicBool::new(false));
            let partner = {
                let (gil, stop) = (gil.clone(), stop.clone());
                thread::spawn(move || {
                    let mut thread = gil.attach("partner");
                    while !stop.load(Ordering::Relaxed) {
                        thread.checkpoint();
                    }
                })
            };
            let mut thread = gil.attach("bench");
            let started = Instant::now();
            while gil.switches() < switches + 1 {
                for _ in 0..1_000 {
                    thread.checkpoint();
                }
            }
            let elapsed = started.elapsed();
            stop.store(true, Ordering::Relaxed);
            drop(thread);
            partner.join().expect("partner thread");
            elapsed
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = uncontended_checkpoint, forced_handoff
}
criterion_main!(benches);
