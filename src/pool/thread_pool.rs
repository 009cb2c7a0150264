//! A fixed pool of threads taking jobs from one queue.

use std::thread;
use std::time::Duration;

use crate::gil::Gil;
use crate::pool::{Executor, JobFuture, JobQueue, PoolError, Tasks, hop};
use crate::protocol::Request;
use crate::work::{self, Free, Interpreter};

#[derive(Debug)]
pub struct ThreadPool {
    queue: JobQueue,
}

impl ThreadPool {
    /// Starts `workers` threads; with a `gil`, each attaches to it, as a Python thread would.
    pub fn new(workers: usize, gil: Option<Gil>) -> std::io::Result<ThreadPool> {
        ThreadPool::spending(workers, gil, Duration::ZERO)
    }

    /// As [`ThreadPool::new`], each worker spending `hop` of interpreter work on every job
    /// before it computes it: the part of an executor's hop CPython runs on its worker
    /// (taking the work item, setting the future's result).
    pub fn spending(
        workers: usize,
        gil: Option<Gil>,
        hop: Duration,
    ) -> std::io::Result<ThreadPool> {
        let (queue, tasks) = JobQueue::new();
        let pool = ThreadPool { queue };
        for index in 0..workers.max(1) {
            let (tasks, gil) = (tasks.clone(), gil.clone());
            let worker = thread::Builder::new()
                .name(format!("clab-thread-pool-{index}"))
                .spawn(move || match gil {
                    None => run_tasks(&tasks, hop, &mut Free),
                    Some(gil) => {
                        run_tasks(&tasks, hop, &mut gil.attach(format!("thread pool {index}")))
                    }
                })?;
            pool.queue.add_worker(worker);
        }
        Ok(pool)
    }
}

fn run_tasks(tasks: &Tasks, hop: Duration, interpreter: &mut impl Interpreter) {
    while let Some(task) = interpreter.allow_threads(|| tasks.take()) {
        if task.completer.start() {
            hop::spend(hop, interpreter);
            let reply = work::run(&task.request, interpreter);
            task.completer.finish(Ok(reply));
        }
    }
}

impl Executor for ThreadPool {
    fn submit(&self, request: Request) -> Result<JobFuture, PoolError> {
        self.queue.submit(request)
    }

    fn shutdown(&self, wait: bool) {
        self.queue.close(wait);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shutdown(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::JobError;
    use crate::protocol::Reply;
    use std::time::{Duration, Instant};

    #[test]
    fn runs_jobs_and_maps_in_order() {
        let pool = ThreadPool::new(2, None).unwrap();
        let replies: Vec<_> = pool.map((0..20).map(Request::Fib)).unwrap().collect();
        let expected: Vec<_> = (0..20)
            .map(|n| Ok(Reply::Fib(work::fib(n, &mut Free))))
            .collect();
        assert_eq!(replies, expected);
    }

    #[test]
    fn two_workers_run_two_jobs_at_once_and_a_queued_one_can_be_cancelled() {
        let pool = ThreadPool::new(2, None).unwrap();
        let started = Instant::now();
        let jobs: Vec<_> = (0..3)
            .map(|_| pool.submit(Request::Sleep(200)).unwrap())
            .collect();
        // Two workers, so the third job is still queued behind two 200 ms sleeps.
        assert!(jobs[2].cancel());
        assert_eq!(jobs[2].wait(), Err(JobError::Cancelled));
        for job in &jobs[..2] {
            assert_eq!(job.wait(), Ok(Reply::Slept(200)));
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(390),
            "the two sleeps ran one after the other: {took:?}"
        );
    }

    #[test]
    fn a_shut_down_pool_refuses_jobs_and_finishes_queued_ones() {
        let pool = ThreadPool::new(1, None).unwrap();
        let queued: Vec<_> = (0..5)
            .map(|n| pool.submit(Request::Fib(n)).unwrap())
            .collect();
        pool.shutdown(true);
        assert!(queued.iter().all(|job| job.is_done()));
        assert_eq!(
            pool.submit(Request::Fib(1)).unwrap_err(),
            PoolError::ShutDown
        );
    }
}
