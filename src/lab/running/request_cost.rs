//! What a tiny request costs a server's own request path, measured as it is served: the
//! server and one client pinned to one CPU, `fib 1` after `fib 1` on one connection, the
//! server's CPU (every thread, to the nanosecond) per request. Run on CPython's reference
//! server and on the emulated one, the difference is the interpreter work the emulation
//! standing for that interpreter spends per request (`clab serve --request-cost`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::lab::running::process::{ChildKind, ChildServer};
use crate::system::cpu_time;

/// Requests before the first repeat (connections, caches and the allocator warmed).
const WARMUP: u32 = 300;
/// Requests per repeat, and repeats: about 0.3 s in all for asyncio, less elsewhere.
const REQUESTS: u32 = 1_000;
const REPEATS: usize = 5;

/// The CPU per request of one server: the median of its repeats, and their spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MeasuredRequest {
    pub median: Duration,
    pub lowest: Duration,
    pub highest: Duration,
}

impl MeasuredRequest {
    fn of(mut repeats: Vec<Duration>) -> Option<MeasuredRequest> {
        repeats.sort();
        Some(MeasuredRequest {
            median: *repeats.get(repeats.len() / 2)?,
            lowest: *repeats.first()?,
            highest: *repeats.last()?,
        })
    }

    /// "45 µs (40–50 µs)".
    pub fn describe(&self) -> String {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        format!(
            "{:.0} µs ({:.0}–{:.0} µs)",
            us(self.median),
            us(self.lowest),
            us(self.highest)
        )
    }
}

/// Starts the server `command` (it prints "listening on HOST:PORT") pinned to `cpu`, serves
/// it tiny requests from this thread, which must already run on `cpu`, and stops it.
/// `log` receives its standard error.
pub fn measure(
    command: Command,
    label: &str,
    cpu: usize,
    log: &Path,
) -> Result<MeasuredRequest, String> {
    let server = ChildServer::start(command, (label, ChildKind::Server), &[cpu], log, None)
        .map_err(|e| e.to_string())?;
    let pid = server
        .pid()
        .ok_or_else(|| format!("{label}: not running"))?;
    let repeats = serve_tiny_requests(&server, pid).map_err(|e| format!("{label}: {e}"));
    server.stop();
    MeasuredRequest::of(repeats?).ok_or_else(|| format!("{label}: no repeats"))
}

/// The server's CPU per request of each repeat.
fn serve_tiny_requests(server: &ChildServer, pid: u32) -> std::io::Result<Vec<Duration>> {
    let mut stream = TcpStream::connect(server.addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut replies = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    let mut ask = || -> std::io::Result<()> {
        stream.write_all(b"fib 1\n")?;
        line.clear();
        replies.read_line(&mut line)?;
        match line.trim_end() {
            "1" => Ok(()),
            other => Err(std::io::Error::other(format!("`fib 1` answered {other:?}"))),
        }
    };
    for _ in 0..WARMUP {
        ask()?;
    }
    (0..REPEATS)
        .map(|_| {
            let before = cpu_time::of_process(pid);
            for _ in 0..REQUESTS {
                ask()?;
            }
            Ok((cpu_time::of_process(pid).saturating_sub(before)) / REQUESTS)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_the_repeats_with_their_spread() {
        let us = Duration::from_micros;
        let measured = MeasuredRequest::of(vec![us(50), us(40), us(45), us(70), us(44)]);
        assert_eq!(
            measured,
            Some(MeasuredRequest {
                median: us(45),
                lowest: us(40),
                highest: us(70)
            })
        );
        assert_eq!(measured.unwrap().describe(), "45 µs (40–70 µs)");
        assert_eq!(MeasuredRequest::of(Vec::new()), None);
    }
}
