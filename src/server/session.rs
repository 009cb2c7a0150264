//! One connection's protocol state, without I/O: framing, the bare-request rule, the line
//! cap, idle timeouts and shutdown, decided in one place for every model.
//!
//! A driver (blocking in `blocking.rs`, async in `nonblocking.rs`) loops on
//! [`Session::next_action`] and does what it says: write the output, wait, read, or close.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use crate::pool::{JobFuture, JobOutcome};
use crate::protocol::{Frame, LineFramer, Reply};
use crate::server::service::{Answer, Service};
use crate::work::Interpreter;

/// Bytes a driver reads at a time.
pub const READ_CHUNK: usize = 8192;

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Write [`Session::output`], then call [`Session::written`] (or [`Session::wrote`] with
    /// what was written).
    Write,
    /// Wait this long without holding the CPU; the reply is already queued.
    Wait(Duration),
    /// Wait for this pool job, then pass its outcome to [`Session::offload_finished`].
    Await(JobFuture),
    /// Read from the client and pass the bytes to [`Session::received`], end of file to
    /// [`Session::end_of_input`], or an idle timeout to [`Session::idle_timeout`].
    Read,
    /// Close the connection.
    Close,
}

#[derive(Debug)]
pub struct Session {
    framer: LineFramer,
    /// Every request so far asked about the server (`stats`, `events`): a watcher, whose
    /// thread need not take the GIL back after a socket call.
    watching: bool,
    output: Vec<u8>,
    /// Set by a wait: the queued reply goes out only after the driver has waited.
    waiting: Option<Duration>,
    end_of_input: bool,
    /// Close once the output is written.
    closing: bool,
}

impl Default for Session {
    fn default() -> Session {
        Session {
            framer: LineFramer::default(),
            watching: true,
            output: Vec::new(),
            waiting: None,
            end_of_input: false,
            closing: false,
        }
    }
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    /// Whether the connection has only watched the server so far (and runs no Python code).
    pub fn watching(&self) -> bool {
        self.watching
    }

    /// What the driver should do next. `bytes_pending` tells whether more request bytes
    /// have already arrived on the socket; it is asked only when a partial line waits.
    pub fn next_action(
        &mut self,
        service: &Service,
        interpreter: &mut impl Interpreter,
        bytes_pending: impl FnOnce() -> bool,
    ) -> Action {
        if let Some(duration) = self.waiting.take() {
            return Action::Wait(duration);
        }
        if !self.output.is_empty() {
            return Action::Write;
        }
        // After shutdown, a request that has not started is not started: the in-flight one
        // was answered above, and the client sees the connection close.
        if self.closing || service.shutdown.is_triggered() {
            return Action::Close;
        }
        // A partial line with nothing more in flight is a request too: the essays' clients
        // send `b"30"` and wait for the answer.
        let end_of_input = self.end_of_input;
        let line = match self.framer.next_line(|| end_of_input || !bytes_pending()) {
            Some(Frame::Line(line)) => line,
            Some(Frame::TooLong) => {
                let reply = service.error("line too long");
                self.queue(&reply);
                self.closing = true;
                return Action::Write;
            }
            None if end_of_input => return Action::Close,
            None => return Action::Read,
        };
        let answer = service.respond(line, interpreter);
        self.watching &= matches!(answer, Answer::Observed(_));
        match answer {
            Answer::Now(reply) | Answer::Observed(reply) => {
                self.queue(&reply);
                Action::Write
            }
            Answer::After(duration, reply) => {
                self.queue(&reply);
                Action::Wait(duration)
            }
            Answer::Offloaded(job) => Action::Await(job),
        }
    }

    fn queue(&mut self, reply: &Reply) {
        // Writing into a Vec cannot fail.
        let _ = writeln!(self.output, "{reply}");
    }

    /// An offloaded job has finished: queue its reply.
    pub fn offload_finished(&mut self, service: &Service, outcome: JobOutcome) {
        let reply = service.offloaded_reply(outcome);
        self.queue(&reply);
    }

    /// Request bytes held, not yet answered.
    pub fn buffered(&self) -> usize {
        self.framer.buffered()
    }

    /// The bytes to write for [`Action::Write`].
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// All of [`Session::output`] has been written.
    pub fn written(&mut self) {
        self.wrote(self.output.len());
    }

    /// The first `n` bytes of [`Session::output`] have been written. Once all are, the
    /// output's memory is given back: a connection that waits holds no buffer.
    pub fn wrote(&mut self, n: usize) {
        if n >= self.output.len() {
            self.output = Vec::new();
        } else {
            self.output.drain(..n);
        }
    }

    pub fn received(&mut self, bytes: &[u8]) {
        self.framer.push(bytes);
    }

    pub fn end_of_input(&mut self) {
        self.end_of_input = true;
    }

    /// The client sent nothing for the idle timeout: say so and close.
    pub fn idle_timeout(&mut self, service: &Service) {
        let reply = service.error("idle timeout");
        self.queue(&reply);
        self.closing = true;
    }
}

/// Whether bytes have arrived on `socket` that nobody has read yet (FIONREAD).
pub fn bytes_pending(socket: BorrowedFd<'_>) -> bool {
    let mut pending: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points at `pending`.
    let result = unsafe { libc::ioctl(socket.as_raw_fd(), libc::FIONREAD, &mut pending) };
    // If the socket cannot be asked, assume nothing is pending: the partial line is then
    // answered rather than left waiting forever.
    result == 0 && pending > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::shutdown::Shutdown;
    use crate::server::{Model, ServerConfig};
    use crate::work::Free;
    use std::sync::Arc;

    fn service() -> Arc<Service> {
        Service::new(ServerConfig::new(Model::Serial), Shutdown::new().unwrap()).unwrap()
    }

    /// Feeds `input` to a session as one read, then runs it until it wants more input,
    /// answering the pending question with `pending`; returns what it wrote and its last action.
    fn drive(
        session: &mut Session,
        service: &Service,
        input: &[u8],
        pending: bool,
    ) -> (String, Action) {
        session.received(input);
        let mut written = String::new();
        loop {
            match session.next_action(service, &mut Free, || pending) {
                Action::Write => {
                    written.push_str(std::str::from_utf8(session.output()).unwrap());
                    session.written();
                }
                Action::Wait(_) => {}
                action => return (written, action),
            }
        }
    }

    #[test]
    fn answers_pipelined_lines_in_order() {
        let service = service();
        let mut session = Session::new();
        let (out, action) = drive(
            &mut session,
            &service,
            b"fib 10\necho a b\r\nsleep 0\n",
            false,
        );
        assert_eq!(out, "55\na b\nslept 0\n");
        assert_eq!(action, Action::Read);
    }

    #[test]
    fn a_partial_line_waits_while_bytes_are_pending_and_is_answered_when_none_are() {
        let service = service();
        let mut session = Session::new();
        let (out, action) = drive(&mut session, &service, b"fib 1", true);
        assert_eq!((out.as_str(), action), ("", Action::Read));
        let (out, action) = drive(&mut session, &service, b"0", false);
        assert_eq!((out.as_str(), action), ("55\n", Action::Read));
    }

    #[test]
    fn a_partial_line_at_end_of_input_is_answered_then_closed() {
        let service = service();
        let mut session = Session::new();
        session.end_of_input();
        let (out, action) = drive(&mut session, &service, b"30", true);
        assert_eq!((out.as_str(), action), ("832040\n", Action::Close));
    }

    #[test]
    fn a_wait_comes_before_its_reply() {
        let service = service();
        let mut session = Session::new();
        session.received(b"sleep 7\n");
        assert_eq!(
            session.next_action(&service, &mut Free, || false),
            Action::Wait(Duration::from_millis(7))
        );
        assert_eq!(
            session.next_action(&service, &mut Free, || false),
            Action::Write
        );
        assert_eq!(session.output(), b"slept 7\n");
    }

    #[test]
    fn a_long_line_is_refused_and_closes() {
        let service = service();
        let mut session = Session::new();
        let (out, action) = drive(&mut session, &service, &[b'9'; 5000], true);
        assert_eq!(
            (out.as_str(), action),
            ("ERR line too long\n", Action::Close)
        );
    }

    #[test]
    fn shutdown_closes_before_the_next_request() {
        let service = service();
        let mut session = Session::new();
        service.shutdown.trigger();
        let (out, action) = drive(&mut session, &service, b"1\n", false);
        assert_eq!((out.as_str(), action), ("", Action::Close));
    }

    #[test]
    fn errors_are_counted() {
        let service = service();
        let mut session = Session::new();
        let (out, _) = drive(&mut session, &service, b"abc\n\n1\n", false);
        assert_eq!(out, "ERR unknown command \"abc\"\nERR empty request\n1\n");
        let report = service.stats.report("serial", 0);
        assert_eq!((report.requests, report.errors), (3, 2));
    }
}
