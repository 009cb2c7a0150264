//! The broker past one machine, against a real `nats-server` started with a generated
//! configuration: a token-protected broker serves the server and worker that hold the token
//! and refuses them without it, each in one line; the README's TLS configuration
//! (`docs/broker/nats-server.conf`, with a certificate made here) carries a round trip over
//! `tls://` and keeps the worker's user from touching anything but its jobs; and a worker
//! handed malformed jobs through the queue answers `ERR` and keeps serving.
//!
//! Skipped, saying so, where no `nats-server` is installed (`.ci/run` installs Debian's).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::nats::{Nats, Worker};
use common::{PATIENCE, Server, clab, output_within};

const TOKEN: &str = "s3cret-token";

/// The error lines a failed `clab` printed, without blank ones.
fn error_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// A worker whose log is read line by line, as it comes.
fn logged_worker(args: &[&str], environment: &[(&str, &str)]) -> (Worker, mpsc::Receiver<String>) {
    let mut command = clab();
    command
        .arg("worker")
        .args(args)
        .envs(environment.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut worker = Worker::spawn(command);
    let log = BufReader::new(worker.child.stderr.take().expect("piped stderr"));
    let (said, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            let _ = said.send(line);
        }
    });
    (worker, lines)
}

/// `clab serve` offloading to `url` with `extra` options, expected to fail at start.
fn refused_server(url: &str, extra: &[&str]) -> (Option<i32>, Vec<String>) {
    let output = output_within(
        clab()
            .args(["serve", "--model", "procpool", "--addr", "127.0.0.1:0"])
            .args(["--offload-to", url])
            .args(extra),
        PATIENCE,
    );
    (output.status.code(), error_lines(&output.stderr))
}

#[test]
fn a_token_protected_broker_serves_the_token_holders_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("token.conf");
    std::fs::write(&config, format!("authorization {{ token: \"{TOKEN}\" }}\n")).unwrap();
    let Some(nats) = Nats::with_config(&dir.path().join("store"), &config, &[]) else {
        return;
    };
    let url = nats.url();
    // The server's token from a file, the worker's from the environment: neither in `ps`.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_file = token_file.to_str().unwrap();
    let server = Server::start(
        "procpool",
        &["--offload-to", &url, "--nats-token-file", token_file],
    );
    let (_worker, _log) = logged_worker(&["--nats", &url], &[("CLAB_NATS_TOKEN", TOKEN)]);
    assert_eq!(server.connect().request("fib 20"), "6765");

    // Without the token, or with another: the server does not start, and says why in a line.
    let refused = format!(
        "clab: cannot start the workers its requests go to: the broker at {url} refused these credentials"
    );
    assert_eq!(refused_server(&url, &[]), (Some(1), vec![refused.clone()]));
    let wrong = format!("nats://not-{TOKEN}@127.0.0.1:{}", nats.port);
    assert_eq!(refused_server(&wrong, &[]), (Some(1), vec![refused]));

    // A worker without it says so, and keeps trying.
    let (mut worker, log) = logged_worker(&["--nats", &url], &[]);
    let complaint = log
        .recv_timeout(PATIENCE)
        .expect("the worker says the broker refused it");
    assert!(
        complaint.contains(&format!("the broker at {url} refused these credentials"))
            && complaint.contains("trying again"),
        "{complaint}"
    );
    let again = log.recv_timeout(PATIENCE).expect("it tries again");
    assert!(again.contains("refused these credentials"), "{again}");
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "it is still running"
    );
}

/// A certificate authority and a certificate it signed for 127.0.0.1, as PEM files in `dir`:
/// `ca.pem`, `broker.pem` and `broker.key`.
fn certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut authority = CertificateParams::new(Vec::<String>::new()).unwrap();
    authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    authority
        .distinguished_name
        .push(rcgen::DnType::CommonName, "clab test CA");
    let authority = CertifiedIssuer::self_signed(authority, KeyPair::generate().unwrap()).unwrap();
    let broker_key = KeyPair::generate().unwrap();
    let broker = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&broker_key, &authority)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), authority.pem()).unwrap();
    std::fs::write(dir.join("broker.pem"), broker.pem()).unwrap();
    std::fs::write(dir.join("broker.key"), broker_key.serialize_pem()).unwrap();
}

/// A NATS client of the test's own, for what `clab` never does.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_readmes_tls_broker_carries_a_round_trip_and_holds_the_worker_to_its_jobs() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/broker/nats-server.conf");
    let environment = [
        ("CLAB_BROKER_CERT", path("broker.pem")),
        ("CLAB_BROKER_KEY", path("broker.key")),
        ("CLAB_SERVER_PASSWORD", "server-password".to_owned()),
        ("CLAB_WORKER_PASSWORD", "worker-password".to_owned()),
    ];
    let environment: Vec<(&str, &str)> = environment
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let Some(nats) = Nats::with_config(&dir.path().join("store"), &config, &environment) else {
        return;
    };
    let url = nats.tls_url();
    let ca = path("ca.pem");
    std::fs::write(dir.path().join("server.password"), "server-password\n").unwrap();
    let server_password = path("server.password");
    // The worker first: it waits for a server to make the job stream, which it may not.
    let (_worker, _log) = logged_worker(
        &["--nats", &url, "--nats-user", "worker", "--nats-ca", &ca],
        &[("CLAB_NATS_PASSWORD", "worker-password")],
    );
    let server_access = [
        "--offload-to",
        &url,
        "--nats-user",
        "server",
        "--nats-password-file",
        &server_password,
    ];
    let server = Server::start(
        "procpool",
        &[&server_access[..], &["--nats-ca", &ca]].concat(),
    );
    let mut client = server.connect();
    assert_eq!(client.request("fib 20"), "6765");
    assert_eq!(client.request("spin 5"), "spun 5");

    // Without the CA the broker's certificate cannot be trusted: one line that says so.
    let (code, lines) = refused_server(&url, &server_access[2..]);
    assert_eq!(code, Some(1), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&format!("no TLS connection with the broker at {url}"))
            && lines[0].contains("--nats-ca"),
        "{lines:?}"
    );

    // The worker's user can neither delete the stream nor add a job to it.
    runtime().block_on(async {
        let client = async_nats::ConnectOptions::with_user_and_password(
            "worker".into(),
            "worker-password".into(),
        )
        .add_root_certificates(ca.clone().into())
        .require_tls(true)
        .connect(&url)
        .await
        .expect("the worker's user connects");
        let mut jetstream = async_nats::jetstream::new(client);
        jetstream.set_timeout(Duration::from_secs(1));
        assert!(jetstream.delete_stream("CLAB_JOBS").await.is_err());
        let published = jetstream.publish("clab.jobs", "fib 40".into()).await;
        assert!(published.is_err() || published.unwrap().await.is_err());
    });
    assert_eq!(
        client.request("fib 21"),
        "10946",
        "the stream is still there"
    );
}

#[test]
fn a_worker_answers_malformed_jobs_with_err_and_keeps_serving() {
    let store = tempfile::tempdir().unwrap();
    let Some(nats) = Nats::start(store.path()) else {
        return;
    };
    let url = nats.url();
    // The server makes the job stream; the test then publishes to it as anyone could.
    let server = Server::start("procpool", &["--offload-to", &url]);
    let (_worker, log) = logged_worker(&["--nats", &url], &[]);
    assert_eq!(server.connect().request("fib 12"), "144");
    let huge = "1".repeat(5000);
    let replies = runtime().block_on(async {
        let client = async_nats::connect(&url)
            .await
            .expect("connect to the broker");
        let mut replies = client.subscribe("clab.reply.test").await.unwrap();
        let jetstream = async_nats::jetstream::new(client);
        let mut answered = Vec::new();
        for (id, reply_to, job) in [
            ("1", "clab.reply.test", "fib 99"),
            ("2", "clab.reply.test", "garbage"),
            ("3", "clab.reply.test", huge.as_str()),
            ("4", "clab.reply.test", "sleep 10"),
            // Not a server's reply subject: terminated, never answered.
            ("5", "clab.jobs", "fib 30"),
            ("6", "clab.reply.test", "stats"),
            ("7", "clab.reply.test", "fib 10"),
        ] {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Clab-Job", id);
            headers.insert("Clab-Reply-To", reply_to);
            let ack = jetstream
                .publish_with_headers("clab.jobs", headers, job.to_owned().into())
                .await
                .expect("publish a job");
            ack.await.expect("the stream stores it");
            if reply_to == "clab.jobs" {
                continue;
            }
            let reply = tokio::time::timeout(PATIENCE, futures_util::StreamExt::next(&mut replies))
                .await
                .expect("a reply in time")
                .expect("the subscription is open");
            let header = reply.headers.as_ref().and_then(|h| h.get("Clab-Job"));
            assert_eq!(header.map(|id| id.as_str()), Some(id));
            answered.push(String::from_utf8_lossy(&reply.payload).into_owned());
        }
        answered
    });
    assert_eq!(
        replies[..4],
        [
            "ERR n must be an integer from 0 to 45",
            "ERR unknown command \"garbage\"",
            "ERR job too long: more than 4096 bytes",
            "ERR a worker computes fib and spin only",
        ]
    );
    let stats: serde_json::Value = serde_json::from_str(&replies[4]).unwrap();
    assert_eq!(
        (&stats["refused"], &stats["computed"]),
        (&5.into(), &1.into()),
        "{stats}"
    );
    assert_eq!(replies[5], "55", "it keeps serving");
    assert_eq!(server.connect().request("fib 13"), "233");
    let mut refusals = 0;
    while refusals < 5 {
        let line = log
            .recv_timeout(PATIENCE)
            .expect("a log line per refused job");
        refusals += usize::from(line.contains("refused a job"));
    }
}
