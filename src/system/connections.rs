//! The registry of open connections: admission against `--max-connections`, the open count
//! for `stats`, the shutdown sweep that wakes every connection blocked in a read, the cut at
//! the drain's deadline that wakes every one blocked in a write, and — for the event loops —
//! the idle clock.
//!
//! Event loops time idle connections here rather than with a timer each: a tokio `Sleep` per
//! connection was the largest part of what an idle connection cost. A connection notes when
//! it starts and stops waiting for its client; one sweep per server ends the reads of those
//! that have waited too long and marks them, so their task sees end of file and says why.
//!
//! The sweep shuts down the read side of each registered socket. A reader blocked in
//! `read` (blocking models) or waiting for readiness (async models) then sees end of file,
//! while a reply still being computed can be written. That is how an idle connection
//! notices shutdown without the hot path polling a second descriptor on every read.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::sync::lock;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-connections` are already open.
    Busy,
    /// The server is shutting down.
    Closing,
}

#[derive(Debug)]
pub struct Connections {
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    open: HashMap<u64, Entry>,
    next_id: u64,
    closing: bool,
}

#[derive(Debug)]
struct Entry {
    fd: RawFd,
    /// Since when the connection has been waiting for its client's bytes (event loops).
    waiting_since: Option<Instant>,
    /// Its reads were ended by [`Connections::close_idle`].
    idled_out: bool,
}

impl Connections {
    pub fn new(max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Registers `stream` if there is room, or hands it back with the reason.
    pub fn admit<S: AsRawFd>(self: &Arc<Self>, stream: S) -> Result<Connection<S>, (Refusal, S)> {
        let mut state = self.state();
        if state.closing {
            return Err((Refusal::Closing, stream));
        }
        if state.open.len() >= self.max {
            return Err((Refusal::Busy, stream));
        }
        let id = state.next_id;
        state.next_id += 1;
        let entry = Entry {
            fd: stream.as_raw_fd(),
            waiting_since: None,
            idled_out: false,
        };
        state.open.insert(id, entry);
        Ok(Connection {
            registry: Arc::clone(self),
            id,
            stream,
        })
    }

    pub fn open(&self) -> usize {
        self.state().open.len()
    }

    /// Refuses new connections and ends the reads of all open ones.
    pub fn close_reads(&self) {
        self.shut(nix::sys::socket::Shutdown::Read);
    }

    /// Refuses new connections and ends both directions of all open ones: a writer blocked
    /// on a client that does not read fails at once (EPIPE) instead of at its write timeout.
    pub fn close_all(&self) {
        self.shut(nix::sys::socket::Shutdown::Both);
    }

    fn shut(&self, how: nix::sys::socket::Shutdown) {
        let mut state = self.state();
        state.closing = true;
        // Each `fd` belongs to a registered `Connection`, which deregisters under this lock
        // before its socket is closed: while we hold the lock, no descriptor here can have
        // been closed and reused for something else.
        for entry in state.open.values() {
            // The peer may already be gone (ENOTCONN); there is nothing left to wake then.
            let _ = nix::sys::socket::shutdown(entry.fd, how);
        }
    }

    /// Ends the reads of the connections that have waited longer than `limit` for their
    /// client, and marks them idled out; returns how many.
    pub fn close_idle(&self, limit: Duration) -> usize {
        let now = Instant::now();
        let mut closed = 0;
        for entry in self.state().open.values_mut() {
            let waited = entry
                .waiting_since
                .is_some_and(|since| now.duration_since(since) >= limit);
            if waited && !entry.idled_out {
                entry.idled_out = true;
                // As in `shut`: registered, so not yet closed; a vanished peer needs no wake.
                let _ = nix::sys::socket::shutdown(entry.fd, nix::sys::socket::Shutdown::Read);
                closed += 1;
            }
        }
        closed
    }
}

/// An admitted connection. Dropping it deregisters the socket, then closes it.
#[derive(Debug)]
pub struct Connection<S: AsRawFd> {
    registry: Arc<Connections>,
    id: u64,
    pub stream: S,
}

impl<S: AsRawFd> Connection<S> {
    /// A number unique among this server's connections, in order of admission.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The connection starts (`true`) or stops (`false`) waiting for its client's bytes:
    /// the idle clock of [`Connections::close_idle`] runs only in between.
    pub fn waiting(&self, waiting: bool) {
        if let Some(entry) = self.registry.state().open.get_mut(&self.id) {
            entry.waiting_since = waiting.then(Instant::now);
        }
    }

    /// Whether [`Connections::close_idle`] ended this connection's reads: the end of file
    /// it then reads is the idle timeout, not the client leaving.
    pub fn idled_out(&self) -> bool {
        self.registry
            .state()
            .open
            .get(&self.id)
            .is_some_and(|entry| entry.idled_out)
    }
}

impl<S: AsRawFd> Drop for Connection<S> {
    fn drop(&mut self) {
        // Runs before `stream` is dropped, which is the order `close_reads` relies on.
        self.registry.state().open.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn admits_up_to_the_limit_and_frees_slots_on_drop() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let registry = Connections::new(1);
        let (_c1, s1) = pair(&listener);
        let (_c2, s2) = pair(&listener);
        let first = registry.admit(s1).unwrap();
        assert_eq!(registry.open(), 1);
        let (refusal, s2) = registry.admit(s2).unwrap_err();
        assert_eq!(refusal, Refusal::Busy);
        drop(first);
        assert_eq!(registry.open(), 0);
        let _second = registry.admit(s2).unwrap();
        assert_eq!(registry.open(), 1);
    }

    #[test]
    fn close_reads_wakes_a_blocked_reader_and_refuses_newcomers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let registry = Connections::new(10);
        let (_client, server) = pair(&listener);
        let mut connection = registry.admit(server).unwrap();
        let reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 16];
            connection.stream.read(&mut buffer).unwrap()
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        registry.close_reads();
        assert_eq!(
            reader.join().unwrap(),
            0,
            "the blocked read ends at end of file"
        );
        let (_c, s) = pair(&listener);
        assert_eq!(registry.admit(s).unwrap_err().0, Refusal::Closing);
    }

    #[test]
    fn close_all_wakes_a_writer_blocked_on_a_client_that_does_not_read() {
        use std::io::Write;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let registry = Connections::new(10);
        let (_client, server) = pair(&listener);
        let mut connection = registry.admit(server).unwrap();
        let writer = std::thread::spawn(move || {
            let chunk = [b'x'; 64 * 1024];
            // The client never reads: the buffers fill and a write blocks, until the cut.
            loop {
                if let Err(error) = connection.stream.write_all(&chunk) {
                    return error.kind();
                }
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        registry.close_all();
        assert_eq!(writer.join().unwrap(), std::io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn close_idle_ends_only_the_reads_of_connections_waiting_past_the_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let registry = Connections::new(10);
        let (_c1, s1) = pair(&listener);
        let (_c2, s2) = pair(&listener);
        let (_c3, s3) = pair(&listener);
        let mut waiting = registry.admit(s1).unwrap();
        let busy = registry.admit(s2).unwrap();
        let fresh = registry.admit(s3).unwrap();
        waiting.waiting(true);
        busy.waiting(true);
        busy.waiting(false); // it read something: its clock stopped
        let limit = std::time::Duration::from_millis(50);
        std::thread::sleep(limit * 2);
        fresh.waiting(true);
        assert_eq!(registry.close_idle(limit), 1);
        assert!(waiting.idled_out() && !busy.idled_out() && !fresh.idled_out());
        let mut buffer = [0u8; 1];
        assert_eq!(
            waiting.stream.read(&mut buffer).unwrap(),
            0,
            "its reads ended"
        );
        assert_eq!(registry.close_idle(limit), 0, "each is closed once");
        assert_eq!(registry.open(), 3, "idled out is not yet closed");
    }
}
