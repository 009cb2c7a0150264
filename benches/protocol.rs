//! The request path's own costs: parsing a request line, framing a pipelined batch, and the
//! fib workload itself. Run with `cargo bench --bench protocol`.

use std::hint::black_box;

use clab::protocol::{Frame, LineFramer, Request};
use clab::work::{self, Free};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for line in ["30", "fib 30", "echo hello there", "bogus request"] {
        group.bench_function(line, |b| {
            b.iter(|| Request::parse(black_box(line.as_bytes()), 45))
        });
    }
    group.finish();
}

fn framing(c: &mut Criterion) {
    let batch: Vec<u8> = (0..100)
        .flat_map(|i| format!("fib {}\n", i % 30).into_bytes())
        .collect();
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Elements(100));
    group.bench_function("100 pipelined lines", |b| {
        b.iter(|| {
            let mut framer = LineFramer::new();
            framer.push(black_box(&batch));
            let mut lines = 0;
            while let Some(Frame::Line(line)) = framer.next_line(|| false) {
                black_box(line);
                lines += 1;
            }
            lines
        })
    });
    group.finish();
}

fn fib(c: &mut Criterion) {
    let mut group = c.benchmark_group("fib");
    for n in [20u32, 30] {
        group.bench_function(format!("fib({n})"), |b| {
            b.iter(|| work::fib(black_box(n), &mut Free))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(std::time::Duration::from_secs(2))
        .warm_up_time(std::time::Duration::from_millis(500));
    targets = parse, framing, fib
}
criterion_main!(benches);
