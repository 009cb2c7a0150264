//! Faults under load: worker processes and prefork children killed mid-request, SIGTERM
//! while clients are busy, and a server killed outright. No request is lost silently —
//! each gets its reply, an `ERR` line, or sees its connection close — and no process is
//! left behind.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::{PATIENCE, Server, children};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What became of a client's requests.
#[derive(Debug, Default)]
struct Tally {
    answered: u64,
    err_lines: u64,
    closed: u64,
}

/// A closed-loop client sending `fib 27` until `stop`: every request must end in a correct
/// reply, an `ERR` line, or a closed connection (then it reconnects) — never in silence.
fn client(addr: SocketAddr, stop: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    'connections: while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = TcpStream::connect(addr) else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        while !stop.load(Ordering::Relaxed) {
            if writer.write_all(b"fib 27\n").is_err() {
                tally.closed += 1;
                continue 'connections;
            }
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => {
                    tally.closed += 1;
                    continue 'connections;
                }
                Ok(_) if line == "196418\n" => tally.answered += 1,
                Ok(_) if line.starts_with("ERR ") => tally.err_lines += 1,
                Ok(_) => panic!("a wrong reply: {line:?}"),
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                    tally.closed += 1;
                    continue 'connections;
                }
                Err(error) => panic!("a request was lost silently: {error}"),
            }
        }
    }
    tally
}

/// Runs four clients while `act` does its worst; returns their tallies.
fn under_load(server: &Server, act: impl FnOnce()) -> Vec<Tally> {
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| client(server.addr, &stop)))
            .collect();
        thread::sleep(Duration::from_millis(300));
        act();
        thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    })
}

fn sigkill(pid: u32) {
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
}

#[test]
fn killed_pool_workers_fail_only_their_requests() {
    let server = Server::start("procpool", &["--workers", "2"]);
    let tallies = under_load(&server, || {
        for _ in 0..3 {
            for worker in children(server.pid()) {
                sigkill(worker);
            }
            thread::sleep(Duration::from_millis(150));
        }
    });
    eprintln!("procpool: {tallies:?}");
    assert!(
        tallies.iter().map(|t| t.err_lines).sum::<u64>() >= 1,
        "some request saw its worker die"
    );
    assert_eq!(
        tallies.iter().map(|t| t.closed).sum::<u64>(),
        0,
        "a worker's death closes no connection"
    );
    assert!(tallies.iter().all(|t| t.answered > 0));
    let mut client = server.connect();
    assert_eq!(client.request("fib 20"), "6765");
}

#[test]
fn killed_prefork_children_close_their_connections_and_are_replaced() {
    let server = Server::start("prefork", &["--workers", "2"]);
    let tallies = under_load(&server, || {
        for _ in 0..2 {
            for child in children(server.pid()) {
                sigkill(child);
            }
            thread::sleep(Duration::from_millis(200));
        }
    });
    eprintln!("prefork: {tallies:?}");
    assert!(
        tallies.iter().map(|t| t.closed).sum::<u64>() >= 1,
        "a dying child's clients see it close"
    );
    let mut client = server.connect();
    assert_eq!(
        client.request("fib 20"),
        "6765",
        "replacement children serve"
    );
}

fn sigterm_under_load_drains(model: &str) {
    let mut server = Server::start(model, &["--workers", "2"]);
    let kids = children(server.pid());
    let tallies = under_load(&server, || server.signal(Signal::SIGTERM));
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{model}: exit status {status:?}");
    eprintln!("{model}: {tallies:?}");
    // (Prefork serves as many clients at once as it has children; the others wait their
    // turn, and at shutdown see their connection close, which `client` checks.)
    assert!(tallies.iter().map(|t| t.answered).sum::<u64>() > 0);
    common::all_reaped(&kids, "the server's child");
}

#[test]
fn sigterm_under_load_drains_threads() {
    sigterm_under_load_drains("threads");
}

#[test]
fn sigterm_under_load_drains_procpool() {
    sigterm_under_load_drains("procpool");
}

#[test]
fn sigterm_under_load_drains_prefork() {
    sigterm_under_load_drains("prefork");
}

#[test]
fn sigterm_under_load_drains_hybrid() {
    sigterm_under_load_drains("hybrid");
}

fn a_killed_server_leaves_no_children(model: &str) {
    let mut server = Server::start(model, &["--workers", "2"]);
    let mut client = server.connect();
    assert_eq!(client.request("fib 30"), "832040", "the workers are up");
    let kids = children(server.pid());
    assert_eq!(kids.len(), 2, "{model}: two children");
    server.signal(Signal::SIGKILL);
    server.wait_exit(Duration::from_secs(10));
    common::all_reaped(&kids, "the server's child");
}

#[test]
fn a_killed_procpool_server_leaves_no_workers() {
    a_killed_server_leaves_no_children("procpool");
}

#[test]
fn a_killed_hybrid_server_leaves_no_workers() {
    a_killed_server_leaves_no_children("hybrid");
}

#[test]
fn a_pool_whose_worker_threads_cannot_start_says_so_and_exits() {
    // A stack far larger than the machine's memory: the kernel refuses every worker thread.
    let mut server = common::clab()
        .args(["serve", "--model", "pool", "--workers", "2"])
        .args(["--thread-stack", "100g", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = server.kill();
            let _ = server.wait();
            panic!("the server hung instead of failing");
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("cannot start a worker thread"),
        "stderr: {stderr}"
    );
}
