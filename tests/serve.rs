//! `clab serve` over real TCP, for every model: the protocol, bad input, pipelining,
//! concurrency (or its absence), limits, and a graceful SIGTERM.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{Client, Server, clab, start_model};
use nix::sys::signal::Signal;

/// Whether a model answers a tiny request while another client's long one computes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Overlap {
    /// The tiny request is answered during the long one.
    Concurrent,
    /// The tiny request waits until the long one is done: the essays' point.
    Blocked,
}

fn answers_every_request_kind(model: &str) {
    let server = start_model(model, &[]);
    let mut client = server.connect();
    assert_eq!(client.request("30"), "832040");
    assert_eq!(client.request("fib 20"), "6765");
    assert_eq!(client.request("echo hi"), "hi");
    assert_eq!(client.request("sleep 10"), "slept 10");
    assert_eq!(client.request("spin 5"), "spun 5");
    assert_eq!(
        client.request("fib 30\r"),
        "832040",
        "CRLF line ends are accepted"
    );
    // Close before the next connection: the serial model serves one client at a time.
    drop(client);

    // The essays' clients send a bare number with no newline and wait for the answer.
    let mut bare = server.connect();
    bare.send(b"10");
    assert_eq!(bare.read_line(), "55");
    bare.send(b"fib 12");
    assert_eq!(bare.read_line(), "144");
}

fn refuses_bad_input_and_keeps_serving(model: &str) {
    let server = start_model(model, &[]);
    let mut client = server.connect();
    for (request, reply) in [
        (&b"abc\n"[..], "ERR unknown command \"abc\""),
        (b"-1\n", "ERR n must be an integer from 0 to 45"),
        (b"46\n", "ERR n must be an integer from 0 to 45"),
        (b"fib\n", "ERR usage: fib <n>"),
        (b"fib 1 2\n", "ERR usage: fib <n>"),
        (b"\n", "ERR empty request"),
        (b"\xff\xfe\n", "ERR request is not valid UTF-8"),
        (
            b"sleep 99999999\n",
            "ERR ms must be an integer from 0 to 60000",
        ),
    ] {
        client.send(request);
        assert_eq!(
            client.read_line(),
            reply,
            "reply to {:?}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(
        client.request("fib 10"),
        "55",
        "the connection stays usable after errors"
    );
    drop(client);

    let mut flooder = server.connect();
    let mut long_line = vec![b'7'; 5000];
    long_line.push(b'\n');
    flooder.send(&long_line);
    assert_eq!(flooder.read_line(), "ERR line too long");
    assert!(flooder.is_closed(), "a too-long line closes the connection");

    let mut other = server.connect();
    assert_eq!(
        other.request("30"),
        "832040",
        "the server keeps serving other clients"
    );
}

fn answers_pipelined_requests_in_order(model: &str) {
    let server = start_model(model, &[]);
    let mut client = server.connect();
    let batch: String = (0..100).map(|i| format!("fib {}\n", i % 20)).collect();
    client.send(batch.as_bytes());
    for i in 0..100 {
        let n = i % 20;
        let expected = clab::work::fib(n, &mut clab::work::Free);
        assert_eq!(
            client.read_line(),
            expected.to_string(),
            "reply {i} of 100 (fib {n})"
        );
    }
}

/// While one client's `fib 42` computes, another client sends `fib 1`.
fn tiny_request_beside_a_long_one(model: &str, expected: Overlap) {
    let server = start_model(model, &[]);
    let addr = server.addr;
    let long = thread::spawn(move || {
        let mut client = Client::connect(addr);
        let started = Instant::now();
        assert_eq!(client.request("fib 42"), "267914296");
        (started.elapsed(), Instant::now())
    });
    // Let the server start computing before the tiny request arrives.
    thread::sleep(Duration::from_millis(200));
    let mut tiny = server.connect();
    let sent = Instant::now();
    assert_eq!(tiny.request("fib 1"), "1");
    let tiny_latency = sent.elapsed();
    let tiny_done = Instant::now();
    let (long_time, long_done) = long.join().expect("the long client");
    eprintln!("{model}: fib 42 took {long_time:?}; fib 1 beside it took {tiny_latency:?}");
    match expected {
        Overlap::Concurrent => {
            assert!(
                tiny_done < long_done,
                "fib 1 waited for fib 42 ({tiny_latency:?})"
            );
            assert!(
                tiny_latency < long_time / 4,
                "fib 1 took {tiny_latency:?} beside fib 42's {long_time:?}"
            );
        }
        Overlap::Blocked => {
            // The tiny request came 200 ms into the long one and waited out the rest. (Its
            // reply and fib 42's leave together, so which client thread notes the time first
            // is up to the scheduler: compare durations, not arrival instants.)
            assert!(
                tiny_latency > long_time / 3,
                "fib 1 took only {tiny_latency:?} beside fib 42's {long_time:?}: it did not wait"
            );
        }
    }
}

fn sigterm_delivers_the_in_flight_reply_then_exits(model: &str) {
    let mut server = start_model(model, &[]);
    let mut busy = server.connect();
    busy.send(b"fib 40\n");
    // Waiting for a reply, or (serial) for its turn.
    let mut idle = server.connect();
    thread::sleep(Duration::from_millis(150));
    let children = common::children(server.pid());
    if ["procpool", "prefork", "hybrid"].contains(&model) {
        assert_eq!(children.len(), 2, "two worker processes");
    }
    server.signal(Signal::SIGTERM);
    assert_eq!(
        busy.read_line(),
        "102334155",
        "the in-flight request is answered"
    );
    assert!(busy.is_closed());
    assert!(idle.is_closed(), "an idle connection is closed at shutdown");
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
    let pid = server.pid();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the server process is reaped and none of its threads remain"
    );
    for child in children {
        assert!(
            !std::path::Path::new(&format!("/proc/{child}")).exists(),
            "child {child} outlived the server"
        );
    }
}

fn idle_connections_time_out(model: &str) {
    let server = start_model(model, &["--idle-timeout", "300ms"]);
    let mut client = server.connect();
    assert_eq!(client.request("1"), "1");
    let started = Instant::now();
    assert_eq!(client.read_line(), "ERR idle timeout");
    assert!(client.is_closed());
    assert!(started.elapsed() >= Duration::from_millis(250));
}

fn stats_report_the_counters(model: &str) {
    let server = start_model(model, &[]);
    let mut client = server.connect();
    client.request("5");
    client.request("bogus");
    let report: serde_json::Value =
        serde_json::from_str(&client.request("stats")).expect("stats is JSON");
    assert_eq!(report["model"], model);
    assert_eq!(report["open_connections"], 1);
    assert_eq!(report["requests"], 3);
    assert_eq!(report["errors"], 1);
    assert!(report["uptime_s"].as_f64().unwrap() > 0.0);
}

fn excess_connections_are_told_busy(model: &str) {
    let server = start_model(model, &["--max-connections", "1"]);
    let mut first = server.connect();
    assert_eq!(first.request("1"), "1");
    let mut second = server.connect();
    assert_eq!(second.read_line(), "ERR server busy");
    assert!(second.is_closed());
    assert_eq!(first.request("2"), "1", "the admitted client is unaffected");
    drop(first);
    // The slot frees once the server has seen the first client leave.
    let deadline = Instant::now() + common::PATIENCE;
    loop {
        let mut third = server.connect();
        third.send(b"3\n");
        match third.read_line().as_str() {
            "2" => break,
            "ERR server busy" => assert!(Instant::now() < deadline, "the slot never freed"),
            other => panic!("unexpected reply {other:?}"),
        }
        thread::sleep(Duration::from_millis(20));
    }
}

macro_rules! model_tests {
    ($($module:ident: $model:literal, $overlap:expr;)*) => {$(
        mod $module {
            use super::*;

            #[test]
            fn answers_every_request_kind() {
                super::answers_every_request_kind($model);
            }

            #[test]
            fn refuses_bad_input_and_keeps_serving() {
                super::refuses_bad_input_and_keeps_serving($model);
            }

            #[test]
            fn answers_pipelined_requests_in_order() {
                super::answers_pipelined_requests_in_order($model);
            }

            #[test]
            fn tiny_request_beside_a_long_one() {
                super::tiny_request_beside_a_long_one($model, $overlap);
            }

            #[test]
            fn sigterm_delivers_the_in_flight_reply_then_exits() {
                super::sigterm_delivers_the_in_flight_reply_then_exits($model);
            }

            #[test]
            fn idle_connections_time_out() {
                super::idle_connections_time_out($model);
            }

            #[test]
            fn stats_report_the_counters() {
                super::stats_report_the_counters($model);
            }
        }
    )*};
}

model_tests! {
    serial: "serial", Overlap::Blocked;
    threads: "threads", Overlap::Concurrent;
    pool: "pool", Overlap::Concurrent;
    procpool: "procpool", Overlap::Concurrent;
    prefork: "prefork", Overlap::Concurrent;
    eventloop: "eventloop", Overlap::Blocked;
    async_runtime: "async", Overlap::Concurrent;
    hybrid: "hybrid", Overlap::Concurrent;
}

// The serial model, and each prefork child, accepts one client at a time, so it never has
// an excess connection: the others wait in the listen backlog.
#[test]
fn excess_connections_are_told_busy_threads() {
    excess_connections_are_told_busy("threads");
}

#[test]
fn excess_connections_are_told_busy_pool() {
    excess_connections_are_told_busy("pool");
}

#[test]
fn excess_connections_are_told_busy_procpool() {
    excess_connections_are_told_busy("procpool");
}

#[test]
fn excess_connections_are_told_busy_hybrid() {
    excess_connections_are_told_busy("hybrid");
}

#[test]
fn excess_connections_are_told_busy_eventloop() {
    excess_connections_are_told_busy("eventloop");
}

#[test]
fn excess_connections_are_told_busy_async() {
    excess_connections_are_told_busy("async");
}

#[test]
fn a_pool_of_two_serves_two_clients_and_queues_the_third() {
    let server = start_model("pool", &[]);
    let mut first = server.connect();
    let mut second = server.connect();
    assert_eq!(first.request("1"), "1");
    assert_eq!(second.request("1"), "1");
    let mut third = server.connect();
    third.send(b"fib 5\n");
    thread::sleep(Duration::from_millis(300));
    drop(first);
    assert_eq!(
        third.read_line(),
        "5",
        "the queued client is served once a worker is free"
    );
}

#[test]
fn procpool_a_killed_worker_fails_only_its_request_and_is_replaced() {
    let server = start_model("procpool", &[]);
    let mut client = server.connect();
    assert_eq!(client.request("1"), "1", "the pool is up");
    let workers = common::children(server.pid());
    assert_eq!(workers.len(), 2);
    client.send(b"fib 42\n");
    thread::sleep(Duration::from_millis(150));
    // Kill both workers: the busy one fails this request, the idle one is replaced unseen.
    for worker in &workers {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(*worker as i32), Signal::SIGKILL)
            .unwrap();
    }
    assert_eq!(client.read_line(), "ERR worker died");
    // SIGKILL tears a process down asynchronously: wait until the idle one is dead, so the
    // next request tests its replacement, not a race with the kernel.
    for worker in &workers {
        common::wait_dead(*worker);
    }
    assert_eq!(
        client.request("fib 20"),
        "6765",
        "the next request succeeds"
    );
    let deadline = Instant::now() + common::PATIENCE;
    loop {
        let now = common::children(server.pid());
        if now.len() == 2 && now.iter().all(|pid| !workers.contains(pid)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pool did not get back to two new workers: {now:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the server has `count` children, none of them in `gone`; returns them.
fn wait_for_children(server: &Server, count: usize, gone: &[u32]) -> Vec<u32> {
    let deadline = Instant::now() + common::PATIENCE;
    loop {
        let now = common::children(server.pid());
        if now.len() == count && now.iter().all(|pid| !gone.contains(pid)) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {count} children (now {now:?}, gone {gone:?})"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn prefork_concurrency_is_capped_at_its_children() {
    let server = start_model("prefork", &[]);
    wait_for_children(&server, 2, &[]);
    let addr = server.addr;
    let clients: Vec<_> = (0..3)
        .map(|_| {
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                let started = Instant::now();
                assert_eq!(client.request("fib 42"), "267914296");
                started.elapsed()
            })
        })
        .collect();
    let mut times: Vec<Duration> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    times.sort();
    eprintln!("prefork, 2 children, 3 fib 42 clients: {times:?}");
    assert!(
        times[2] > times[0].mul_f64(1.5),
        "the third client did not wait for a child: {times:?}"
    );
}

#[test]
fn prefork_replaces_a_child_that_dies() {
    let server = start_model("prefork", &[]);
    let children = wait_for_children(&server, 2, &[]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(children[0] as i32),
        Signal::SIGKILL,
    )
    .unwrap();
    let now = wait_for_children(&server, 2, &children[..1]);
    assert!(now.contains(&children[1]), "the other child is untouched");
    let mut client = server.connect();
    assert_eq!(client.request("fib 20"), "6765");
}

#[test]
fn prefork_children_exit_when_the_supervisor_is_killed() {
    let mut server = start_model("prefork", &[]);
    let children = wait_for_children(&server, 2, &[]);
    server.signal(Signal::SIGKILL);
    server.wait_exit(Duration::from_secs(10));
    let deadline = Instant::now() + common::PATIENCE;
    while children
        .iter()
        .any(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
    {
        assert!(
            Instant::now() < deadline,
            "orphaned children {children:?} kept running"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Beside a client running `fib 42` in a loop, how long the slowest of a rapid client's
/// `fib 1` requests took, how long a `fib 42` took, and the server's stats.
fn tiny_requests_beside_a_fib_42_loop(server: &Server) -> (Duration, Duration, serde_json::Value) {
    let stop = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|scope| {
        let (addr, stop) = (server.addr, &stop);
        let hog = scope.spawn(move || {
            let mut hog = Client::connect(addr);
            let mut slowest = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                assert_eq!(hog.request("fib 42"), "267914296");
                slowest = slowest.max(started.elapsed());
            }
            slowest
        });
        thread::sleep(Duration::from_millis(100));
        let mut tiny = server.connect();
        let mut slowest = Duration::ZERO;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1500) {
            let sent = Instant::now();
            assert_eq!(tiny.request("fib 1"), "1");
            slowest = slowest.max(sent.elapsed());
        }
        let stats = serde_json::from_str(&tiny.request("stats")).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (slowest, hog.join().unwrap(), stats)
    })
}

#[test]
fn hybrid_adaptive_keeps_tiny_requests_fast_beside_a_cpu_hog() {
    let server = start_model("hybrid", &["--offload", "adaptive"]);
    let (tiny, long, stats) = tiny_requests_beside_a_fib_42_loop(&server);
    eprintln!("hybrid adaptive: slowest fib 1 {tiny:?}, fib 42 {long:?}; {stats}");
    assert!(
        tiny < long / 10,
        "a fib 1 took {tiny:?} beside fib 42's {long:?}"
    );
    let (requests, offloaded) = (
        stats["requests"].as_u64().unwrap(),
        stats["offloaded"].as_u64().unwrap(),
    );
    assert!(offloaded >= 1, "fib 42 went to the pool");
    assert!(
        offloaded * 10 < requests,
        "fib 1, once measured, is computed on the loop ({offloaded} of {requests} offloaded)"
    );
}

#[test]
fn hybrid_threshold_to_a_thread_pool_keeps_tiny_requests_fast() {
    let server = start_model(
        "hybrid",
        &["--offload", "threshold:15", "--offload-to", "pool"],
    );
    let (tiny, long, stats) = tiny_requests_beside_a_fib_42_loop(&server);
    eprintln!("hybrid threshold:15 to pool: slowest fib 1 {tiny:?}, fib 42 {long:?}; {stats}");
    assert!(
        tiny < long / 10,
        "a fib 1 took {tiny:?} beside fib 42's {long:?}"
    );
    assert!(
        common::children(server.pid()).is_empty(),
        "a thread pool starts no process"
    );
}

#[test]
fn serve_help_explains_every_model() {
    let output = common::output_within(clab().args(["serve", "--help"]), common::PATIENCE);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = help.lines().map(str::trim_start).collect();
    for model in common::models() {
        let index = lines
            .iter()
            .position(|line| line.starts_with(&format!("- {model}:")))
            .unwrap_or_else(|| panic!("no line for {model} in:\n{help}"));
        assert!(
            lines[index].len() > model.len() + 20,
            "{model} is not explained: {:?}",
            lines[index]
        );
        let next = lines[index + 1];
        assert!(
            next.starts_with("- ") || next.is_empty(),
            "{model} takes more than one line: {next:?}"
        );
    }
}

#[test]
fn bad_options_get_a_one_line_error() {
    for args in [
        &["serve", "--model", "forks"][..],
        &["serve", "--max-n", "93"],
        &["serve", "--addr", "nowhere"],
    ] {
        let output = clab().args(args).output().expect("run clab");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
}

#[test]
fn an_address_in_use_is_a_clear_error() {
    let server = start_model("serial", &[]);
    let output = clab()
        .args(["serve", "--addr", &server.addr.to_string()])
        .output()
        .expect("run clab");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!("cannot listen on {}", server.addr)),
        "{stderr}"
    );
}

/// `--hop-cost` is interpreter work per offloaded job, here all of it on the connection's
/// thread before it submits: a tiny request through the process pool takes at least that
/// long. (A lower bound only: busy work never finishes early.)
#[test]
fn an_offloaded_request_pays_its_hop_cost() {
    let _one = common::timing_lock();
    let server = start_model("procpool", &["--hop-cost", "procpool=20ms+0s"]);
    let mut client = server.connect();
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(client.request("fib 1"), "1");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(18), "{took:?}");
    }
}

/// Under the legacy GIL a thread waiting for its pool's job polls, as CPython 2's
/// `AsyncResult.get(timeout)` does: its first look nearly always comes before the job is
/// back, then it sleeps 1 ms. So the median tiny request through a process pool takes at
/// least that, where the new GIL's wait wakes with the reply (the medians more than double
/// apart). Not every request: a connection thread descheduled after it submits may find the
/// job done at its first look, in CPython too.
#[test]
fn a_legacy_era_wait_for_a_pool_polls() {
    let _one = common::timing_lock();
    let median = |gil: &str| {
        let server = start_model("procpool", &["--gil", gil, "--hop-cost", "none"]);
        let mut client = server.connect();
        let mut took: Vec<Duration> = (0..21)
            .map(|_| {
                let started = Instant::now();
                assert_eq!(client.request("fib 1"), "1");
                started.elapsed()
            })
            .collect();
        took.sort();
        took[took.len() / 2]
    };
    let legacy = median("legacy");
    assert!(legacy >= Duration::from_millis(1), "{legacy:?}");
    let new = median("new");
    assert!(legacy > new * 2, "legacy {legacy:?}, new {new:?}");
}

/// `call` does the `--workload` profile, through a pool too (its bytes crossing to the
/// worker process and back); without one it is an error that says how to give one.
#[test]
fn a_call_does_the_workload_it_was_served_with() {
    let _one = common::timing_lock();
    for model in ["threads", "procpool"] {
        let server = start_model(model, &["--workload", "20ms+0s+10ms"]);
        let mut client = server.connect();
        let started = Instant::now();
        assert_eq!(client.request("call"), "worked", "{model}");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(28), "{model}: {took:?}");
        assert_eq!(client.request("work 0 0 1000"), "worked");
        // A megabyte crosses to the worker process and back; the client gets the word.
        assert_eq!(client.request("work 0 0 0 1048576"), "worked", "{model}");
    }
    let server = start_model("threads", &[]);
    let reply = server.connect().request("call");
    assert!(
        reply.starts_with("ERR no workload: serve with --workload"),
        "{reply}"
    );
}
