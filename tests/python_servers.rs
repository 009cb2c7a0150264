//! The CPython reference servers in `python/` (the lab runs them beside the emulation):
//! every model speaks the same protocol as `clab serve`, survives `clab load`, and stops on
//! SIGTERM without leaving a child behind. Skipped, with a message, where python3 is missing.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, children, clab};
use nix::sys::signal::Signal;

fn python_available() -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("python3 is not installed: the CPython reference servers are not tested");
    }
    found
}

fn start(model: &str) -> Server {
    let mut command = Command::new("python3");
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/python/clab_server.py"
        ))
        .args(["--model", model, "--addr", "127.0.0.1:0", "--workers", "2"]);
    Server::spawn(command)
}

fn speaks_the_protocol_and_stops_cleanly(model: &str) {
    if !python_available() {
        return;
    }
    let mut server = start(model);
    {
        let mut client = server.connect();
        for (request, reply) in [
            ("30", "832040"),
            ("fib 20", "6765"),
            ("echo hi", "hi"),
            ("sleep 10", "slept 10"),
            ("spin 5", "spun 5"),
            ("abc", "ERR unknown command \"abc\""),
            ("-1", "ERR n must be an integer from 0 to 45"),
            ("fib 1 2", "ERR usage: fib <n>"),
            ("", "ERR empty request"),
        ] {
            assert_eq!(client.request(request), reply, "{model}: {request:?}");
        }
        let stats: serde_json::Value = serde_json::from_str(&client.request("stats")).unwrap();
        assert_eq!(stats["model"], model);
    }
    let mut bare = server.connect();
    bare.send(b"10");
    assert_eq!(bare.read_line(), "55", "{model}: a bare request");
    drop(bare);

    let output = clab()
        .args([
            "load",
            "rate",
            "--quiet",
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
            "--request",
            "fib 10",
        ])
        .args(["--addr", &server.addr.to_string()])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && !summary.contains("errors:"),
        "{model}: {summary}"
    );

    let kids = children(server.pid());
    server.signal(Signal::SIGTERM);
    assert!(
        server.wait_exit(Duration::from_secs(10)).success(),
        "{model}: SIGTERM exits 0"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while kids
        .iter()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        assert!(
            Instant::now() < deadline,
            "{model}: children {kids:?} outlived the server"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serial() {
    speaks_the_protocol_and_stops_cleanly("serial");
}

#[test]
fn threads() {
    speaks_the_protocol_and_stops_cleanly("threads");
}

#[test]
fn procpool() {
    speaks_the_protocol_and_stops_cleanly("procpool");
}

#[test]
fn hybrid() {
    speaks_the_protocol_and_stops_cleanly("hybrid");
}

#[test]
fn prefork() {
    speaks_the_protocol_and_stops_cleanly("prefork");
}

#[test]
fn asyncio() {
    speaks_the_protocol_and_stops_cleanly("asyncio");
}
