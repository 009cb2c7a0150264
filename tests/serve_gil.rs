//! `clab serve --gil` over real TCP: the essays' convoy. A rapid-fire `fib 1` client loses
//! nearly all of its rate when another client's `fib 40` loop joins under the new GIL, and
//! keeps most of it without a GIL, under the priority GIL, or with the hog in a
//! subinterpreter of its own (`interpreters`, a GIL per interpreter as in CPython 3.12+).
//!
//! The convoys pin the server to one CPU and the clients to another (on a one-CPU machine,
//! both to the same one), so a request always crosses the same way and the server's threads
//! compete for one core as the essays' did: what is asserted is the lock's mechanism, never a
//! race between wake-ups on two idle cores. The subinterpreters' other point is computing on
//! two cores at once, so that test leaves the server every CPU, and asserts beside a contrast
//! — threads under one GIL in the same placement — with margins far wider than placement moves.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Client, Server, pin_this_thread, placement, server_and_load_cpus};

/// Requests per second of a closed-loop `fib 1` client over `duration`.
fn rapid_fire_rate(client: &mut Client, duration: Duration) -> f64 {
    let started = Instant::now();
    let mut completed = 0u64;
    while started.elapsed() < duration {
        assert_eq!(client.request("fib 1"), "1");
        completed += 1;
    }
    completed as f64 / started.elapsed().as_secs_f64()
}

/// What one convoy run saw: the rapid client's rate alone and beside the hog, and the
/// server's `stats` taken while the hog was still running.
struct Convoy {
    kept: f64,
    stats: serde_json::Value,
}

/// The rapid-fire rate on a threads server beside a `fib 40` loop, as a fraction of its rate
/// alone.
fn rate_kept_beside_a_hog(gil: &str) -> f64 {
    median_kept("threads", &["--gil", gil])
}

/// The median rate kept of three convoys on `model`, so one run disturbed by a neighbour on
/// a shared host decides nothing.
fn median_kept(model: &str, args: &[&str]) -> f64 {
    let mut kept: Vec<f64> = (0..3).map(|_| convoy_on(model, args).kept).collect();
    kept.sort_by(f64::total_cmp);
    kept[1]
}

/// The convoy on `model` started with `args`, the server on one CPU and the clients on
/// another.
fn convoy_on(model: &str, args: &[&str]) -> Convoy {
    let _one = common::timing_lock();
    let (server_cpu, load_cpu) = server_and_load_cpus();
    let mut args = args.to_vec();
    args.extend(["--switch-interval", "5ms"]);
    let server = Server::start_on(model, &args, server_cpu);
    let label = format!("{model} {args:?}");
    thread::scope(|scope| {
        scope
            .spawn(|| {
                pin_this_thread(load_cpu);
                let mut rapid = server.connect();
                rapid_fire_rate(&mut rapid, Duration::from_millis(200)); // warm up
                let alone = rapid_fire_rate(&mut rapid, Duration::from_millis(700));
                let stop = AtomicBool::new(false);
                thread::scope(|scope| {
                    let (addr, stop) = (server.addr, &stop);
                    scope.spawn(move || {
                        let mut hog = Client::connect(addr);
                        while !stop.load(Ordering::Relaxed) {
                            assert_eq!(hog.request("fib 40"), "102334155");
                        }
                    });
                    thread::sleep(Duration::from_millis(100));
                    let beside = rapid_fire_rate(&mut rapid, Duration::from_secs(1));
                    let stats: serde_json::Value =
                        serde_json::from_str(&rapid.request("stats")).expect("stats is JSON");
                    eprintln!("{label}: {}", placement(server.pid()));
                    stop.store(true, Ordering::Relaxed);
                    let kept = beside / alone;
                    eprintln!(
                        "{label}: fib 1 at {alone:.0} req/s alone, {beside:.0} req/s beside fib 40 ({:.1} %)",
                        kept * 100.0
                    );
                    Convoy { kept, stats }
                })
            })
            .join()
            .expect("the clients do not panic")
    })
}

#[test]
fn the_new_gil_collapses_the_rapid_fire_rate() {
    let kept = rate_kept_beside_a_hog("new");
    assert!(
        kept < 0.10,
        "under --gil new the rapid client kept {:.1} % of its rate",
        kept * 100.0
    );
}

#[test]
fn without_a_gil_the_rapid_fire_rate_holds() {
    let kept = rate_kept_beside_a_hog("none");
    // The scheduler's share of the one core, as with the priority GIL below (the lab read
    // 49–56 % on an AMD EPYC host): far from the convoy's 1 % whatever the host.
    assert!(
        kept > 0.2,
        "under --gil none the rapid client kept only {:.1} % of its rate",
        kept * 100.0
    );
}

#[test]
fn the_priority_gil_keeps_the_rapid_fire_rate() {
    let kept = rate_kept_beside_a_hog("priority");
    // Without the convoy the rapid client is left the scheduler's share of the one core it
    // shares with the hog: 80 % on the Intel hosts of earlier sessions, 29–41 % on an AMD
    // EPYC one. The new GIL's convoy leaves about 1 %: a fifth is far from both.
    assert!(
        kept > 0.2,
        "under --gil priority the rapid client kept only {:.1} % of its rate",
        kept * 100.0
    );
}

/// The GIL record of the thread whose name starts with `prefix`.
fn gil_thread<'a>(stats: &'a serde_json::Value, prefix: &str) -> &'a serde_json::Value {
    stats["gil"]["threads"]
        .as_array()
        .and_then(|threads| {
            threads.iter().find(|thread| {
                thread["name"]
                    .as_str()
                    .is_some_and(|name| name.starts_with(prefix))
            })
        })
        .unwrap_or_else(|| panic!("no GIL thread named {prefix}…: {stats}"))
}

/// The essays' threshold server under the GIL, offloading fib n > 15 to `target`.
fn threshold_hybrid(target: &str) -> [&str; 8] {
    [
        "--gil",
        "new",
        "--workers",
        "2",
        "--offload",
        "threshold:15",
        "--offload-to",
        target,
    ]
}

/// The essays' threshold server under the GIL: offloading `fib 40` to threads of the same
/// interpreter does not free the event loop — the pool thread holds the GIL while the loop
/// waits a switch interval for it at every request, as asyncio's loop does beside a
/// `ThreadPoolExecutor` in CPython (measured there: ~11,600 → ~200 requests/s).
#[test]
fn under_the_gil_offloading_to_threads_stalls_the_event_loop() {
    let convoy = convoy_on("hybrid", &threshold_hybrid("pool"));
    let event_loop = gil_thread(&convoy.stats, "event loop");
    let pool_forced: u64 = convoy.stats["gil"]["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|thread| thread["name"].as_str().unwrap().starts_with("thread pool"))
        .map(|thread| thread["forced_releases"].as_u64().unwrap())
        .sum();
    // The mechanism: the loop asks the pool thread to drop (a waiter asks only after a whole
    // interval without the GIL), and the pool threads are forced out again and again.
    assert!(
        event_loop["drop_requests"].as_u64().unwrap() >= 20,
        "the loop seldom had to ask for the GIL: {event_loop}"
    );
    assert!(
        pool_forced >= 20,
        "the pool threads were seldom forced out: {}",
        convoy.stats["gil"]
    );
    assert!(
        event_loop["wait_ms"]["max"].as_f64().unwrap() >= 5.0,
        "the loop never waited a whole interval for the GIL: {event_loop}"
    );
    assert!(
        convoy.kept < 0.5,
        "offloading to threads kept {:.1} % of the rate",
        convoy.kept * 100.0
    );
}

/// Offloading to worker processes does free the loop: the hog computes under another
/// process's GIL, and the loop's own GIL is never asked for.
#[test]
fn under_the_gil_offloading_to_processes_keeps_the_event_loop_responsive() {
    let convoy = convoy_on("hybrid", &threshold_hybrid("procpool"));
    let event_loop = gil_thread(&convoy.stats, "event loop");
    assert_eq!(
        event_loop["drop_requests"], 0,
        "nobody else holds this interpreter's GIL: {event_loop}"
    );
    // The loop still shares its one core with the hog's worker process, and the OS, not a
    // lock, divides it: a share far above the threads' ~2 %, though not all of it.
    assert!(
        convoy.kept > 0.3,
        "offloading to processes kept only {:.1} % of the rate",
        convoy.kept * 100.0
    );
}

#[test]
fn stats_and_trace_report_the_gil() {
    let _one = common::timing_lock();
    let dir = std::env::temp_dir().join(format!("clab-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace_path = dir.join("gil.json");
    let mut server = Server::start(
        "pool",
        &[
            "--workers",
            "2",
            "--gil",
            "new",
            "--trace",
            trace_path.to_str().unwrap(),
        ],
    );
    let mut first = server.connect();
    let mut second = server.connect();
    // Both compute for tens of milliseconds at once, well past one 5 ms switch interval,
    // so the GIL must be forced to change hands.
    first.send(b"fib 35\n");
    assert_eq!(second.request("fib 34"), "5702887");
    assert_eq!(first.read_line(), "9227465");
    let stats: serde_json::Value = serde_json::from_str(&second.request("stats")).unwrap();
    let gil = &stats["gil"];
    assert_eq!(gil["variant"], "new");
    assert_eq!(gil["switch_interval_us"], 5000);
    let threads = gil["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2, "one entry per pool worker: {gil}");
    assert!(gil["switches"].as_u64().unwrap() >= 2);
    for field in [
        "acquisitions",
        "voluntary_releases",
        "forced_releases",
        "drop_requests",
        "retries",
    ] {
        assert!(threads[0][field].is_u64(), "{field} in {gil}");
    }
    assert!(threads[0]["wait_ms"]["p99"].is_f64());
    drop((first, second));

    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    let trace: clab::gil::Trace =
        serde_json::from_slice(&std::fs::read(&trace_path).unwrap()).unwrap();
    assert_eq!(trace.variant, "new");
    assert!(
        trace
            .events
            .iter()
            .any(|e| e.event == clab::gil::EventKind::ReleaseForced)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_model_serves_under_the_gil() {
    for model in common::models() {
        let server = Server::start(model, &["--gil", "new", "--workers", "2"]);
        let mut client = server.connect();
        assert_eq!(client.request("fib 25"), "75025", "{model}");
        assert_eq!(client.request("sleep 5"), "slept 5", "{model}");
        let stats: serde_json::Value = serde_json::from_str(&client.request("stats")).unwrap();
        assert_eq!(stats["gil"]["variant"], "new", "{model}: {stats}");
        let acquisitions: u64 = stats["gil"]["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|thread| thread["acquisitions"].as_u64().unwrap())
            .sum();
        assert!(
            acquisitions > 0,
            "{model}: some thread took the GIL: {stats}"
        );
    }
}

/// Two `spin 300` requests on two connections at once, as a share of the time the same two
/// take one after the other, on `model` with two workers under the new GIL (the server on
/// every CPU): the median of three tries. Also the server's `stats` after them.
fn overlap_under_the_gil(model: &str) -> (f64, serde_json::Value) {
    let _one = common::timing_lock();
    let server = Server::start(model, &["--gil", "new", "--workers", "2"]);
    let spin = |clients: usize, each: usize| {
        let started = Instant::now();
        thread::scope(|scope| {
            for _ in 0..clients {
                scope.spawn(|| {
                    let mut client = server.connect();
                    for _ in 0..each {
                        assert_eq!(client.request("spin 300"), "spun 300");
                    }
                });
            }
        });
        started.elapsed().as_secs_f64()
    };
    let mut shares: Vec<f64> = (0..3).map(|_| spin(2, 1) / spin(1, 2)).collect();
    shares.sort_by(f64::total_cmp);
    let stats = serde_json::from_str(&server.connect().request("stats")).unwrap();
    eprintln!(
        "{model}: two spin 300 at once take {:.2}× the serial time",
        shares[1]
    );
    (shares[1], stats)
}

#[test]
fn subinterpreters_with_a_gil_each_compute_side_by_side_where_threads_cannot() {
    if clab::system::cpus::allowed_cpus().len() < 2 {
        eprintln!("one CPU: nothing can compute side by side here");
        return;
    }
    let (interpreters, stats) = overlap_under_the_gil("interpreters");
    let (threads, _) = overlap_under_the_gil("threads");
    assert!(
        interpreters <= 0.65,
        "two subinterpreters took {interpreters:.2}× the serial time"
    );
    assert!(
        threads >= 0.9,
        "two threads under one GIL took only {threads:.2}× the serial time"
    );
    let gils = stats["interpreters"]
        .as_array()
        .expect("a GIL per interpreter");
    assert_eq!(gils.len(), 2, "{stats}");
    assert!(gils.iter().all(|gil| gil["variant"] == "new"), "{stats}");
}

#[test]
fn a_hog_in_one_subinterpreter_leaves_the_rapid_client_its_rate() {
    // The hog holds its own interpreter's GIL; `fib 1` runs in the other under its own. On
    // the one server core the scheduler shares between them, each hand-off to an interpreter
    // wakes a sleeping thread, which preempts the hog at once (CPython 3.13 keeps ~74 %).
    let kept = median_kept("interpreters", &["--gil", "new", "--workers", "2"]);
    // The scheduler's share of the core: 80–82 % on the Intel hosts of earlier sessions,
    // 43–54 % on an AMD EPYC one; 2 % with the old channel, about 1 % in a GIL's convoy. A
    // fifth is far from both sides on either host.
    assert!(
        kept > 0.2,
        "the rapid client kept {:.0} % beside a hog in another interpreter",
        kept * 100.0
    );
}

/// The pools hand jobs over through a queue whose idle workers sleep: a channel that spins
/// and `sched_yield`s first gave the shared core to the hog at every hand-off, and the rapid
/// client kept 2 % of its rate, as if processes convoyed like threads under one GIL.
#[test]
fn a_hog_in_a_worker_process_leaves_the_rapid_client_its_rate_on_one_core() {
    let kept = median_kept("procpool", &["--gil", "new", "--workers", "2"]);
    assert!(
        kept > 0.3,
        "the rapid client kept {:.0} % beside a hog in another process",
        kept * 100.0
    );
}

#[test]
fn the_hybrid_offloads_to_subinterpreters_each_with_its_own_gil() {
    let server = Server::start("hybrid", &threshold_hybrid("interpreters"));
    let mut client = server.connect();
    assert_eq!(client.request("fib 25"), "75025");
    assert_eq!(client.request("fib 5"), "5");
    let stats: serde_json::Value = serde_json::from_str(&client.request("stats")).unwrap();
    assert_eq!(stats["offloaded"], 1, "only fib 25 left the loop: {stats}");
    let interpreters = stats["interpreters"].as_array().unwrap();
    assert_eq!(interpreters.len(), 2, "{stats}");
    let acquisitions: u64 = interpreters
        .iter()
        .flat_map(|gil| gil["threads"].as_array().unwrap())
        .map(|thread| thread["acquisitions"].as_u64().unwrap())
        .sum();
    assert!(
        acquisitions > 0,
        "an interpreter computed under its GIL: {stats}"
    );
}
