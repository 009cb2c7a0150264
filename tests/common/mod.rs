//! Helpers for integration tests: run the real `clab` binary on port 0 and talk to it over
//! real TCP, with every wait bounded and every process reaped.

#![allow(dead_code)] // each test file uses its own part of the helpers

pub mod nats;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long any single wait in a test may take before the test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Every model's name, from the library's own list.
pub fn models() -> Vec<&'static str> {
    clab::server::Model::ALL
        .iter()
        .map(|model| model.name())
        .collect()
}

/// Starts `model` with `extra` options and, where the model has workers, two of them — so
/// the concurrent models can overlap on two cores.
pub fn start_model(model: &str, extra: &[&str]) -> Server {
    let parsed =
        <clab::server::Model as clab::choice::Choice>::from_name(model).expect("a model name");
    let mut args = Vec::new();
    if parsed.uses_workers() {
        args.extend(["--workers", "2"]);
    }
    args.extend_from_slice(extra);
    Server::start(model, &args)
}

pub fn clab() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clab"));
    command.env("RUST_LOG", "warn");
    // Broker credentials from the environment of whoever runs the tests are not the tests'.
    for variable in clab::pool::broker::CREDENTIAL_VARIABLES {
        command.env_remove(variable);
    }
    command
}

/// Runs `command` to its end and returns what it printed, killing it and failing the test
/// if it runs past `limit`.
pub fn output_within(command: &mut Command, limit: Duration) -> std::process::Output {
    output_if_it_runs(command, limit).expect("start the command")
}

/// Waits for `child` to exit by itself, killing it and failing the test past `limit`.
pub fn exit_within(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a child ran past {limit:?}: killed");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// As [`output_within`], for a program that may not exist: `None` when it cannot start.
pub fn output_if_it_runs(command: &mut Command, limit: Duration) -> Option<std::process::Output> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    Some(wait_within(child, limit))
}

/// Waits for `child` (its output piped), killing it and failing the test past `limit`.
pub fn wait_within(mut child: Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    // Drain both pipes while waiting, so a chatty child never blocks on a full pipe.
    let read = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = read(Box::new(child.stdout.take().expect("piped stdout")));
    let err = read(Box::new(child.stderr.take().expect("piped stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the command") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the command ran past {limit:?} and was killed");
        }
        thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: out.join().expect("the stdout reader"),
        stderr: err.join().expect("the stderr reader"),
    }
}

/// A `clab serve` child process, killed and reaped when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `clab serve --model <model> --addr 127.0.0.1:0 <extra…>` and waits for its
    /// address.
    pub fn start(model: &str, extra: &[&str]) -> Server {
        let mut command = clab();
        command
            .args(["serve", "--model", model, "--addr", "127.0.0.1:0"])
            .args(extra);
        Server::spawn(command)
    }

    /// As [`Server::start`], with the server and every thread and process it will start
    /// pinned to `cpu` from before it runs (`sched_setaffinity` between fork and exec).
    pub fn start_on(model: &str, extra: &[&str], cpu: usize) -> Server {
        let mut command = clab();
        command
            .args(["serve", "--model", model, "--addr", "127.0.0.1:0"])
            .args(extra);
        pin_command(&mut command, cpu);
        Server::spawn(command)
    }

    /// Starts any server that, like `clab serve`, prints "listening on HOST:PORT" on its
    /// first line of output once ready; waits for it. The lab has its own reader of that
    /// line (`lab::process::ChildServer`), kept apart on purpose: these tests read the
    /// binary's output as a user's script would, not through the code they test.
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("start the server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut first = String::new();
            let _ = BufReader::new(stdout).read_line(&mut first);
            let _ = sender.send(first);
        });
        let line = match receiver.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server printed no address");
            }
        };
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"));
        Server { child, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("signal the server");
    }

    /// Waits for the server to exit on its own, failing the test after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {limit:?}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A line-protocol client with bounded reads.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the server");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .expect("send to the server");
    }

    /// Reads one reply line, without its newline.
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read a reply");
        assert!(
            line.ends_with('\n'),
            "connection closed mid-reply or before it: {line:?}"
        );
        line.pop();
        line
    }

    /// Sends `line` with a newline and returns the reply.
    pub fn request(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        self.read_line()
    }

    /// Whether the server has closed the connection with nothing more to say: end of
    /// file, or a reset because it closed with our bytes unread.
    pub fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// Where a process's threads may run and last ran: its CPU affinity and, per thread, the
/// name and the CPU it was last seen on (from /proc), for the record of a measurement.
pub fn placement(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let allowed = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map_or("?", str::trim)
        .to_owned();
    let mut threads = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            // The name is in parentheses and may hold spaces; the fields after it are plain.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let name = &stat[open + 1..close];
            // Field 39 (processor) is the 37th after the name's closing parenthesis.
            let cpu = stat[close + 1..].split_whitespace().nth(36).unwrap_or("?");
            threads.push(format!("{name}@cpu{cpu}"));
        }
    }
    threads.sort();
    format!(
        "pid {pid} allowed on cpus {allowed}; threads: {}",
        threads.join(", ")
    )
}

/// Waits until `condition` holds, failing the test with `what` after `PATIENCE`.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Whether process `pid` still has an entry in /proc (a zombie counts: nobody reaped it).
pub fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits until none of `pids` exists any more: stopped and reaped.
pub fn all_reaped(pids: &[u32], whose: &str) {
    eventually(&format!("{whose} processes {pids:?} are reaped"), || {
        !pids.iter().any(|&pid| exists(pid))
    });
}

/// Waits until process `pid` has died (a zombie awaiting its reaper, or gone), failing the
/// test after `PATIENCE`.
pub fn wait_dead(pid: u32) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let close = stat.rfind(')')?;
                stat[close + 1..]
                    .split_whitespace()
                    .next()
                    .map(str::to_owned)
            });
        if matches!(state.as_deref(), None | Some("Z" | "X")) {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} did not die");
        thread::sleep(Duration::from_millis(5));
    }
}

/// The process ids of `pid`'s children (from /proc, over all its threads).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Open descriptors and threads of `pid` and its child processes, from /proc.
pub fn resources(pid: u32) -> (usize, usize) {
    let count = |path: String| std::fs::read_dir(path).map_or(0, |entries| entries.count());
    std::iter::once(pid)
        .chain(children(pid))
        .fold((0, 0), |(fds, threads), pid| {
            (
                fds + count(format!("/proc/{pid}/fd")),
                threads + count(format!("/proc/{pid}/task")),
            )
        })
}

/// Waits until the server's descriptors and threads are back to `baseline` or below,
/// failing the test with what leaked after `PATIENCE`.
pub fn settles_to(server: &Server, baseline: (usize, usize)) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = resources(server.pid());
        if now.0 <= baseline.0 && now.1 <= baseline.1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "leak: (descriptors, threads) {now:?}, before {baseline:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Two CPUs for a measurement: the server's and the load's; the same one on a single-CPU
/// machine.
pub fn server_and_load_cpus() -> (usize, usize) {
    let allowed = nix::sched::sched_getaffinity(Pid::from_raw(0)).expect("read the CPU set");
    let cpus: Vec<usize> = (0..nix::sched::CpuSet::count())
        .filter(|&cpu| allowed.is_set(cpu).unwrap_or(false))
        .collect();
    (cpus[0], *cpus.last().unwrap())
}

/// Makes `command`'s process, and every thread and process it will start, run on `cpu` from
/// before it runs (`sched_setaffinity` between fork and exec).
pub fn pin_command(command: &mut Command, cpu: usize) {
    use std::os::unix::process::CommandExt;
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).expect("a CPU number within the set");
    // SAFETY: sched_setaffinity is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            nix::sched::sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)
        });
    }
}

/// Pins the calling thread (and the threads it starts afterwards) to `cpu`.
pub fn pin_this_thread(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).expect("a CPU number within the set");
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set).expect("pin the test thread");
}

/// Pins every thread `pid` has now to `cpu` (threads started later inherit from theirs).
pub fn pin_process(pid: u32, cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).unwrap();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|tid| tid.parse::<i32>().ok())
        {
            let _ = nix::sched::sched_setaffinity(Pid::from_raw(tid), &set);
        }
    }
}

/// The server's `stats` reply.
pub fn stats(server: &Server) -> serde_json::Value {
    let mut client = server.connect();
    serde_json::from_str(&client.request("stats")).expect("stats is JSON")
}

/// One timing-shaped test at a time on the machine, the library's unit tests included.
#[allow(unused_imports)] // Only the binaries that time work use it.
pub use clab::system::timing::{TimingLock, timing_lock};

/// Pins the calling thread to the `index`-th allowed CPU (modulo their number): timing tests
/// place each thread, so a run never depends on where the scheduler happened to put it.
pub fn pin_to_nth_cpu(index: usize) {
    // The process's set (its main thread's), not this thread's, which an earlier pin narrowed.
    let allowed = nix::sched::sched_getaffinity(nix::unistd::getpid()).expect("read the CPU set");
    let cpus: Vec<usize> = (0..nix::sched::CpuSet::count())
        .filter(|&cpu| allowed.is_set(cpu).unwrap_or(false))
        .collect();
    pin_this_thread(cpus[index % cpus.len()]);
}
