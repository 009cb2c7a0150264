//! Async sockets: the accept loop and the connection loop shared by the tokio-based models
//! (`eventloop` on a single-threaded runtime, `async` on the work-stealing one).
//!
//! CPU work runs inline in the task, as a Python coroutine's would: on the single-threaded
//! runtime a long `fib` stalls every other connection, which is the point of that model.
//!
//! Under `--gil`, each runtime thread is a Python thread running an event loop: it holds the
//! GIL while it runs tasks and releases it while it is parked waiting for events (asyncio's
//! `select`), and — as CPython's socket module does — around every `recv` and `send`, even
//! one that does not block. [`hold_gil_while_running`] installs the first on a runtime
//! builder; [`read_into`] and [`write_all`] do the second.

use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::gil::{Gil, GilThread};
use crate::server::ServeError;
use crate::server::service::Service;
use crate::server::session::{Action, READ_CHUNK, Session, bytes_pending};
use crate::system::accept::accept_backoff;
use crate::system::connections::Connection;
use crate::work::{Free, Interpreter};

thread_local! {
    /// This runtime thread's attachment to the server's GIL, under `--gil`.
    static LOOP_GIL: std::cell::RefCell<Option<GilThread>> = const { std::cell::RefCell::new(None) };
}

/// Attaches the calling thread to `gil` as an event-loop thread (holding it), until
/// [`detach_this_thread`].
pub fn attach_this_thread(gil: &Gil) {
    let name = format!(
        "event loop {}",
        std::thread::current().name().unwrap_or("main")
    );
    LOOP_GIL.with_borrow_mut(|thread| *thread = Some(gil.attach(name)));
}

/// Ends the calling thread's attachment, releasing the GIL if it holds it.
pub fn detach_this_thread() {
    LOOP_GIL.with_borrow_mut(|thread| drop(thread.take()));
}

/// Releases the calling runtime thread's GIL, if it has one, until [`retake_gil`].
fn release_gil() {
    LOOP_GIL.with_borrow_mut(|thread| thread.as_mut().map_or((), GilThread::detach));
}

/// Takes the calling runtime thread's GIL back after [`release_gil`].
fn retake_gil() {
    LOOP_GIL.with_borrow_mut(|thread| thread.as_mut().map_or((), GilThread::reattach));
}

/// Makes every runtime thread a Python thread running an event loop: attached to `gil`
/// from its start, it releases the GIL when it parks and takes it back when it wakes.
/// (`block_on`'s own thread is the caller's to attach.) The servers never `spawn_blocking`:
/// a blocking-pool thread would attach here too but never park, and so hold the GIL.
pub fn hold_gil_while_running(
    builder: &mut tokio::runtime::Builder,
    gil: Gil,
) -> &mut tokio::runtime::Builder {
    builder
        .on_thread_start(move || attach_this_thread(&gil))
        .on_thread_stop(detach_this_thread)
        .on_thread_park(release_gil)
        .on_thread_unpark(retake_gil)
}

/// The interpreter of code running in a task: checkpoints go to the runtime thread's GIL.
#[derive(Debug, Default, Clone, Copy)]
struct LoopGil;

impl Interpreter for LoopGil {
    fn checkpoint(&mut self) {
        LOOP_GIL.with_borrow_mut(|thread| {
            if let Some(thread) = thread {
                thread.checkpoint();
            }
        });
    }

    fn instruction(&mut self) {
        LOOP_GIL.with_borrow_mut(|thread| {
            if let Some(thread) = thread {
                thread.instruction();
            }
        });
    }

    fn pace(&self) -> Option<crate::work::Pace> {
        LOOP_GIL.with_borrow(|thread| thread.as_ref().and_then(GilThread::pace))
    }

    /// Tasks never block, but CPython releases the GIL around every socket call, however
    /// short: each is a moment in which another thread waiting for the GIL may take it.
    fn allow_threads<R>(&mut self, f: impl FnOnce() -> R) -> R {
        release_gil();
        let result = f();
        retake_gil();
        result
    }
}

/// `sock.recv` as asyncio's loop does it: wait until readable (parked, GIL released), then
/// one non-blocking read with the GIL released around it, handed to the session. The buffer
/// lives only for the read, not across the wait, so an idle connection holds none.
async fn read_into(
    stream: &TcpStream,
    session: &mut Session,
    interpreter: &mut impl Interpreter,
) -> std::io::Result<()> {
    loop {
        stream.readable().await?;
        let mut chunk = [0u8; READ_CHUNK];
        match interpreter.allow_threads(|| stream.try_read(&mut chunk)) {
            Ok(0) => session.end_of_input(),
            Ok(n) => session.received(&chunk[..n]),
            Err(error) if error.kind() == ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        }
        return Ok(());
    }
}

/// `sock.send` until all is sent, each call with the GIL released around it. A client
/// that takes nothing for `timeout` fails the write with `TimedOut` (as `SO_SNDTIMEO` does
/// in the blocking models): a slow reader is served, one that stopped reading is not waited on.
async fn write_all(
    stream: &TcpStream,
    mut bytes: &[u8],
    timeout: Option<Duration>,
    interpreter: &mut impl Interpreter,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match interpreter.allow_threads(|| stream.try_write(bytes)) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(error) if error.kind() == ErrorKind::WouldBlock => match timeout {
                None => stream.writable().await?,
                Some(limit) => tokio::time::timeout(limit, stream.writable())
                    .await
                    .map_err(|_elapsed| std::io::Error::from(ErrorKind::TimedOut))??,
            },
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Runs the server on the current tokio runtime until shutdown, then waits for every
/// connection task to finish its in-flight request.
pub async fn serve(
    listener: std::net::TcpListener,
    service: Arc<Service>,
) -> Result<(), ServeError> {
    listener
        .set_nonblocking(true)
        .map_err(ServeError::Listener)?;
    let listener = TcpListener::from_std(listener).map_err(ServeError::Listener)?;
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            () = service.shutdown.triggered() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => match service.connections.admit(stream) {
                    Ok(connection) => {
                        service.stats.accepted();
                        let service = Arc::clone(&service);
                        if service.gil.is_some() {
                            tasks.spawn(serve_connection::<LoopGil>(service, connection));
                        } else {
                            tasks.spawn(serve_connection::<Free>(service, connection));
                        }
                    }
                    Err((refusal, stream)) => {
                        if let Some(reply) = service.refusal(refusal) {
                            // A fresh socket's send buffer is empty: a non-blocking write takes it.
                            let _ = stream.try_write(format!("{reply}\n").as_bytes());
                        }
                    }
                },
                Err(error) => {
                    if let Some(backoff) = accept_backoff(error).map_err(ServeError::Accept)? {
                        tokio::time::sleep(backoff).await;
                    }
                }
            },
            // Reap finished tasks as we go, so the set stays as small as the open connections.
            Some(finished) = tasks.join_next(), if !tasks.is_empty() => log_panic(finished),
        }
    }
    drop(listener);
    while let Some(finished) = tasks.join_next().await {
        log_panic(finished);
    }
    Ok(())
}

fn log_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished {
        tracing::error!(%error, "a connection task failed");
    }
}

async fn serve_connection<I: Interpreter + Default>(
    service: Arc<Service>,
    mut connection: Connection<TcpStream>,
) {
    let mut interpreter = I::default();
    let stream = &mut connection.stream;
    // Replies are single small writes; Nagle would hold each one back for an ACK.
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let idle_timeout = service.config.idle_timeout;
    let mut session = Session::new();
    loop {
        match session.next_action(&service, &mut interpreter, || bytes_pending(stream.as_fd())) {
            Action::Write => {
                let timeout = service.config.write_timeout();
                match write_all(stream, session.output(), timeout, &mut interpreter).await {
                    Ok(()) => session.written(),
                    Err(error) if error.kind() == ErrorKind::TimedOut => {
                        return service.write_timed_out(connection.id());
                    }
                    Err(_) => return,
                }
            }
            Action::Wait(duration) => tokio::time::sleep(duration).await,
            // The loop serves other connections meanwhile: that is the hybrid's point.
            Action::Await(job) => session.offload_finished(&service, job.await),
            Action::Read => {
                let read = read_into(stream, &mut session, &mut interpreter);
                let result = match idle_timeout {
                    Some(limit) => tokio::time::timeout(limit, read).await,
                    None => Ok(read.await),
                };
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) if error.kind() == ErrorKind::Interrupted => {}
                    Ok(Err(_)) => return,
                    Err(_elapsed) => session.idle_timeout(&service),
                }
            }
            Action::Close => return,
        }
    }
}
