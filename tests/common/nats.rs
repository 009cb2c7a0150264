//! A real NATS broker for the broker tests: `nats-server -js` on a free loopback port with
//! a temporary store, optionally under a configuration file (authentication, TLS), and
//! `clab worker --nats` processes; each stopped and reaped when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{PATIENCE, clab};

/// A `nats-server -js` child on 127.0.0.1, stopped and reaped when dropped.
pub struct Nats {
    child: Child,
    pub port: u16,
}

impl Nats {
    /// On a free port (the server picks it), or `None` when nats-server is not installed.
    pub fn start(store: &Path) -> Option<Nats> {
        Nats::start_on(store, None)
    }

    pub fn start_on(store: &Path, port: Option<u16>) -> Option<Nats> {
        Nats::launch(store, port, None, &[])
    }

    /// Under the configuration file `config`, with `environment` for the variables it
    /// names; the address, port and store given here override the file's.
    pub fn with_config(store: &Path, config: &Path, environment: &[(&str, &str)]) -> Option<Nats> {
        Nats::launch(store, None, Some(config), environment)
    }

    fn launch(
        store: &Path,
        port: Option<u16>,
        config: Option<&Path>,
        environment: &[(&str, &str)],
    ) -> Option<Nats> {
        let Some(program) = clab::system::programs::find("nats-server") else {
            eprintln!("skipped: no nats-server installed (`apt-get install nats-server`)");
            return None;
        };
        let mut command = Command::new(program);
        if let Some(config) = config {
            command.arg("-c").arg(config);
        }
        let port_arg = port.map_or("-1".to_owned(), |port| port.to_string());
        let spawned = command
            .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
            .arg(store)
            .envs(environment.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = spawned.expect("start nats-server");
        let log = BufReader::new(child.stderr.take().expect("piped stderr"));
        let (found, port) = mpsc::channel();
        thread::spawn(move || {
            let marker = "Listening for client connections on 127.0.0.1:";
            let mut told = false;
            // Read to the end, so the server never blocks on a full pipe.
            for line in log.lines().map_while(Result::ok) {
                if !told && let Some((_, port)) = line.split_once(marker) {
                    let _ = found.send(port.trim().parse::<u16>().ok());
                    told = true;
                }
            }
        });
        match port.recv_timeout(PATIENCE) {
            Ok(Some(port)) => Some(Nats { child, port }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nats-server did not say where it listens");
            }
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn tls_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    /// Stops the broker as an operator would (SIGTERM) and waits for it.
    pub fn stop(mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `clab worker --nats` child, killed and reaped when dropped.
pub struct Worker {
    pub child: Child,
}

impl Worker {
    pub fn start(url: &str, concurrency: usize) -> Worker {
        let mut command = clab();
        command
            .args(["worker", "--nats", url, "--concurrency"])
            .arg(concurrency.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Worker::spawn(command)
    }

    /// `command` (a `clab worker …`), with no standard input.
    pub fn spawn(mut command: Command) -> Worker {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .expect("start a worker");
        Worker { child }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}
