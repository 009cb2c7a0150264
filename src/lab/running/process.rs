//! Servers as child processes of the lab — and the brokers and broker workers some
//! experiments add: started pinned to the CPUs an experiment chose, waited for until they
//! say where they listen, read from `/proc` (memory, CPU time, their own children), and
//! always stopped and reaped — by [`ChildServer::stop`], or by `Drop` when an experiment
//! fails half-way.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sched::sched_setaffinity;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::lab::running::error::LabError;
use crate::lab::running::health::{Health, HealthLog, cpus_allowed, process_cpus};

/// How long a server may take to print its address.
const START_PATIENCE: Duration = Duration::from_secs(20);
/// The drain deadline the lab gives the servers it starts (`clab serve --drain-timeout`).
pub const SERVER_DRAIN: Duration = Duration::from_secs(4);
/// How long a server may take to drain and exit after SIGTERM before it is killed: its own
/// drain deadline, and a second more.
const STOP_PATIENCE: Duration = Duration::from_secs(SERVER_DRAIN.as_secs() + 1);

/// What kind of child a [`ChildServer`] is: how it says it is ready, and how it is asked
/// to stop cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    /// Prints "listening on HOST:PORT" as its first line (`clab serve`, CPython's reference
    /// server); stops on SIGTERM, after its drain.
    Server,
    /// `nats-server`: logs "Listening for client connections on HOST:PORT" on standard
    /// error; exits cleanly on SIGINT (SIGTERM makes it exit 1).
    Broker,
    /// `clab worker --nats`: no address, ready once started; stops on SIGTERM after the jobs
    /// in hand.
    Worker,
}

impl ChildKind {
    fn stop_signal(self) -> Signal {
        match self {
            ChildKind::Broker => Signal::SIGINT,
            ChildKind::Server | ChildKind::Worker => Signal::SIGTERM,
        }
    }
}

/// A running server (or broker, or broker worker: see [`ChildKind`]).
#[derive(Debug)]
pub struct ChildServer {
    /// What it is, e.g. "threads --gil new", for tables and errors.
    pub label: String,
    /// Where it listens (a worker listens nowhere: 127.0.0.1:0).
    pub addr: SocketAddr,
    kind: ChildKind,
    child: Option<Child>,
    /// Its health record: placement read back, how it exited.
    health: Option<(HealthLog, usize)>,
}

/// A process tree's memory and CPU, read from `/proc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    pub processes: usize,
    pub threads: u64,
    /// Resident memory summed over the tree (double-counts shared pages).
    pub rss_kib: u64,
    /// Proportional set size summed over the tree: shared pages split between sharers.
    pub pss_kib: u64,
    /// Virtual memory summed over the tree.
    pub virtual_kib: u64,
    /// User plus system CPU time of every thread in the tree.
    pub cpu_s: f64,
    /// Open sockets summed over the tree: the connections a server really holds, which
    /// may lag behind those its clients have opened (a slow accept loop leaves them in the
    /// kernel's backlog, where they cost the server nothing yet).
    pub sockets: u64,
}

impl ChildServer {
    /// Starts `command` pinned to `cpus` and waits until it says where it listens, as its
    /// `kind` does. The child's standard error goes to `log`, which the error message quotes
    /// if it fails. `health` is the record its placement and exit go to.
    pub fn start(
        mut command: Command,
        (label, kind): (impl Into<String>, ChildKind),
        cpus: &[usize],
        log: &Path,
        health: Option<(HealthLog, usize)>,
    ) -> Result<ChildServer, LabError> {
        let label = label.into();
        place(&mut command, cpus).map_err(|e| LabError::Placement(cpus.to_vec(), e))?;
        let log_file = std::fs::File::create(log).map_err(|e| LabError::Io(log.into(), e))?;
        command.stdin(Stdio::null()).env("RUST_LOG", "warn");
        match kind {
            ChildKind::Server => command.stdout(Stdio::piped()).stderr(log_file),
            ChildKind::Broker => command.stdout(Stdio::null()).stderr(Stdio::piped()),
            ChildKind::Worker => command.stdout(Stdio::null()).stderr(log_file),
        };
        let program = format!("{:?}", command.get_program());
        let mut child = command
            .spawn()
            .map_err(|e| LabError::Start(label.clone(), format!("cannot run {program}: {e}")))?;
        let (sender, receiver) = mpsc::channel();
        match kind {
            ChildKind::Server => {
                let stdout = child.stdout.take().expect("stdout is piped");
                // The reader keeps draining stdout after the first line, so a chatty server
                // never blocks on a full pipe; it ends when the server does.
                std::thread::spawn(move || {
                    let mut lines = BufReader::new(stdout).lines();
                    let first = lines.next().and_then(Result::ok).unwrap_or_default();
                    let address = first
                        .trim()
                        .strip_prefix("listening on ")
                        .map(str::to_owned);
                    let _ = sender.send((first.clone(), address));
                    for _ in lines {}
                });
            }
            ChildKind::Broker => {
                let stderr = child.stderr.take().expect("stderr is piped");
                let mut log_file = log_file_for_broker(log)?;
                // Copies the broker's log to the file, telling where it listens on the way.
                std::thread::spawn(move || {
                    let marker = "Listening for client connections on ";
                    let mut sender = Some(sender);
                    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                        let _ = writeln!(log_file, "{line}");
                        if let Some((_, address)) = line.split_once(marker)
                            && let Some(sender) = sender.take()
                        {
                            let _ = sender.send((line.clone(), Some(address.trim().to_owned())));
                        }
                    }
                });
            }
            ChildKind::Worker => {
                let _ = sender.send((String::new(), Some("127.0.0.1:0".into())));
            }
        }
        let mut server = ChildServer {
            label: label.clone(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            kind,
            child: Some(child),
            health,
        };
        let (first, address) = receiver.recv_timeout(START_PATIENCE).unwrap_or_default();
        match address.and_then(|addr| addr.parse().ok()) {
            Some(addr) => {
                server.addr = addr;
                Ok(server)
            }
            None => {
                // Never ready, so nothing to drain.
                server.kill();
                let log = std::fs::read_to_string(log).unwrap_or_default();
                let last = log.lines().last().unwrap_or("(nothing on stderr)").trim();
                Err(LabError::Start(
                    label,
                    format!("it printed {first:?} instead of its address; its last words: {last}"),
                ))
            }
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends one request on a fresh connection and returns the reply line.
    pub fn ask(&self, request: &str) -> Result<String, LabError> {
        let error = |e: std::io::Error| LabError::Ask(self.label.clone(), request.into(), e);
        let mut stream = TcpStream::connect(self.addr).map_err(error)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(error)?;
        stream
            .write_all(format!("{request}\n").as_bytes())
            .map_err(error)?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).map_err(error)?;
        Ok(line.trim_end().to_owned())
    }

    /// Memory and CPU of the server and every process below it, now.
    pub fn usage(&self) -> Usage {
        let mut usage = Usage::default();
        if let Some(pid) = self.pid() {
            add_tree(pid as i32, &mut usage, 0);
        }
        usage
    }

    /// Reads back the CPUs of every thread of the server and of the processes below it
    /// into its health record.
    pub fn check_placement(&self) {
        let (Some((log, index)), Some(pid)) = (&self.health, self.pid()) else {
            return;
        };
        let mut tasks = Vec::new();
        tree_placement(pid as i32, &mut tasks, 0);
        log.update(*index, |record| {
            if tasks.is_empty() {
                record.observe(&format!("process {pid}"), None);
            }
            for (task, cpus) in &tasks {
                record.observe(task, Some(cpus));
            }
        });
    }

    /// SIGTERM, a bounded wait for the drain, then SIGKILL; always reaped. A server that
    /// died before, or exits other than cleanly, marks its health record.
    pub fn stop(mut self) {
        if self.child.is_some() {
            self.check_placement();
            let (how, abnormal) = self.terminate();
            self.record_exit(how, abnormal);
        }
    }

    /// Stops the child: SIGTERM, then as long as its drain may take, then SIGKILL; reaps it.
    /// Returns how it ended and whether that was abnormal.
    fn terminate(&mut self) -> (String, bool) {
        let Some(mut child) = self.child.take() else {
            return ("already stopped".into(), false);
        };
        let ended = match child.try_wait() {
            Ok(Some(status)) => (format!("died before it was stopped: {status}"), true),
            _ => {
                let signal = self.kind.stop_signal();
                let _ = kill(Pid::from_raw(child.id() as i32), signal);
                match wait_until(&mut child, Instant::now() + STOP_PATIENCE) {
                    Ok(Some(status)) => (format!("{status} after {signal}"), !status.success()),
                    _ => (
                        format!("did not exit within {STOP_PATIENCE:?} of {signal}; killed"),
                        true,
                    ),
                }
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        ended
    }

    /// SIGKILL and reap, for a server that never became ready.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn record_exit(&self, how: String, abnormal: bool) {
        if let Some((log, index)) = &self.health {
            log.update(*index, |record| record.exited(how, abnormal));
        }
    }
}

impl Drop for ChildServer {
    /// An experiment that ends early (an error, an interrupt) stops its servers as `stop`
    /// would — SIGTERM and their drain first — rather than killing them mid-request.
    fn drop(&mut self) {
        if self.child.is_some() {
            let (how, _) = self.terminate();
            self.record_exit(
                format!("stopped because the experiment ended before it: {how}"),
                false,
            );
        }
    }
}

/// The file a broker's log is copied to (created empty by `start`).
fn log_file_for_broker(log: &Path) -> Result<std::fs::File, LabError> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .map_err(|e| LabError::Io(log.into(), e))
}

/// Every task's CPU set in the process tree under `pid`: ("pid 12 task 14", [0]).
fn tree_placement(pid: i32, tasks: &mut Vec<(String, Vec<usize>)>, depth: usize) {
    let Ok(process) = procfs::process::Process::new(pid) else {
        return;
    };
    let Ok(threads) = process.tasks() else { return };
    for task in threads.flatten() {
        if let Some(cpus) = task.status().ok().and_then(cpus_allowed) {
            tasks.push((format!("process {pid} thread {}", task.tid), cpus));
        }
        if depth < 4 {
            for child in task.children().unwrap_or_default() {
                tree_placement(child as i32, tasks, depth + 1);
            }
        }
    }
}

fn add_tree(pid: i32, usage: &mut Usage, depth: usize) {
    let Ok(process) = procfs::process::Process::new(pid) else {
        return;
    };
    usage.processes += 1;
    if let Ok(status) = process.status() {
        usage.threads += status.threads;
        usage.rss_kib += status.vmrss.unwrap_or(0);
        usage.virtual_kib += status.vmsize.unwrap_or(0);
    }
    if let Ok(rollup) = process.smaps_rollup() {
        let pss: u64 = rollup
            .memory_map_rollup
            .0
            .iter()
            .filter_map(|map| map.extension.map.get("Pss"))
            .sum();
        usage.pss_kib += pss / 1024;
    }
    if let Ok(stat) = process.stat() {
        usage.cpu_s += (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64;
    }
    if let Ok(descriptors) = process.fd() {
        usage.sockets += descriptors
            .flatten()
            .filter(|fd| matches!(fd.target, procfs::process::FDTarget::Socket(_)))
            .count() as u64;
    }
    if depth > 4 {
        return;
    }
    let Ok(tasks) = process.tasks() else { return };
    for task in tasks.flatten() {
        for child in task.children().unwrap_or_default() {
            add_tree(child as i32, usage, depth + 1);
        }
    }
}

/// Polls `child` until it exits or `deadline` passes (`None`: still running).
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A process that only computes, pinned beside a server: a `clab worker` given one long
/// `spin`. It stands for a task that is not the server's competing for the server's CPU,
/// and is killed and reaped when dropped.
#[derive(Debug)]
pub struct BusyProcess {
    child: Child,
    /// Held open: at its end the worker would exit once the spin is done.
    _stdin: std::process::ChildStdin,
}

impl BusyProcess {
    /// The longest the spin may last, should the lab not stop it first.
    const SPIN: &str = "spin 60000\n";

    /// Starts one on `cpus`; its placement, read back once it computes, goes to `log`.
    pub fn start(clab: &Path, cpus: &[usize], log: &HealthLog) -> Result<BusyProcess, LabError> {
        Self::spawn(clab, cpus, log, false)
    }

    /// Starts one on `cpus` in the idle scheduling class: it takes no CPU time any other task
    /// wants, but keeps the CPUs from ever idling. A calibration runs beside one so that what
    /// it measures is the work of waking a thread, not the host's cost of bringing an idle
    /// virtual CPU back, which on some hosts doubles a pool's hop.
    pub fn start_idle(
        clab: &Path,
        cpus: &[usize],
        log: &HealthLog,
    ) -> Result<BusyProcess, LabError> {
        Self::spawn(clab, cpus, log, true)
    }

    fn spawn(
        clab: &Path,
        cpus: &[usize],
        log: &HealthLog,
        idle_class: bool,
    ) -> Result<BusyProcess, LabError> {
        let mut command = Command::new(clab);
        command.args(["worker", "--max-n", "1"]);
        place(&mut command, cpus).map_err(|e| LabError::Placement(cpus.to_vec(), e))?;
        if idle_class {
            // SAFETY: between fork and exec only an async-signal-safe call: one raw syscall.
            unsafe {
                command.pre_exec(crate::system::cpus::idle_class);
            }
        }
        let start_error = |e: std::io::Error| {
            LabError::Start("a busy process".into(), format!("cannot run {clab:?}: {e}"))
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(start_error)?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let written = stdin.write_all(Self::SPIN.as_bytes());
        let busy = BusyProcess {
            child,
            _stdin: stdin,
        };
        written.map_err(start_error)?;
        let mut record = Health::new("a busy process beside the server", cpus);
        let pid = busy.child.id();
        record.observe(
            &format!("process {pid}"),
            process_cpus(pid as i32).as_deref(),
        );
        log.add(record);
        Ok(busy)
    }
}

impl Drop for BusyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// [`run_to_completion`], pinned to `cpus` from before it runs (its threads and children
/// inherit the set); its placement, read back once it runs, goes to `log` as `what`.
pub fn run_pinned(
    mut command: Command,
    cpus: &[usize],
    limit: Duration,
    (log, what): (&HealthLog, &str),
) -> Result<String, std::io::Error> {
    place(&mut command, cpus).map_err(std::io::Error::from)?;
    run_watched(command, limit, |pid| {
        let mut record = Health::new(what, cpus);
        let actual = process_cpus(pid as i32);
        record.observe(&format!("process {pid}"), actual.as_deref());
        log.add(record);
    })
}

/// Makes `command`'s process start pinned to `cpus`, and die with the lab.
fn place(command: &mut Command, cpus: &[usize]) -> nix::Result<()> {
    let set = crate::system::cpus::cpu_set(cpus)?;
    // SAFETY: between fork and exec only an async-signal-safe call: one raw syscall.
    unsafe {
        command.pre_exec(move || {
            sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)
        });
    }
    die_with_the_lab(command);
    Ok(())
}

/// Makes `command`'s process the lab's alone to stop: in a process group of its own, so a
/// Ctrl-C at the terminal reaches only the lab (which stops it in order, drain first), and
/// killed by the kernel if the lab dies outright (parent-death signal).
fn die_with_the_lab(command: &mut Command) {
    command.process_group(0);
    // SAFETY: between fork and exec only an async-signal-safe call: one raw syscall.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

/// Runs a short program to completion with a deadline, returning its standard output. It
/// dies with the lab, as every child of the lab does.
pub fn run_to_completion(mut command: Command, limit: Duration) -> Result<String, std::io::Error> {
    die_with_the_lab(&mut command);
    run_watched(command, limit, |_| {})
}

/// [`run_to_completion`], calling `started` with the child's pid once it runs.
fn run_watched(
    mut command: Command,
    limit: Duration,
    started: impl FnOnce(u32),
) -> Result<String, std::io::Error> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    started(child.id());
    // Both pipes are drained as the program writes: one read only after it exits would
    // stall a program that fills the pipe's buffer until its deadline.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let reader = drain(Box::new(child.stdout.take().expect("piped")));
    let errors = drain(Box::new(child.stderr.take().expect("piped")));
    let Some(status) = wait_until(&mut child, Instant::now() + limit)? else {
        // The whole group, so the program's own children (a pool's workers) go with it; the
        // program is not reaped yet, so its pid, the group's id, cannot have been reused.
        let _ = nix::sys::signal::killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let _ = child.wait();
        return Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("still running after {limit:?}"),
        ));
    };
    let out = reader.join().unwrap_or_default();
    let err = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "{status}: {}",
            err.lines().last().unwrap_or("").trim()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both pipes are drained while the program runs: one that writes more to standard error
    /// than a pipe holds (64 KiB) still ends at once, its output intact.
    #[test]
    fn a_program_writing_a_megabyte_to_stderr_finishes_at_once() {
        let mut command = Command::new("sh");
        command.args(["-c", "yes | head -c 1000000 >&2; echo done"]);
        let started = Instant::now();
        let out = run_to_completion(command, Duration::from_secs(20)).unwrap();
        assert_eq!(out, "done\n");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let mut failing = Command::new("sh");
        failing.args(["-c", "yes | head -c 1000000 >&2; echo why >&2; exit 3"]);
        let error = run_to_completion(failing, Duration::from_secs(20)).unwrap_err();
        assert!(error.to_string().ends_with(": why"), "{error}");
    }
}
