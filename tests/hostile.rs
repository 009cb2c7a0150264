//! Hostile clients against every model, bounded in time: a 10 MB line, a storm of
//! connections, requests abandoned before their replies, and silent connections. After each,
//! the server still answers, and its descriptors and threads (children included) return to
//! what they were — nothing leaks.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{Client, Server, resources, settles_to, start_model};

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
