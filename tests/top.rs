//! `clab top --plain` against a real server: one line per refresh with the rate and the GIL's
//! figures, bounded by `--duration`; nothing listening is one line and a failure.

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
            .args([
                "top",
                "--plain",
                "--duration",
                "2s",
                "--interval",
                "250ms",
                "--addr",
            ])
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
