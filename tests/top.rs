//! `clab top --plain` against a real server: one line per refresh with the rate and the GIL's
//! figures, bounded by `--duration`; nothing listening is one line and a failure. And what
//! `top` polls: the `events` request, and a watching connection that takes no GIL switches.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::{Client, Server, clab};

#[test]
fn top_prints_a_line_per_refresh_with_rate_and_gil_figures() {
    let server = Server::start("threads", &["--gil", "new"]);
    let stop = AtomicBool::new(false);
    let output = thread::scope(|scope| {
        for request in ["fib 1", "fib 27"] {
            let (addr, stop) = (server.addr, &stop);
            scope.spawn(move || {
                let mut client = Client::connect(addr);
                while !stop.load(Ordering::Relaxed) {
                    assert!(!client.request(request).starts_with("ERR"));
                }
            });
        }
        let output = clab()
            .args(["top", "--plain", "--duration", "3s", "--addr"])
            .arg(server.addr.to_string())
            .output()
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        output
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 6, "{stdout}");
    for line in &lines {
        assert!(
            line.contains(" req/s ") && line.contains("2 conns"),
            "{line}"
        );
        assert!(line.contains("| GIL new: held "), "{line}");
        assert!(line.contains("switches/s"), "{line}");
    }
}

#[test]
fn nothing_listening_is_one_line_and_a_failure() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let output = clab()
        .args(["top", "--plain", "--addr", &addr.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach a server at"), "{stderr}");
}

#[test]
fn events_since_a_time_are_the_gil_events_after_it() {
    let server = Server::start("threads", &["--gil", "new"]);
    let mut worker = server.connect();
    assert_eq!(worker.request("fib 20"), "6765");
    drop(worker);
    let mut watcher = server.connect();
    // Once the worker's thread has ended, the watcher's is the only one left.
    common::eventually("the worker's connection to close", || {
        let stats: serde_json::Value = serde_json::from_str(&watcher.request("stats")).unwrap();
        stats["open_connections"] == 1
    });
    let first: serde_json::Value = serde_json::from_str(&watcher.request("events 0")).unwrap();
    let events = first["events"].as_array().unwrap();
    assert!(!events.is_empty(), "{first}");
    assert!(events.iter().any(|e| e["event"] == "acquire"), "{first}");
    assert_eq!(first["variant"], "new");
    let names: Vec<&str> = first["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("connection ")),
        "{first}"
    );
    // Nothing happened since `now_ns` but the watcher's own reads, which take no GIL.
    let since = first["now_ns"].as_u64().unwrap();
    let again: serde_json::Value =
        serde_json::from_str(&watcher.request(&format!("events {since}"))).unwrap();
    assert_eq!(again["events"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(
        watcher.request("events soon"),
        "ERR usage: events <since_ns>"
    );

    let free = Server::start("threads", &[]);
    assert!(
        free.connect()
            .request("events 0")
            .starts_with("ERR events are the GIL's")
    );
}

#[test]
fn a_watching_connection_takes_the_gil_once_not_at_every_poll() {
    // A hog holds the GIL; a watcher that took it back after each of its socket calls would
    // force a switch at each poll.
    let server = Server::start("threads", &["--gil", "new"]);
    let mut hog = server.connect();
    hog.send(b"spin 3000\n");
    let mut watcher = server.connect();
    let switches = |reply: String| {
        serde_json::from_str::<serde_json::Value>(&reply).unwrap()["gil"]["switches"]
            .as_u64()
            .unwrap()
    };
    let first = switches(watcher.request("stats"));
    for since in 0..20 {
        watcher.request(&format!("events {since}"));
        watcher.request("stats");
        thread::sleep(std::time::Duration::from_millis(20));
    }
    let last = switches(watcher.request("stats"));
    assert!(last - first <= 2, "{} switches in 20 polls", last - first);
    assert_eq!(hog.read_line(), "spun 3000");
}
