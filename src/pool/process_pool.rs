//! A pool of worker processes. Each worker has a manager thread here that owns the child,
//! feeds it one job at a time over its stdin, reads the reply from its stdout, and replaces
//! it when it dies — failing only the job it had in flight, unlike CPython's pool, where one
//! dead worker breaks the whole pool. Given a hop cost, the manager is a Python thread of
//! the server: it spends that interpreter work around each job, as CPython's feeder and
//! manager threads pickle and unpickle under the GIL.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::gil::{Gil, PythonThread};
use crate::pool::{Executor, JobFuture, JobQueue, PoolError, Task, Tasks, hop};
use crate::protocol::{Reply, Request};
use crate::sync::{Taken, Yields, lock};
use crate::work::Interpreter;

/// How often an idle manager checks that its worker is still alive, so a worker killed
/// while idle is replaced promptly rather than at its next job.
const LIVENESS_CHECK: Duration = Duration::from_millis(100);

/// How long a worker asked to stop (its stdin closed) may take before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// How to start a worker process.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl WorkerCommand {
    /// `<this executable> worker --max-n <max_n>`: the `spawn` start method, re-executing the
    /// binary rather than forking a process that already runs threads.
    pub fn current_exe(max_n: u32) -> io::Result<WorkerCommand> {
        Ok(WorkerCommand::clab(std::env::current_exe()?, max_n))
    }

    /// `<program> worker --max-n <max_n>`, for a `clab` binary at `program`.
    pub fn clab(program: impl Into<PathBuf>, max_n: u32) -> WorkerCommand {
        WorkerCommand {
            program: program.into(),
            args: vec!["worker".into(), "--max-n".into(), max_n.to_string()],
        }
    }
}

#[derive(Debug)]
pub struct ProcessPool {
    /// The job queue, with one manager thread per worker process taking from it.
    queue: JobQueue,
    /// The live worker of each slot, by process id.
    pids: Arc<Mutex<Vec<Option<u32>>>>,
}

impl ProcessPool {
    /// Starts `workers` worker processes (at least one). Fails if a worker cannot be started,
    /// after stopping those that were.
    pub fn new(workers: usize, command: WorkerCommand) -> io::Result<ProcessPool> {
        ProcessPool::spending(workers, command, (None, Duration::ZERO))
    }

    /// As [`ProcessPool::new`], each manager thread spending `hop` of interpreter work on
    /// every job, holding `gil` if there is one: half before it writes the job, half after
    /// it reads the reply.
    pub fn spending(
        workers: usize,
        command: WorkerCommand,
        (gil, hop): (Option<Gil>, Duration),
    ) -> io::Result<ProcessPool> {
        let (queue, tasks) = JobQueue::new();
        let workers = workers.max(1);
        let pool = ProcessPool {
            queue,
            pids: Arc::new(Mutex::new(vec![None; workers])),
        };
        for slot in 0..workers {
            let manager = Manager {
                slot,
                command: command.clone(),
                tasks: Arc::clone(&tasks),
                pids: Arc::clone(&pool.pids),
                gil: gil.clone(),
                hop,
            };
            // Each worker is started by its manager thread, which outlives it: a worker dies
            // with the thread that started it (PR_SET_PDEATHSIG). The first start is reported
            // back, so a bad command fails `new` at once; the pool's drop stops the rest.
            let (started, outcome) = std::sync::mpsc::channel();
            let handle = thread::Builder::new()
                .name(format!("clab-process-pool-{slot}"))
                .spawn(move || match Worker::spawn(&manager.command) {
                    Ok(worker) => {
                        lock(&manager.pids)[manager.slot] = Some(worker.pid());
                        let _ = started.send(Ok(()));
                        manager.run(worker);
                    }
                    Err(error) => {
                        let _ = started.send(Err(error));
                    }
                })?;
            pool.queue.add_worker(handle);
            outcome
                .recv()
                .map_err(|_| io::Error::other("a pool manager thread died"))??;
        }
        Ok(pool)
    }

    /// The process ids of the live workers.
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.pids).iter().flatten().copied().collect()
    }
}

impl Executor for ProcessPool {
    fn submit(&self, request: Request) -> Result<JobFuture, PoolError> {
        self.queue.submit(request)
    }

    fn shutdown(&self, wait: bool) {
        self.queue.close(wait);
    }
}

impl Drop for ProcessPool {
    /// Every worker is stopped and reaped before the pool is gone.
    fn drop(&mut self) {
        self.shutdown(true);
    }
}

struct Manager {
    slot: usize,
    command: WorkerCommand,
    tasks: Tasks,
    pids: Arc<Mutex<Vec<Option<u32>>>>,
    /// The server's GIL, which the manager takes to spend `hop`.
    gil: Option<Gil>,
    hop: Duration,
}

impl Manager {
    fn run(self, first: Worker) {
        let mut worker = Some(first);
        // A Python thread only when it has interpreter work to do.
        let gil = self.gil.as_ref().filter(|_| !self.hop.is_zero());
        let mut thread = PythonThread::attach(gil, &format!("process pool {}", self.slot));
        loop {
            self.replace_if_dead(&mut worker);
            match thread.allow_threads(|| self.tasks.take_timeout(LIVENESS_CHECK)) {
                Taken::Item(task) => self.run_task(task, &mut worker, &mut thread),
                Taken::TimedOut => {}
                Taken::Closed => {
                    if let Some(worker) = worker {
                        worker.stop();
                    }
                    lock(&self.pids)[self.slot] = None;
                    return;
                }
            }
        }
    }

    fn run_task(&self, task: Task, worker: &mut Option<Worker>, thread: &mut PythonThread) {
        if !task.completer.start() {
            return; // cancelled while queued
        }
        // A worker that died while idle is replaced first: its death costs no job.
        self.replace_if_dead(worker);
        let Some(live) = worker.as_mut() else {
            let reply = Reply::Error("no worker process could be started".into());
            return task.completer.finish(Ok(reply));
        };
        hop::spend(self.hop / 2, thread);
        let round_trip = || {
            live.send(&task.request)?;
            // CPython's feeder thread, the job written, waits for the next one while the
            // worker computes: on a free-threaded build that wait first yields the CPU.
            Yields::new().spend();
            live.reply()
        };
        match thread.allow_threads(round_trip) {
            Ok(line) => {
                hop::spend(self.hop - self.hop / 2, thread);
                task.completer
                    .finish(Ok(Reply::for_request(&task.request, &line)));
            }
            Err(error) => {
                tracing::warn!(slot = self.slot, pid = live.pid(), %error, "worker died during a job");
                task.completer
                    .finish(Ok(Reply::Error("worker died".into())));
                if let Some(dead) = worker.take() {
                    dead.reap();
                }
                lock(&self.pids)[self.slot] = None;
            }
        }
    }

    fn replace_if_dead(&self, worker: &mut Option<Worker>) {
        if worker.as_mut().is_some_and(|live| !live.has_exited()) {
            return;
        }
        if let Some(dead) = worker.take() {
            tracing::warn!(
                slot = self.slot,
                pid = dead.pid(),
                "worker exited while idle; replacing it"
            );
            dead.reap();
        }
        *worker = self.spawn();
    }

    /// Starts a worker for this slot; on failure logs, backs off and returns `None`.
    fn spawn(&self) -> Option<Worker> {
        let spawned = Worker::spawn(&self.command);
        lock(&self.pids)[self.slot] = spawned.as_ref().ok().map(Worker::pid);
        spawned
            .inspect_err(|error| {
                tracing::error!(slot = self.slot, %error, "cannot start a worker; retrying");
                thread::sleep(LIVENESS_CHECK);
            })
            .ok()
    }
}

/// One worker process and its pipes.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    line: String,
}

impl Worker {
    fn spawn(command: &WorkerCommand) -> io::Result<Worker> {
        let mut command_line = Command::new(&command.program);
        command_line
            .args(&command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        // SAFETY: runs in the forked child before exec and only makes the prctl system call,
        // which is async-signal-safe. The worker then dies with the manager thread that
        // started it (which outlives it), so no worker survives a killed server; a kernel
        // that refuses fails the start rather than leaving that unsaid.
        unsafe {
            command_line.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(io::Error::from)
            });
        }
        let mut child = command_line.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", command.program.display()),
            )
        })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("worker started without pipes"));
        };
        Ok(Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            line: String::new(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends one request; an error means the worker is gone.
    fn send(&mut self, request: &Request) -> io::Result<()> {
        writeln!(self.stdin, "{request}")?;
        self.stdin.flush()
    }

    /// Reads the reply line to the request sent; an error means the worker is gone.
    fn reply(&mut self) -> io::Result<String> {
        self.line.clear();
        if self.stdout.read_line(&mut self.line)? == 0 || !self.line.ends_with('\n') {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "worker closed its output",
            ));
        }
        self.line.pop();
        Ok(std::mem::take(&mut self.line))
    }

    /// Kills (if needed) and reaps a worker that has failed.
    fn reap(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the worker to exit by closing its input, then reaps it, killing it after a grace
    /// period if it does not go.
    fn stop(self) {
        let Worker {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let deadline = Instant::now() + EXIT_GRACE;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
