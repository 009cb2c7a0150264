//! A tiny job's round trip (`fib 1`: submit, run, wait) through the thread pool and through
//! the process pool, first on both cores as the scheduler places things, then with the whole
//! benchmark — and the worker processes, which inherit it — pinned to CPU 0, since on these
//! machines a cross-core wake-up costs far more than a same-core one. Run with
//! `cargo bench --bench pool`.

use std::time::Duration;

use clab::pool::{Executor, ProcessPool, ThreadPool, WorkerCommand};
use clab::protocol::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;

fn round_trips(c: &mut Criterion, placement: &str) {
    let mut group = c.benchmark_group(format!("round trip, {placement}"));
    let threads = ThreadPool::new(1, None).expect("thread pool");
    group.bench_function("thread pool", |b| {
        b.iter(|| threads.submit(Request::Fib(1)).unwrap().wait())
    });
    let processes = ProcessPool::new(1, WorkerCommand::clab(env!("CARGO_BIN_EXE_clab"), 45))
        .expect("process pool");
    group.bench_function("process pool", |b| {
        b.iter(|| processes.submit(Request::Fib(1)).unwrap().wait())
    });
    group.finish();
}

fn unpinned(c: &mut Criterion) {
    round_trips(c, "unpinned");
}

fn pinned(c: &mut Criterion) {
    let mut cpu0 = CpuSet::new();
    cpu0.set(0).expect("cpu 0");
    sched_setaffinity(Pid::from_raw(0), &cpu0).expect("pin to cpu 0");
    round_trips(c, "all on cpu 0");
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = unpinned, pinned
}
criterion_main!(benches);
