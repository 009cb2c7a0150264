//! Blocking sockets: the accept loop and the connection loop shared by the thread-based
//! models (`serial`, `threads`, `pool`). The models differ only in what they do with an
//! admitted connection — serve it now, on a new thread, or queue it for a pool.

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use crate::pool::{JobFuture, JobOutcome};
use crate::server::ServerConfig;
use crate::server::service::Service;
use crate::server::session::{Action, READ_CHUNK, Session, bytes_pending};
use crate::system::accept::accept_backoff;
use crate::system::connections::Connection;
use crate::work::{Free, Interpreter};

/// Accepts connections until shutdown, handing each admitted one to `dispatch`. A
/// connection over `--max-connections` gets `ERR server busy` and is closed here.
pub fn accept_loop(
    listener: &TcpListener,
    service: &Service,
    mut dispatch: impl FnMut(Connection<TcpStream>),
) -> io::Result<()> {
    // Non-blocking, so a connection that vanishes between `poll` and `accept` cannot
    // leave the loop stuck in `accept` past shutdown.
    listener.set_nonblocking(true)?;
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(service.shutdown.fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(errno.into()),
        }
        if service.shutdown.is_triggered() {
            return Ok(());
        }
        match listener.accept() {
            Ok((stream, _peer)) => {
                // Accepted sockets must block: the connection loop relies on it.
                if let Err(error) = stream.set_nonblocking(false) {
                    tracing::warn!(%error, "dropping a connection that cannot be made blocking");
                    continue;
                }
                match service.connections.admit(stream) {
                    Ok(connection) => {
                        service.stats.accepted();
                        dispatch(connection);
                    }
                    Err((refusal, mut stream)) => {
                        if let Some(reply) = service.refusal(refusal) {
                            // A fresh socket's send buffer is empty, so this short write does
                            // not block; if the client is already gone there is nobody to tell.
                            let _ = writeln!(stream, "{reply}");
                        }
                    }
                }
            }
            Err(error) => {
                if let Some(backoff) = accept_backoff(error)? {
                    std::thread::sleep(backoff);
                }
            }
        }
    }
}

/// Serves `connection` on the calling thread, attached to the server's GIL (if it has one)
/// for the connection's lifetime, as a Python thread would be.
pub fn serve_on_this_thread(service: &Service, connection: Connection<TcpStream>) {
    match &service.gil {
        None => serve_connection(service, connection, &mut Free),
        Some(gil) => {
            let mut thread = gil.attach(format!("connection {}", connection.id()));
            serve_connection(service, connection, &mut thread);
        }
    }
}

/// Serves one connection until the client leaves, errs, idles out, or shutdown.
///
/// Under an interpreter lock the thread holds it while it parses and computes, and releases
/// it around every socket call and sleep, as CPython's socket module does — even when the
/// call returns at once. That unconditional release is what the convoy effect feeds on.
/// A connection that has only watched the server (`stats`, `events`) does not take the lock
/// back after a socket call: it runs no Python code, and `clab top` polling it must not
/// cause the switches it shows.
pub fn serve_connection(
    service: &Service,
    mut connection: Connection<TcpStream>,
    interpreter: &mut impl Interpreter,
) {
    let stream = &mut connection.stream;
    if let Err(error) = configure(stream, &service.config) {
        tracing::debug!(%error, "cannot configure a connection; closing it");
        return;
    }
    let mut session = Session::new();
    let mut buffer = [0u8; READ_CHUNK];
    loop {
        match session.next_action(service, interpreter, || bytes_pending(stream.as_fd())) {
            Action::Write => match socket_call(interpreter, session.watching(), || {
                stream.write_all(session.output())
            }) {
                Ok(()) => session.written(),
                // SO_SNDTIMEO expired: the client has taken nothing for the write timeout.
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    return service.write_timed_out(connection.id());
                }
                Err(_) => return,
            },
            Action::Wait(duration) => interpreter.allow_threads(|| std::thread::sleep(duration)),
            Action::Await(job) => {
                let outcome = if service.config.gil().variant.waits_poll() {
                    await_polling(&job, interpreter)
                } else {
                    interpreter.allow_threads(|| job.wait())
                };
                session.offload_finished(service, outcome);
            }
            Action::Read => {
                match socket_call(interpreter, session.watching(), || stream.read(&mut buffer)) {
                    Ok(0) => session.end_of_input(),
                    Ok(n) => session.received(&buffer[..n]),
                    Err(error) if error.kind() == ErrorKind::Interrupted => {}
                    // SO_RCVTIMEO expired: the idle timeout.
                    Err(error)
                        if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                    {
                        session.idle_timeout(service)
                    }
                    Err(_) => return,
                }
            }
            Action::Close => return,
        }
    }
}

/// Waits for `job` as CPython before 3.2 waits with a timeout
/// ([`crate::gil::Variant::waits_poll`]): a look at the job holding the lock, then a sleep
/// without it, 1 ms, 2 ms, … at most 50 ms.
fn await_polling(job: &JobFuture, interpreter: &mut impl Interpreter) -> JobOutcome {
    const FIRST: Duration = Duration::from_millis(1);
    const LONGEST: Duration = Duration::from_millis(50);
    let mut sleep = FIRST;
    loop {
        interpreter.checkpoint();
        if let Some(outcome) = job.outcome() {
            return outcome;
        }
        interpreter.allow_threads(|| std::thread::sleep(sleep));
        sleep = (sleep * 2).min(LONGEST);
    }
}

/// A socket call with the lock released; taken back after it unless the connection is only
/// watching (then the next Python request takes it).
fn socket_call<R>(interpreter: &mut impl Interpreter, watching: bool, f: impl FnOnce() -> R) -> R {
    if watching {
        interpreter.detach();
        f()
    } else {
        interpreter.allow_threads(f)
    }
}

fn configure(stream: &TcpStream, config: &ServerConfig) -> io::Result<()> {
    // Replies are single small writes; Nagle would hold each one back for an ACK.
    stream.set_nodelay(true)?;
    stream.set_read_timeout(config.idle_timeout())?;
    stream.set_write_timeout(config.write_timeout())
}
