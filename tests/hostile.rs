//! Hostile clients against every model, bounded in time: a 10 MB line, a storm of
//! connections, requests abandoned before their replies, silent connections, and clients
//! that send and send but never read a reply. After each, the server still answers, and its
//! descriptors and threads (children included) return to what they were — nothing leaks.

mod common;

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{Client, Server, resources, settles_to, start_model};
use nix::sys::signal::Signal;

/// Serves one request, so lazily started parts exist, then notes what the server holds.
fn baseline(server: &Server) -> (usize, usize) {
    let mut client = server.connect();
    assert_eq!(client.request("fib 10"), "55");
    drop(client);
    thread::sleep(Duration::from_millis(200));
    resources(server.pid())
}

fn still_serves(server: &Server) {
    let mut client = server.connect();
    assert_eq!(client.request("fib 20"), "6765", "the server still answers");
}

fn a_ten_megabyte_line_is_cut_off(model: &str) {
    let server = start_model(model, &[]);
    let before = baseline(&server);
    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(common::PATIENCE)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let flood = thread::spawn(move || {
        let chunk = vec![b'7'; 1 << 20];
        let mut sent = 0usize;
        for _ in 0..10 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let mut reader = std::io::BufReader::new(stream);
    let mut replies = Vec::new();
    loop {
        let mut line = String::new();
        match std::io::BufRead::read_line(&mut reader, &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => replies.push(line),
        }
    }
    let sent = flood.join().unwrap();
    assert!(
        !replies.is_empty() && replies.iter().all(|r| r.starts_with("ERR ")),
        "{model}: replies {replies:?}"
    );
    assert!(
        replies.iter().any(|r| r == "ERR line too long\n"),
        "{model}: replies {replies:?}"
    );
    assert!(
        sent < 10 << 20,
        "{model}: the server read all 10 MB instead of closing"
    );
    still_serves(&server);
    settles_to(&server, before);
}

fn a_storm_of_connections_leaves_nothing_behind(model: &str) {
    let server = start_model(model, &[]);
    let before = baseline(&server);
    let storms: Vec<_> = (0..4)
        .map(|_| {
            let addr = server.addr;
            thread::spawn(move || {
                for _ in 0..250 {
                    // Refusals under the burst are fine; the server must not suffer.
                    let _ = TcpStream::connect(addr);
                }
            })
        })
        .collect();
    for storm in storms {
        storm.join().unwrap();
    }
    still_serves(&server);
    settles_to(&server, before);
}

fn abandoned_requests_leave_nothing_behind(model: &str) {
    let server = start_model(model, &[]);
    let before = baseline(&server);
    for _ in 0..10 {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.write_all(b"fib 32\n").unwrap();
        drop(stream); // gone before the reply
    }
    still_serves(&server);
    settles_to(&server, before);
}

fn a_silent_connection_is_closed_at_the_idle_timeout(model: &str) {
    let server = start_model(model, &["--idle-timeout", "300ms"]);
    let before = baseline(&server);
    let started = Instant::now();
    let mut silent = Client::connect(server.addr);
    assert_eq!(silent.read_line(), "ERR idle timeout");
    assert!(silent.is_closed());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "{model}: closed after {took:?}"
    );
    still_serves(&server);
    settles_to(&server, before);
}

/// A client that pipelines 4 KB `echo` lines and never reads a reply: once the buffers both
/// ways are full, the server is blocked writing to it. The thread ends when a write fails —
/// the server closed the connection — and returns how that write failed.
fn never_reads(addr: SocketAddr) -> JoinHandle<ErrorKind> {
    let mut stream = TcpStream::connect(addr).unwrap();
    // Our own bound: a server that never closes fails the test instead of hanging it.
    stream.set_write_timeout(Some(common::PATIENCE)).unwrap();
    let line = format!("echo {}\n", "x".repeat(4090));
    thread::spawn(move || {
        loop {
            if let Err(error) = stream.write_all(line.as_bytes()) {
                return error.kind();
            }
        }
    })
}

/// Waits until the server has stopped taking the non-reader's bytes (its write is blocked).
fn until_blocked() {
    thread::sleep(Duration::from_millis(500));
}

fn a_client_that_never_reads_is_closed_at_the_write_timeout(model: &str) {
    let server = start_model(model, &["--write-timeout", "700ms"]);
    let before = baseline(&server);
    let started = Instant::now();
    let hostile = never_reads(server.addr);
    until_blocked();
    if model != "serial" {
        // Every model that serves more than one connection serves the others meanwhile.
        let mut other = server.connect();
        assert_eq!(other.request("fib 20"), "6765", "{model}: served beside it");
    }
    let failed = hostile.join().unwrap();
    assert!(
        matches!(
            failed,
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        ),
        "{model}: the non-reading client's writes ended with {failed:?}, not a closed connection"
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "{model}: closed only after {took:?}"
    );
    if model != "prefork" {
        // (A prefork child's counters are its own; a `stats` may reach another child.)
        let stats = common::stats(&server);
        assert_eq!(stats["write_timeouts"], 1, "{model}: {stats}");
    }
    still_serves(&server);
    settles_to(&server, before);
}

fn a_drain_finishes_in_time_beside_a_client_that_never_reads(model: &str) {
    let drain = Duration::from_secs(2);
    // No write timeout: only the drain's cut can free the blocked writer.
    let mut server = start_model(model, &["--write-timeout", "0", "--drain-timeout", "2s"]);
    let hostile = never_reads(server.addr);
    until_blocked();
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    let status = server.wait_exit(common::PATIENCE);
    let took = signalled.elapsed();
    assert!(
        status.success(),
        "{model}: exited {status} after {took:?} with a non-reading client connected"
    );
    assert!(
        took <= drain + Duration::from_millis(500),
        "{model}: the drain took {took:?}, past its {drain:?}"
    );
    hostile.join().unwrap();
}

macro_rules! hostile_tests {
    ($($module:ident: $model:literal;)*) => {$(
        mod $module {
            #[test]
            fn a_ten_megabyte_line_is_cut_off() {
                super::a_ten_megabyte_line_is_cut_off($model);
            }

            #[test]
            fn a_storm_of_connections_leaves_nothing_behind() {
                super::a_storm_of_connections_leaves_nothing_behind($model);
            }

            #[test]
            fn abandoned_requests_leave_nothing_behind() {
                super::abandoned_requests_leave_nothing_behind($model);
            }

            #[test]
            fn a_silent_connection_is_closed_at_the_idle_timeout() {
                super::a_silent_connection_is_closed_at_the_idle_timeout($model);
            }

            #[test]
            fn a_client_that_never_reads_is_closed_at_the_write_timeout() {
                super::a_client_that_never_reads_is_closed_at_the_write_timeout($model);
            }

            #[test]
            fn a_drain_finishes_in_time_beside_a_client_that_never_reads() {
                super::a_drain_finishes_in_time_beside_a_client_that_never_reads($model);
            }
        }
    )*};
}

hostile_tests! {
    serial: "serial";
    threads: "threads";
    pool: "pool";
    procpool: "procpool";
    prefork: "prefork";
    eventloop: "eventloop";
    async_runtime: "async";
    hybrid: "hybrid";
}
