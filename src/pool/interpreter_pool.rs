//! A pool of emulated subinterpreters: threads of this process, each with a GIL of its own,
//! as CPython 3.12 gave every subinterpreter (PEP 684; `InterpreterPoolExecutor` in 3.14).
//!
//! Interpreters share no objects, so what crosses between them is copied: a job's request
//! goes over as its text and is parsed again inside the interpreter, and its reply comes back
//! as text — the hand-off's cost, without a process. A job that panics its interpreter fails
//! with `ERR interpreter died`, and a fresh interpreter (a new thread, a new GIL) takes the
//! dead one's place.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::gil::{Gil, GilConfig, GilReport, PythonThread};
use crate::pool::{Executor, JobFuture, JobQueue, PoolError, Tasks, hop};
use crate::protocol::{Reply, Request};
use crate::sync::lock;
use crate::work::{self, Interpreter};

/// What an interpreter does with a request's text: parse it, compute it, and give back the
/// reply's text. Tests swap in one that panics.
type Runner = fn(&str, u32, &mut PythonThread) -> String;

#[derive(Debug)]
pub struct InterpreterPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: JobQueue,
    tasks: Tasks,
    /// Every interpreter's GIL settings (each gets a lock of its own).
    gil: GilConfig,
    max_n: u32,
    /// Interpreter work per job before the job, under the interpreter's GIL.
    hop: Duration,
    runner: Runner,
    /// Each interpreter's GIL, by worker index, for `stats` (`None`: no GIL).
    gils: Mutex<Vec<Option<Gil>>>,
}

impl InterpreterPool {
    /// Starts `workers` interpreters, each with its own lock as `gil` describes, taking
    /// requests with `fib n` up to `max_n`.
    pub fn new(workers: usize, gil: GilConfig, max_n: u32) -> std::io::Result<InterpreterPool> {
        InterpreterPool::spending(workers, gil, max_n, Duration::ZERO)
    }

    /// As [`InterpreterPool::new`], each interpreter spending `hop` of work under its own
    /// GIL on every job before computing it: entering it and compiling the job's text.
    pub fn spending(
        workers: usize,
        gil: GilConfig,
        max_n: u32,
        hop: Duration,
    ) -> std::io::Result<InterpreterPool> {
        InterpreterPool::with_runner(workers, gil, (max_n, hop), run_copied)
    }

    fn with_runner(
        workers: usize,
        gil: GilConfig,
        (max_n, hop): (u32, Duration),
        runner: Runner,
    ) -> std::io::Result<InterpreterPool> {
        let (queue, tasks) = JobQueue::new();
        let workers = workers.max(1);
        let inner = Arc::new(Inner {
            queue,
            tasks,
            // A trace follows the main interpreter's lock only.
            gil: GilConfig {
                trace_capacity: None,
                ..gil
            },
            max_n,
            hop,
            runner,
            gils: Mutex::new(vec![None; workers]),
        });
        for index in 0..workers {
            start_interpreter(&inner, index)?;
        }
        Ok(InterpreterPool { inner })
    }

    /// Each interpreter's GIL figures, in worker order (none without a GIL).
    pub fn gil_reports(&self) -> Vec<GilReport> {
        lock(&self.inner.gils)
            .iter()
            .flatten()
            .map(Gil::report)
            .collect()
    }
}

/// Starts interpreter `index` on a thread of its own.
fn start_interpreter(inner: &Arc<Inner>, index: usize) -> std::io::Result<()> {
    let gil = inner.gil.lock();
    lock(&inner.gils)[index] = gil.clone();
    let shared = Arc::clone(inner);
    let worker = thread::Builder::new()
        .name(format!("clab-interpreter-{index}"))
        .spawn(move || run_interpreter(&shared, index, gil.as_ref()))?;
    inner.queue.add_worker(worker);
    Ok(())
}

/// An interpreter's life: take a job, compute it on the copied request, until the queue
/// closes or a job panics (then a fresh interpreter replaces this one).
fn run_interpreter(inner: &Arc<Inner>, index: usize, gil: Option<&Gil>) {
    let mut thread = PythonThread::attach(gil, &format!("interpreter {index}"));
    while let Some(task) = thread.allow_threads(|| inner.tasks.take()) {
        if !task.completer.start() {
            continue;
        }
        hop::spend(inner.hop, &mut thread);
        // Copied out of the submitting interpreter: only the text crosses.
        let request = task.request.to_string();
        let computed = catch_unwind(AssertUnwindSafe(|| {
            (inner.runner)(&request, inner.max_n, &mut thread)
        }));
        match computed {
            Ok(reply) => task
                .completer
                .finish(Ok(Reply::for_request(&task.request, &reply))),
            Err(_) => {
                task.completer
                    .finish(Ok(Reply::Error("interpreter died".into())));
                tracing::warn!(index, "an interpreter died in a job; starting a fresh one");
                // This thread's GIL goes with it; the queue may already be closing.
                drop(thread);
                if inner.queue.is_open()
                    && let Err(error) = start_interpreter(inner, index)
                {
                    tracing::error!(%error, index, "cannot start a fresh interpreter");
                }
                return;
            }
        }
    }
}

/// The copied request, parsed again and computed; the reply handed back as text.
fn run_copied(request: &str, max_n: u32, interpreter: &mut PythonThread) -> String {
    work::answer_copied(request.as_bytes(), max_n, interpreter)
}

impl Executor for InterpreterPool {
    fn submit(&self, request: Request) -> Result<JobFuture, PoolError> {
        self.inner.queue.submit(request)
    }

    fn shutdown(&self, wait: bool) {
        self.inner.queue.close(wait);
    }
}

impl Drop for InterpreterPool {
    fn drop(&mut self) {
        self.shutdown(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gil::Variant;
    use crate::work::Free;

    fn new_gil() -> GilConfig {
        GilConfig::new(Variant::New)
    }

    #[test]
    fn computes_copied_requests_in_interpreters_of_their_own() {
        let pool = InterpreterPool::new(2, new_gil(), 45).unwrap();
        let replies: Vec<_> = pool.map((1..15).map(Request::Fib)).unwrap().collect();
        let expected: Vec<_> = (1..15)
            .map(|n| Ok(Reply::Fib(work::fib(n, &mut Free))))
            .collect();
        assert_eq!(replies, expected);
        let gils = pool.gil_reports();
        assert_eq!(gils.len(), 2, "one GIL per interpreter");
        assert!(gils.iter().all(|gil| gil.variant == "new"), "{gils:?}");
    }

    /// Panics on `fib 13`, computes everything else.
    fn dies_on_thirteen(request: &str, max_n: u32, interpreter: &mut PythonThread) -> String {
        assert_ne!(request, "fib 13", "a job that kills its interpreter");
        run_copied(request, max_n, interpreter)
    }

    #[test]
    fn a_job_that_kills_its_interpreter_fails_and_a_fresh_one_takes_its_place() {
        // One interpreter: only a fresh one can answer after it dies.
        let pool =
            InterpreterPool::with_runner(1, new_gil(), (45, Duration::ZERO), dies_on_thirteen)
                .unwrap();
        assert_eq!(
            pool.submit(Request::Fib(13)).unwrap().wait(),
            Ok(Reply::Error("interpreter died".into()))
        );
        assert_eq!(
            pool.submit(Request::Fib(12)).unwrap().wait(),
            Ok(Reply::Fib(144))
        );
        assert_eq!(pool.gil_reports().len(), 1, "still one interpreter");
    }
}
