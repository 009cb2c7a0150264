//! Offloading through a real broker: `nats-server -js` on a free loopback port with a
//! temporary store, `clab serve --offload-to nats://…` and `clab worker --nats` processes.
//! Every request gets its reply or one `ERR` line — with a worker SIGKILLed mid-job, with the
//! broker restarted under load — and a bad URL is one line and a failure.
//!
//! Skipped, saying so, where no `nats-server` is installed (`.ci/run` installs Debian's).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::nats::{Nats, Worker};
use common::{Client, PATIENCE, Server, clab, output_within};

/// `procpool` offloading everything to the broker at `url`.
fn server_through(url: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--offload-to", url];
    args.extend(extra);
    Server::start("procpool", &args)
}

#[test]
fn requests_go_through_the_broker_to_a_worker_and_back() {
    let store = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(store.path()) else {
        return;
    };
    let server = server_through(&nats.url(), &[]);
    let _worker = Worker::start(&nats.url(), 2);
    assert_eq!(server.connect().request("fib 20"), "6765");
    let mut client = server.connect();
    for (request, reply) in [
        ("fib 25", "75025"),
        ("spin 5", "spun 5"),
        ("echo not offloaded", "not offloaded"),
        ("7", "13"),
        ("fib 99", "ERR n must be an integer from 0 to 45"),
    ] {
        assert_eq!(client.request(request), reply, "{request}");
    }
    let stats: serde_json::Value = serde_json::from_str(&client.request("stats")).unwrap();
    assert!(stats["offloaded"].as_u64().unwrap() >= 4, "{stats}");
}

/// The hybrid answers cheap requests on its loop and sends only the expensive ones through
/// the broker; with the broker gone, an expensive request gets an `ERR` line, not silence.
#[test]
fn the_hybrid_offloads_only_expensive_requests_and_says_when_the_broker_is_gone() {
    let store = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(store.path()) else {
        return;
    };
    let server = Server::start(
        "hybrid",
        &[
            "--offload",
            "threshold:15",
            "--offload-to",
            &nats.url(),
            "--job-timeout",
            "3s",
        ],
    );
    let mut client = server.connect();
    // No worker yet: only a request answered on the loop can come back.
    assert_eq!(client.request("fib 10"), "55");
    let _worker = Worker::start(&nats.url(), 1);
    assert_eq!(client.request("fib 20"), "6765");
    let stats: serde_json::Value = serde_json::from_str(&client.request("stats")).unwrap();
    assert_eq!(stats["offloaded"], 1, "{stats}");
    nats.stop();
    let started = Instant::now();
    let reply = client.request("fib 21");
    assert!(
        reply == "ERR broker unavailable" || reply == "ERR job timed out",
        "{reply}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(client.request("fib 11"), "89", "the loop still answers");
}

/// The acceptance: 20 `fib 32` from four clients, one of two workers SIGKILLed
/// while it holds a job: every reply is correct (the dead worker's job is redelivered).
#[test]
fn a_worker_killed_mid_job_leaves_every_request_answered() {
    let store = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(store.path()) else {
        return;
    };
    let server = server_through(&nats.url(), &[]);
    let mut doomed = Worker::start(&nats.url(), 1);
    let _survivor = Worker::start(&nats.url(), 1);
    assert_eq!(server.connect().request("fib 1"), "1");
    let (answered, replies) = mpsc::channel();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (addr, answered) = (server.addr, answered.clone());
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                for _ in 0..5 {
                    answered.send(client.request("fib 32")).unwrap();
                }
            })
        })
        .collect();
    drop(answered);
    // Both workers are busy once a few replies are in: one job is in the doomed one's hands.
    let mut got: Vec<String> = replies.iter().take(3).collect();
    doomed.kill();
    got.extend(replies.iter());
    for client in clients {
        client.join().expect("a client saw no reply");
    }
    assert_eq!(got.len(), 20);
    assert!(got.iter().all(|reply| reply == "2178309"), "{got:?}");
}

#[test]
fn the_broker_restarted_under_load_answers_every_request_and_service_resumes() {
    let store = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(store.path()) else {
        return;
    };
    let port = nats.port;
    let url = nats.url();
    let server = server_through(&url, &["--job-timeout", "8s"]);
    let _worker = Worker::start(&url, 2);
    assert_eq!(server.connect().request("fib 10"), "55");
    let (answered, replies) = mpsc::channel();
    let client = {
        let addr = server.addr;
        thread::spawn(move || {
            let mut client = Client::connect(addr);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(6) {
                let reply = client.request("fib 15");
                answered.send(reply).unwrap();
            }
        })
    };
    thread::sleep(Duration::from_millis(500));
    nats.stop();
    thread::sleep(Duration::from_millis(500));
    let nats = Nats::start_on(store.path(), Some(port)).expect("nats-server ran a moment ago");
    client.join().expect("every request got a line");
    let replies: Vec<String> = replies.iter().collect();
    assert!(
        replies.iter().all(|r| r == "610" || r.starts_with("ERR ")),
        "{replies:?}"
    );
    // Service resumes: the server and the worker reconnect by themselves.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut client = server.connect();
    loop {
        let reply = client.request("fib 12");
        if reply == "144" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no service after the restart: {reply}"
        );
        thread::sleep(Duration::from_millis(200));
    }
    drop(nats);
}

#[test]
fn a_worker_out_of_the_brokers_reach_says_so_and_keeps_trying() {
    let store = tempfile::tempdir().unwrap();
    // Learn a free port from a broker, then stop it: the worker starts with nobody there.
    let Some(first) = Nats::start(store.path()) else {
        return;
    };
    let (port, url) = (first.port, first.url());
    first.stop();
    let mut worker = clab()
        .args(["worker", "--nats", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = BufReader::new(worker.stderr.take().unwrap());
    let (said, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            let _ = said.send(line);
        }
    });
    let complaint = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("the worker says it cannot reach the broker");
    assert!(
        complaint.contains("cannot reach the broker at") && complaint.contains("trying again"),
        "{complaint}"
    );
    let nats = Nats::start_on(store.path(), Some(port)).expect("nats-server ran a moment ago");
    let server = server_through(&nats.url(), &[]);
    assert_eq!(server.connect().request("fib 11"), "89");
    let _ = worker.kill();
    let _ = worker.wait();
}

#[test]
fn a_bad_broker_url_is_one_line_and_a_failure() {
    for argv in [
        &[
            "serve",
            "--model",
            "procpool",
            "--offload-to",
            "nats://nowhere",
        ][..],
        &[
            "serve",
            "--model",
            "hybrid",
            "--offload-to",
            "http://127.0.0.1:4222",
        ],
        &["worker", "--nats", "127.0.0.1:4222"],
    ] {
        let output = output_within(clab().args(argv), PATIENCE);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{argv:?}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(first.contains("is not a broker URL"), "{argv:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{argv:?}: {stderr}");
    }
    // A well-formed URL where no broker listens: the server says so and does not start.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let output = output_within(
        clab()
            .args(["serve", "--model", "procpool", "--offload-to"])
            .arg(format!("nats://127.0.0.1:{port}"))
            .args(["--addr", "127.0.0.1:0"]),
        PATIENCE,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains("cannot reach the broker at nats://127.0.0.1:"),
        "{stderr}"
    );
}
