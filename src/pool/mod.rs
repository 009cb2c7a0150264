//! Executors: the `concurrent.futures` of this project. A job is a protocol
//! request; [`Executor::submit`] returns a [`JobFuture`] for its reply.
//!
//! - [`ThreadPool`]: N threads of this process (optionally attached to an emulated GIL);
//! - [`ProcessPool`]: N `clab worker` processes, re-executed from this binary like Python's
//!   `spawn` start method, speaking the line protocol over their stdin/stdout. A worker that
//!   dies fails only its in-flight job (`ERR worker died`) and is replaced;
//! - [`InterpreterPool`]: N emulated subinterpreters, threads of this process with a GIL
//!   each, to which requests and replies are copied;
//! - [`BrokerPool`]: `clab worker --nats` processes anywhere, reached through a NATS
//!   JetStream work queue ([`broker`]).

pub mod broker;
mod future;
pub mod hop;
mod interpreter_pool;
mod process_pool;
mod thread_pool;
pub mod worker;

pub use broker::BrokerPool;
pub use future::{JobError, JobFuture, JobOutcome};
pub use hop::{HopCost, HopCosts};
pub use interpreter_pool::InterpreterPool;
pub use process_pool::{ProcessPool, WorkerCommand};
pub use thread_pool::ThreadPool;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::pool::future::{Completer, job};
use crate::protocol::Request;
use crate::sync::{BlockingQueue, lock};

/// A submitted job on its way to a worker.
pub(crate) struct Task {
    pub request: Request,
    pub completer: Completer,
}

/// The queue a pool's workers take their jobs from.
pub(crate) type Tasks = Arc<BlockingQueue<Task>>;

/// What every pool shares: the queue their workers take jobs from, and those workers'
/// threads. Closing the queue lets the workers finish what is queued, then stop.
#[derive(Debug, Default)]
pub(crate) struct JobQueue {
    tasks: Tasks,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl JobQueue {
    /// An open queue, and the end the workers take from.
    pub fn new() -> (JobQueue, Tasks) {
        let queue = JobQueue::default();
        let tasks = Arc::clone(&queue.tasks);
        (queue, tasks)
    }

    pub fn add_worker(&self, worker: JoinHandle<()>) {
        lock(&self.workers).push(worker);
    }

    pub fn submit(&self, request: Request) -> Result<JobFuture, PoolError> {
        let (future, completer) = job();
        self.tasks
            .put(Task { request, completer })
            .map_err(|_| PoolError::ShutDown)?;
        Ok(future)
    }

    /// Whether the queue still takes jobs.
    pub fn is_open(&self) -> bool {
        self.tasks.is_open()
    }

    pub fn close(&self, wait: bool) {
        self.tasks.close();
        if wait {
            // Joined outside the lock, round after round: a worker that replaces itself adds
            // its successor while we wait (which then finds the queue closed and ends).
            loop {
                let workers: Vec<_> = lock(&self.workers).drain(..).collect();
                if workers.is_empty() {
                    break;
                }
                for worker in workers {
                    let _ = worker.join();
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("the pool is shut down and takes no more jobs")]
    ShutDown,
}

/// A pool that runs jobs and hands back futures of their replies.
pub trait Executor: Send + Sync {
    /// Queues `request`; the future completes with its reply.
    fn submit(&self, request: Request) -> Result<JobFuture, PoolError>;

    /// Submits every request at once and yields their outcomes in submission order.
    fn map(
        &self,
        requests: impl IntoIterator<Item = Request>,
    ) -> Result<impl Iterator<Item = JobOutcome>, PoolError>
    where
        Self: Sized,
    {
        let futures = requests
            .into_iter()
            .map(|request| self.submit(request))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(futures.into_iter().map(|future| future.wait()))
    }

    /// Takes no more jobs. Jobs already queued still run. With `wait`, returns only when
    /// they have finished and every worker thread or process has exited and been reaped.
    fn shutdown(&self, wait: bool);
}

/// Any pool, chosen at run time (the offload target): threads, worker processes,
/// interpreters, or workers behind a broker.
#[derive(Debug)]
pub enum AnyPool {
    Threads(ThreadPool),
    Processes(ProcessPool),
    Interpreters(InterpreterPool),
    Broker(BrokerPool),
}

impl Executor for AnyPool {
    fn submit(&self, request: Request) -> Result<JobFuture, PoolError> {
        match self {
            AnyPool::Threads(pool) => pool.submit(request),
            AnyPool::Processes(pool) => pool.submit(request),
            AnyPool::Interpreters(pool) => pool.submit(request),
            AnyPool::Broker(pool) => pool.submit(request),
        }
    }

    fn shutdown(&self, wait: bool) {
        match self {
            AnyPool::Threads(pool) => pool.shutdown(wait),
            AnyPool::Processes(pool) => pool.shutdown(wait),
            AnyPool::Interpreters(pool) => pool.shutdown(wait),
            AnyPool::Broker(pool) => pool.shutdown(wait),
        }
    }
}
