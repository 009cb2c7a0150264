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
//! builder; [`read_once`] and [`write_once`] do the second.
//!
//! An idle connection costs its task and its socket's registration, nothing more: no read
//! buffer (a read borrows one on the stack), no timer (the registry's idle sweep times it),
//! no handle kept by the accept loop (a tracker counts the tasks).

use std::future::Future;
use std::io::{self, ErrorKind};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

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

/// Waits until `stream` is writable; `Ok(false)` when `limit` passes first.
///
/// The timer is made only for this wait, on the heap: a connection that is not blocked
/// writing — nearly all of them, nearly always — carries none.
async fn writable_within(stream: &TcpStream, limit: Option<Duration>) -> io::Result<bool> {
    let mut timer = limit.map(|limit| Box::pin(tokio::time::sleep(limit)));
    std::future::poll_fn(|cx| match stream.poll_write_ready(cx) {
        Poll::Ready(result) => Poll::Ready(result.map(|()| true)),
        Poll::Pending => {
            let expired = timer
                .as_mut()
                .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
            if expired {
                Poll::Ready(Ok(false))
            } else {
                Poll::Pending
            }
        }
    })
    .await
}

/// `sock.recv` as asyncio's loop does it once the socket is readable: one non-blocking
/// read with the GIL released around it, handed to the session. The buffer lives only for
/// the read, on the stack — an idle connection holds none. A readiness that turns out to be
/// stale (`WouldBlock`) hands nothing, and the connection waits again.
fn read_once(
    connection: &Connection<TcpStream>,
    session: &mut Session,
    service: &Service,
    interpreter: &mut impl Interpreter,
) -> io::Result<()> {
    let mut chunk = [0u8; READ_CHUNK];
    match interpreter.allow_threads(|| connection.stream.try_read(&mut chunk)) {
        // The idle sweep ended the reads (see `system::connections`): an idle timeout.
        Ok(0) if connection.idled_out() => session.idle_timeout(service),
        Ok(0) => session.end_of_input(),
        Ok(n) => session.received(&chunk[..n]),
        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
        Err(error) => return Err(error),
    }
    Ok(())
}

/// `sock.send` once, with the GIL released around it: the bytes the socket took are done
/// with; `WouldBlock` leaves them all to send when it is writable again.
fn write_once(
    stream: &TcpStream,
    session: &mut Session,
    interpreter: &mut impl Interpreter,
) -> io::Result<()> {
    match interpreter.allow_threads(|| stream.try_write(session.output())) {
        Ok(0) => Err(ErrorKind::WriteZero.into()),
        Ok(n) => {
            session.wrote(n);
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Ends the reads of connections idle past `limit`, a few times per limit, until shutdown.
async fn close_idle_connections(service: Arc<Service>, limit: Duration) {
    let period = (limit / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = service.shutdown.triggered() => return,
            _ = ticks.tick() => {
                service.connections.close_idle(limit);
            }
        }
    }
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
    // Connection tasks are counted, not kept: a set of their handles would cost every idle
    // connection an entry of its own. (A task that panics is reported by the panic hook.)
    let tasks = TaskTracker::new();
    if let Some(limit) = service.config.idle_timeout() {
        tasks.spawn(close_idle_connections(Arc::clone(&service), limit));
    }
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
        }
    }
    drop(listener);
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// One connection's task. Its future is what an idle connection costs, so it is an `async`
/// block over the moved arguments (an `async fn` would hold a second copy of them) and
/// holds no timer while it waits to read (the idle sweep times it).
#[allow(clippy::manual_async_fn)] // an `async fn` would hold its arguments twice (see above)
fn serve_connection<I: Interpreter + Default>(
    service: Arc<Service>,
    connection: Connection<TcpStream>,
) -> impl Future<Output = ()> {
    async move {
        let mut interpreter = I::default();
        let stream = &connection.stream;
        // Replies are single small writes; Nagle would hold each one back for an ACK.
        if stream.set_nodelay(true).is_err() {
            return;
        }
        let mut session = Session::new();
        loop {
            match session.next_action(&service, &mut interpreter, || bytes_pending(stream.as_fd()))
            {
                Action::Write => match write_once(stream, &mut session, &mut interpreter) {
                    Ok(()) => {}
                    // A client that takes nothing for the write timeout has stopped reading
                    // (as `SO_SNDTIMEO` decides in the blocking models); a slow one is served.
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {
                        match writable_within(stream, service.config.write_timeout()).await {
                            Ok(true) => {}
                            Ok(false) => return service.write_timed_out(connection.id()),
                            Err(_) => return,
                        }
                    }
                    Err(_) => return,
                },
                // The timer lives on the heap for the wait only, not in every task's future.
                Action::Wait(duration) => Box::pin(tokio::time::sleep(duration)).await,
                // The loop serves other connections meanwhile: that is the hybrid's point.
                Action::Await(job) => session.offload_finished(&service, job.await),
                Action::Read => {
                    connection.waiting(true);
                    let ready = std::future::poll_fn(|cx| stream.poll_read_ready(cx)).await;
                    connection.waiting(false);
                    let read = ready.and_then(|()| {
                        read_once(&connection, &mut session, &service, &mut interpreter)
                    });
                    match read {
                        Ok(()) => {}
                        Err(error) if error.kind() == ErrorKind::Interrupted => {}
                        Err(_) => return,
                    }
                }
                Action::Close => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{Model, ServerConfig, Shutdown};

    /// What an idle connection costs is mostly its task: tokio rounds a task up to 128-byte
    /// lines, and this future fits the 384-byte task only while it stays within 280 bytes
    /// (measured: 248 in release). A timer or a buffer added to it shows up here first.
    #[test]
    fn a_connection_task_stays_small() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let config = ServerConfig::new(Model::Eventloop);
            let service = Service::new(config, Shutdown::new().unwrap()).unwrap();
            let connection = service.connections.admit(stream).unwrap();
            let task = serve_connection::<Free>(Arc::clone(&service), connection);
            let bytes = std::mem::size_of_val(&task);
            assert!(bytes <= 280, "a connection's future is {bytes} bytes");
        });
    }
}
