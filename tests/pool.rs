//! The process pool with real `clab worker` processes: jobs, futures, a worker killed
//! mid-job, and shutdown reaping every child.

use std::thread;
use std::time::Duration;

use clab::pool::{Executor, JobError, ProcessPool, WorkerCommand};
use clab::protocol::{Reply, Request};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

mod common;

use common::{eventually, exists as alive};

fn pool(workers: usize) -> ProcessPool {
    ProcessPool::new(workers, WorkerCommand::clab(env!("CARGO_BIN_EXE_clab"), 45))
        .expect("start the pool")
}

#[test]
fn workers_answer_every_request_kind_in_order() {
    let pool = pool(2);
    let requests = vec![
        Request::Fib(30),
        Request::Spin(2),
        Request::Sleep(5),
        Request::Echo("hi there".into()),
        Request::Stats,
    ];
    let replies: Vec<_> = pool.map(requests).unwrap().collect();
    assert_eq!(
        replies[..4],
        [
            Ok(Reply::Fib(832040)),
            Ok(Reply::Spun(2)),
            Ok(Reply::Slept(5)),
            Ok(Reply::Echo("hi there".into()))
        ]
    );
    assert!(matches!(&replies[4], Ok(Reply::Error(reason)) if reason.contains("server")));
}

/// The CPU time a process has used so far, in clock ticks (utime + stime from /proc).
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let after_name = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_killed_worker_fails_only_its_job_and_is_replaced() {
    let pool = pool(2);
    let before = pool.worker_pids();
    assert_eq!(before.len(), 2);
    let long = pool.submit(Request::Fib(42)).unwrap();
    // The worker computing fib 42 is the one burning CPU.
    thread::sleep(Duration::from_millis(150));
    let busy = *before.iter().max_by_key(|pid| cpu_ticks(**pid)).unwrap();
    assert!(!long.is_done(), "fib 42 should still be computing");
    let others: Vec<_> = (0..10)
        .map(|n| pool.submit(Request::Fib(n + 10)).unwrap())
        .collect();
    kill(Pid::from_raw(busy as i32), Signal::SIGKILL).unwrap();
    assert_eq!(
        long.wait_timeout(Duration::from_secs(10)),
        Ok(Reply::Error("worker died".into()))
    );
    for (n, job) in others.iter().enumerate() {
        let expected = Reply::Fib(clab::work::fib(n as u32 + 10, &mut clab::work::Free));
        assert_eq!(
            job.wait_timeout(Duration::from_secs(10)),
            Ok(expected),
            "the other jobs go on"
        );
    }
    assert_eq!(
        pool.submit(Request::Fib(10)).unwrap().wait(),
        Ok(Reply::Fib(55)),
        "the next job succeeds"
    );
    eventually(
        "the pool is back to two workers, the killed one replaced",
        || {
            let now = pool.worker_pids();
            now.len() == 2 && !now.contains(&busy) && before.iter().any(|pid| now.contains(pid))
        },
    );
    eventually("the killed worker is reaped", || !alive(busy));
}

#[test]
fn an_idle_worker_that_dies_costs_no_job() {
    let pool = pool(1);
    let [pid] = pool.worker_pids()[..] else {
        panic!("one worker")
    };
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    eventually("the dead worker is replaced", || {
        pool.worker_pids().first().is_some_and(|new| *new != pid)
    });
    assert_eq!(
        pool.submit(Request::Fib(20)).unwrap().wait(),
        Ok(Reply::Fib(6765))
    );
}

#[test]
fn shutdown_runs_queued_jobs_then_reaps_every_worker() {
    let pool = pool(2);
    let pids = pool.worker_pids();
    let jobs: Vec<_> = (0..10)
        .map(|n| pool.submit(Request::Fib(n + 20)).unwrap())
        .collect();
    pool.shutdown(true);
    assert!(jobs.iter().all(|job| job.is_done() && job.wait().is_ok()));
    assert!(pool.worker_pids().is_empty());
    for pid in pids {
        assert!(!alive(pid), "worker {pid} is still there after shutdown");
    }
    assert!(pool.submit(Request::Fib(1)).is_err());
}

#[test]
fn a_queued_job_can_be_cancelled_and_awaited_ones_complete() {
    let pool = pool(1);
    let busy = pool.submit(Request::Sleep(200)).unwrap();
    let queued = pool.submit(Request::Fib(5)).unwrap();
    assert!(queued.cancel());
    assert_eq!(queued.wait(), Err(JobError::Cancelled));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(busy), Ok(Reply::Slept(200)));
    let later = pool.submit(Request::Fib(6)).unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    later.add_done_callback(move |outcome| sender.send(outcome.clone()).unwrap());
    assert_eq!(
        receiver.recv_timeout(Duration::from_secs(10)).unwrap(),
        Ok(Reply::Fib(8))
    );
}

#[test]
fn a_missing_worker_program_is_a_clear_error() {
    let error = ProcessPool::new(1, WorkerCommand::clab("/nonexistent/clab", 45)).unwrap_err();
    assert!(
        error.to_string().contains("cannot start /nonexistent/clab"),
        "{error}"
    );
}

/// A pool given a hop cost spends it on every job as CPU work on its own thread: a tiny job
/// takes at least that long, in each kind of pool, and the pool's thread does the work (the
/// submitting thread only waits). Lower bounds only: busy work never finishes early.
#[test]
fn each_kind_of_pool_spends_its_hop_on_its_own_thread() {
    use clab::gil::{GilConfig, Variant};
    use clab::pool::{InterpreterPool, ThreadPool};
    let hop = Duration::from_millis(20);
    let worker = WorkerCommand::clab(env!("CARGO_BIN_EXE_clab"), 45);
    let pools: Vec<(&str, Box<dyn Executor>)> = vec![
        (
            "threads",
            Box::new(ThreadPool::spending(1, None, hop).unwrap()),
        ),
        (
            "processes",
            Box::new(ProcessPool::spending(1, worker, (None, hop)).unwrap()),
        ),
        (
            "interpreters",
            Box::new(InterpreterPool::spending(1, GilConfig::new(Variant::New), 45, hop).unwrap()),
        ),
    ];
    for (kind, pool) in pools {
        let waiting = clab::system::cpu_time::thread();
        let started = std::time::Instant::now();
        assert_eq!(
            pool.submit(Request::Fib(1)).unwrap().wait(),
            Ok(Reply::Fib(1))
        );
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(18), "{kind}: {took:?}");
        let spent_waiting = clab::system::cpu_time::thread() - waiting;
        assert!(
            spent_waiting < Duration::from_millis(10),
            "{kind}: {spent_waiting:?}"
        );
    }
}
