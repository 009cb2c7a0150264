//! `clab serve --gil` over real TCP: the essays' convoy. A rapid-fire `fib 1` client loses
//! nearly all of its rate when another client's `fib 40` loop joins under the new GIL, and
//! keeps most of it without a GIL or under the priority GIL.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Client, Server, placement};

/// The measurements need the machine's two cores to themselves, as far as this file goes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

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

/// The rapid-fire rate beside a `fib 40` loop, as a fraction of its rate alone.
fn rate_kept_beside_a_hog(gil: &str) -> f64 {
    rate_kept_beside_a_hog_on("threads", &["--gil", gil])
}

/// The same on `model` started with `args`.
fn rate_kept_beside_a_hog_on(model: &str, args: &[&str]) -> f64 {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut args = args.to_vec();
    args.extend(["--switch-interval", "5ms"]);
    let server = Server::start(model, &args);
    let gil = format!("{model} {args:?}");
    let mut rapid = server.connect();
    rapid_fire_rate(&mut rapid, Duration::from_millis(200)); // warm up
    let alone = rapid_fire_rate(&mut rapid, Duration::from_millis(700));

    let stop = AtomicBool::new(false);
    let beside = thread::scope(|scope| {
        let (addr, stop) = (server.addr, &stop);
        scope.spawn(move || {
            let mut hog = Client::connect(addr);
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(hog.request("fib 40"), "102334155");
            }
        });
        thread::sleep(Duration::from_millis(100));
        let beside = rapid_fire_rate(&mut rapid, Duration::from_secs(1));
        eprintln!("--gil {gil}: {}", placement(server.pid()));
        stop.store(true, Ordering::Relaxed);
        beside
    });
    let kept = beside / alone;
    eprintln!(
        "--gil {gil}: fib 1 at {alone:.0} req/s alone, {beside:.0} req/s beside fib 40 ({:.1} %)",
        kept * 100.0
    );
    kept
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
    assert!(
        kept > 0.5,
        "under --gil none the rapid client kept only {:.1} % of its rate",
        kept * 100.0
    );
}

#[test]
fn the_priority_gil_keeps_the_rapid_fire_rate() {
    let kept = rate_kept_beside_a_hog("priority");
    assert!(
        kept > 0.5,
        "under --gil priority the rapid client kept only {:.1} % of its rate",
        kept * 100.0
    );
}

/// The essays' threshold server, under the GIL: offloading `fib 40` to threads of the same
/// interpreter does not free the event loop (they still take turns on one GIL); offloading
/// to processes does.
#[test]
fn under_the_gil_only_process_offload_keeps_the_event_loop_responsive() {
    let hybrid = |target| {
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
    };
    let to_threads = rate_kept_beside_a_hog_on("hybrid", &hybrid("pool"));
    let to_processes = rate_kept_beside_a_hog_on("hybrid", &hybrid("procpool"));
    // How much the threads lose depends on how often the woken pool thread wins the race
    // for the GIL (gil-model.md §3.2's p); that they lose most of it, and far more than the
    // processes, does not.
    assert!(
        to_threads < 0.5,
        "offloading to threads kept {:.1} % of the rate",
        to_threads * 100.0
    );
    assert!(
        to_processes > 0.5,
        "offloading to processes kept only {:.1} % of the rate",
        to_processes * 100.0
    );
    assert!(
        to_threads * 4.0 < to_processes,
        "threads {to_threads:.3} vs processes {to_processes:.3}"
    );
}

#[test]
fn stats_and_trace_report_the_gil() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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
