//! Scale: event loops hold 19,000 idle connections — their default cap under this machine's
//! descriptor limit of 20,000 — at almost no cost to a busy client; threads hold ten
//! thousand with small stacks. The resident memory each connection costs per
//! model is measured by an ignored test (`cargo test --release --test scale -- --ignored
//! --nocapture`), which feeds the lab's c10k experiment.

mod common;

use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{PATIENCE, Server, clab, pin_process, stats};
use serde_json::Value;

/// Each test here opens ten thousand connections and measures: one at a time.
fn serialise() -> common::TimingLock {
    common::timing_lock()
}

/// Runs `clab load rate` from CPU `cpu` for a second; its requests per second.
fn rapid_rate(server: &Server, cpu: usize) -> f64 {
    let path = std::env::temp_dir().join(format!("clab-scale-{}-{cpu}.json", std::process::id()));
    let output = common::output_within(
        clab()
            .args([
                "load",
                "rate",
                "--quiet",
                "--duration",
                "1s",
                "--warmup",
                "200ms",
                "--cpus",
                &cpu.to_string(),
            ])
            .args([
                "--addr",
                &server.addr.to_string(),
                "--json",
                path.to_str().unwrap(),
            ]),
        common::PATIENCE,
    );
    assert!(output.status.success(), "{output:?}");
    let result: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let _ = std::fs::remove_file(&path);
    result["classes"][0]["rate_per_s"].as_f64().unwrap()
}

/// Starts `clab load idle` holding `connections` for `seconds`, then waits until the server
/// has them all open.
fn hold_idle(server: &Server, connections: usize, seconds: u64) -> Child {
    let generator = clab()
        .args([
            "load",
            "idle",
            "--quiet",
            "--warmup",
            "0s",
            "--connections",
            &connections.to_string(),
        ])
        .args([
            "--duration",
            &format!("{seconds}s"),
            "--addr",
            &server.addr.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stats = stats(server);
        if stats["open_connections"].as_u64().unwrap() >= connections as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never had {connections} connections open: {stats}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    generator
}

fn cpus() -> (usize, usize) {
    match clab::system::cpus::allowed_cpus()[..] {
        [a, b, ..] => (a, b),
        [a] => (a, a),
        [] => (0, 0),
    }
}

/// An event loop's default cap here: 19,000 under these machines' hard limit of 20,000.
fn event_loop_cap() -> usize {
    clab::system::limits::DescriptorBudget::of_this_process().connections() as usize
}

/// How many idle connections an event-loop test holds.
#[derive(Debug, Clone, Copy)]
enum Idle {
    /// A few thousand: seconds, for every `cargo test`.
    Some(usize),
    /// The whole default cap, less one for a last client, and the one after it refused.
    FillTheCap,
}

fn idle_connections_barely_slow_an_event_loop(model: &str, idle: Idle) {
    let _one = serialise();
    // No --max-connections where the default cap is 19,000 or less: it must hold them. (A
    // machine allowing far more gets a cap of 19,000 set, so the run stays bounded.)
    let cap = event_loop_cap().min(19_000);
    let chosen_cap = cap.to_string();
    let mut args = vec!["--workers", "1"];
    if event_loop_cap() > cap {
        args.extend(["--max-connections", &chosen_cap]);
    }
    let server = Server::start(model, &args);
    let (server_cpu, client_cpu) = cpus();
    pin_process(server.pid(), server_cpu);
    let alone = rapid_rate(&server, client_cpu);
    let connections = match idle {
        Idle::Some(connections) => connections,
        // All but one: a last client fills the cap below.
        Idle::FillTheCap => cap - 1,
    };
    let mut generator = hold_idle(&server, connections, 30);
    let beside = rapid_rate(&server, client_cpu);
    if let Idle::FillTheCap = idle {
        // The cap is the default's: one more connection fills it, the next is refused.
        let _last = server.connect();
        let mut refused = server.connect();
        assert_eq!(
            refused.read_line(),
            "ERR server busy",
            "{model}: past its cap"
        );
    }
    // Measured: the generator need not hold them to its end.
    let _ = generator.kill();
    let _ = generator.wait();
    let kept = beside / alone;
    eprintln!(
        "{model}: fib 1 at {alone:.0} req/s alone, {beside:.0} req/s beside {connections} idle connections ({:.0} %)",
        kept * 100.0
    );
    // More than half, a mechanism's margin, not a narrow mark: on a host whose cross-CPU
    // round trip is 8 µs the rapid client ran 46,000 requests/s alone and kept 76 % once in
    // a CI run.
    assert!(
        kept > 0.5,
        "{model}: the rapid client kept only {:.0} % of its rate",
        kept * 100.0
    );
}

#[test]
fn eventloop_holds_five_thousand_idle_connections() {
    idle_connections_barely_slow_an_event_loop("eventloop", Idle::Some(5_000));
}

#[test]
fn async_holds_five_thousand_idle_connections() {
    idle_connections_barely_slow_an_event_loop("async", Idle::Some(5_000));
}

#[test]
#[ignore = "opens 19,000 connections; run with --ignored"]
fn eventloop_holds_its_default_cap_of_idle_connections() {
    idle_connections_barely_slow_an_event_loop("eventloop", Idle::FillTheCap);
}

#[test]
#[ignore = "opens 19,000 connections; run with --ignored"]
fn async_holds_its_default_cap_of_idle_connections() {
    idle_connections_barely_slow_an_event_loop("async", Idle::FillTheCap);
}

#[test]
fn threads_with_small_stacks_hold_ten_thousand_connections() {
    let _one = serialise();
    let server = Server::start(
        "threads",
        &["--max-connections", "15000", "--thread-stack", "64k"],
    );
    let mut generator = hold_idle(&server, 10_000, 4);
    let (_, threads) = common::resources(server.pid());
    assert!(
        threads > 10_000,
        "a thread per connection: {threads} threads"
    );
    let mut client = server.connect();
    assert_eq!(
        client.request("fib 20"),
        "6765",
        "the server still answers beside them"
    );
    drop(client);
    assert!(common::exit_within(&mut generator, Duration::from_secs(60)).success());
}

/// Resident memory (KiB) and open sockets of `pid` and its children.
fn resident_and_sockets(pid: u32) -> (u64, u64) {
    let tree: Vec<u32> = std::iter::once(pid).chain(common::children(pid)).collect();
    let resident = tree
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            let line = status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))?
                .to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum();
    let sockets = tree
        .iter()
        .filter_map(|pid| std::fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        })
        .count() as u64;
    (resident, sockets)
}

/// Holds `connections` idle connections on `server` until it has accepted them all (its
/// sockets say so), and returns its resident KiB per connection held.
fn resident_per_connection(server: &Server, connections: usize) -> f64 {
    let before = resident_and_sockets(server.pid());
    let mut generator = clab()
        .args(["load", "idle", "--quiet", "--warmup", "0s"])
        .args([
            "--connections",
            &connections.to_string(),
            "--duration",
            "20s",
        ])
        .args(["--addr", &server.addr.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut during = before;
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(500));
        let now = resident_and_sockets(server.pid());
        let settled = now == during;
        during = now;
        if during.1 >= before.1 + connections as u64 && settled {
            break;
        }
    }
    let _ = generator.kill();
    let _ = generator.wait();
    let held = during.1.saturating_sub(before.1);
    assert!(
        held >= connections as u64 * 9 / 10,
        "the server held only {held} of {connections} connections ({before:?} → {during:?})"
    );
    during.0.saturating_sub(before.0) as f64 / held as f64
}

#[test]
#[ignore = "measures memory for a report; run with --ignored --nocapture"]
fn resident_memory_per_connection_for_each_model() {
    let _one = serialise();
    const CONNECTIONS: usize = 10_000;
    let mut rows = Vec::new();
    // (pool is left out: its few workers serve one connection each, so the rest only queue.
    // prefork likewise: each child holds one connection at a time.)
    for model in ["threads", "procpool", "eventloop", "async", "hybrid"] {
        let mut args = vec!["--max-connections", "15000"];
        if model == "threads" || model == "procpool" {
            args.extend(["--thread-stack", "64k"]);
        }
        let server = Server::start(model, &args);
        assert_eq!(server.connect().request("fib 20"), "6765");
        thread::sleep(Duration::from_millis(200));
        let kib = resident_per_connection(&server, CONNECTIONS);
        rows.push(format!("{model:>24}: {kib:.2} KiB per idle connection"));
        eprintln!("{}", rows.last().unwrap());
    }
    // CPython's asyncio server, measured the same way, on every interpreter with asyncio.
    let server_script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/clab_server.py");
    let mut seen = std::collections::HashSet::new();
    for python in clab::lab::running::pythons::candidates() {
        let mut command = std::process::Command::new(&python);
        command.args([server_script, "--model", "asyncio", "--addr", "127.0.0.1:0"]);
        let Some(status) = common::output_if_it_runs(
            std::process::Command::new(&python)
                .args(["-c", "import asyncio, sys; print(sys.version.split()[0])"]),
            common::PATIENCE,
        ) else {
            continue;
        };
        if !status.status.success() {
            continue; // Python 2: no asyncio
        }
        let version = String::from_utf8_lossy(&status.stdout).trim().to_owned();
        if !seen.insert(version.clone()) {
            continue; // the same interpreter under another name
        }
        let server = Server::spawn(command);
        let kib = resident_per_connection(&server, CONNECTIONS);
        rows.push(format!(
            "{:>24}: {kib:.2} KiB per idle connection",
            format!("CPython {version} asyncio")
        ));
    }
    eprintln!("{CONNECTIONS} idle connections each:\n{}", rows.join("\n"));
}
