//! Looking at the run's CPUs between measurements ([`CoreSample`]): a fixed piece of work that
//! keeps a core's integer units busy, timed on each CPU alone and on all at once.
//!
//! The work is not the emulation's `spin`: spin advances one chain, which a core runs at full
//! speed whoever shares it, where CPython's eval loop issues several instructions a cycle and
//! slows when another hyperthread takes the core's units. This probe advances eight chains, so
//! it slows as interpreter code does (on an Intel Xeon host, in the same spells, CPython 3.11's
//! countdown ran 1.75× its quiet time, this work 1.3×, spin 1.0×) and about halves when the two
//! CPUs are hyperthreads of one core. Spin stays one chain: made to feel the host as this does,
//! the emulation's rows followed the host's spells too, at their own size and at other moments
//! than CPython's, and fewer landed in their bands (December 2026).

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

use crate::lab::model::cores::CoreSample;

/// About a fifth of a millisecond a timing on a quiet CPU: a look costs a few milliseconds.
const ITERATIONS: u64 = 100_000;

/// Timings per CPU and per way, the best kept: one preemption does not make a CPU look slow.
const TIMINGS: usize = 3;

/// Eight independent chains of a rotation and an addition or exclusive or each (scalar: no
/// vector instruction rotates 64-bit lanes on the baseline x86-64).
#[inline(never)]
fn busy_core(iterations: u64) -> u64 {
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] =
        black_box([1_u64, 2, 3, 4, 5, 6, 7, 8]);
    for _ in 0..iterations {
        a = a.rotate_left(5).wrapping_add(0x9E37_79B9);
        b = b.rotate_left(7) ^ 0x7F4A_7C15;
        c = c.rotate_left(11).wrapping_add(0x2545_F491);
        d = d.rotate_left(13) ^ 0x4F6C_DD1D;
        e = e.rotate_left(17).wrapping_add(0x1CE4_E5B9);
        f = f.rotate_left(19) ^ 0x1331_11EB;
        g = g.rotate_left(23).wrapping_add(0x6659_FD93);
        h = h.rotate_left(29) ^ 0x78BD_642F;
    }
    black_box(a ^ b ^ c ^ d ^ e ^ f ^ g ^ h)
}

/// The best of [`TIMINGS`] of the work on this thread, µs.
fn best_us() -> f64 {
    (0..TIMINGS)
        .map(|_| {
            let started = Instant::now();
            busy_core(ITERATIONS);
            started.elapsed().as_secs_f64() * 1e6
        })
        .fold(f64::INFINITY, f64::min)
}

/// The work on a thread pinned to each of `cpus`, started together when `together`, else one
/// after the other; µs per CPU, in `cpus`' order. `None` if a thread could not be pinned: a
/// time from the wrong CPU says nothing.
fn timed(cpus: &[usize], together: bool) -> Option<Vec<f64>> {
    let start = Barrier::new(if together { cpus.len() } else { 1 });
    let run = |cpu: usize| {
        let pinned = crate::system::cpus::pin(&[cpu]).is_ok();
        // Every thread reaches the barrier, pinned or not: one that left early would keep the
        // others waiting for ever.
        if together {
            start.wait();
        }
        pinned.then(best_us)
    };
    std::thread::scope(|scope| {
        if together {
            let threads: Vec<_> = cpus
                .iter()
                .map(|&cpu| scope.spawn(move || run(cpu)))
                .collect();
            threads
                .into_iter()
                .map(|thread| thread.join().ok().flatten())
                .collect()
        } else {
            cpus.iter()
                .map(|&cpu| scope.spawn(move || run(cpu)).join().ok().flatten())
                .collect()
        }
    })
}

/// One look at `cpus`, before `before`; `None` where the CPUs could not be pinned to. Nothing
/// else of the lab's may run meanwhile.
pub fn sample(cpus: &[usize], before: &str) -> Option<CoreSample> {
    Some(CoreSample {
        before: before.to_owned(),
        alone_us: timed(cpus, false)?,
        together_us: if cpus.len() > 1 {
            timed(cpus, true)?
        } else {
            Vec::new()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A look gives a positive time for each CPU alone and together. (How the times compare
    /// depends on the host, so nothing more is asserted.)
    #[test]
    fn a_look_times_every_cpu_alone_and_together() {
        let cpus = crate::system::cpus::allowed_cpus();
        let look = sample(&cpus, "a test").expect("the CPUs this test may run on");
        assert_eq!(look.alone_us.len(), cpus.len());
        assert!(look.alone_us.iter().all(|us| *us > 0.0), "{look:?}");
        if cpus.len() > 1 {
            assert_eq!(look.together_us.len(), cpus.len());
            assert!(look.together_us.iter().all(|us| *us > 0.0), "{look:?}");
        }
    }
}
