//! Async sockets: the accept loop and the connection loop shared by the tokio-based models
//! (`eventloop` on a single-threaded runtime, `async` on the work-stealing one).
//!
//! CPU work runs inline in the task, as a Python coroutine's would: on the single-threaded
//! runtime a long `fib` stalls every other connection, which is the point of that model.

use std::os::fd::AsFd;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::server::ServeError;
use crate::server::blocking::accept_backoff;
use crate::server::connections::Connection;
use crate::server::service::Service;
use crate::server::session::{Action, READ_CHUNK, Session, bytes_pending};
use crate::work::Free;

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
                        tasks.spawn(serve_connection(Arc::clone(&service), connection));
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

async fn serve_connection(service: Arc<Service>, mut connection: Connection<TcpStream>) {
    let stream = &mut connection.stream;
    // Replies are single small writes; Nagle would hold each one back for an ACK.
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let idle_timeout = service.config.idle_timeout;
    let mut session = Session::new();
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        match session.next_action(&service, &mut Free, || bytes_pending(stream.as_fd())) {
            Action::Write => {
                if stream.write_all(session.output()).await.is_err() {
                    return;
                }
                session.written();
            }
            Action::Wait(duration) => tokio::time::sleep(duration).await,
            // The loop serves other connections meanwhile: that is the hybrid's point.
            Action::Await(job) => session.offload_finished(&service, job.await),
            Action::Read => {
                let read = stream.read(&mut buffer);
                let result = match idle_timeout {
                    Some(limit) => tokio::time::timeout(limit, read).await,
                    None => Ok(read.await),
                };
                match result {
                    Ok(Ok(0)) => session.end_of_input(),
                    Ok(Ok(n)) => session.received(&buffer[..n]),
                    Ok(Err(error)) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Ok(Err(_)) => return,
                    Err(_elapsed) => session.idle_timeout(&service),
                }
            }
            Action::Close => return,
        }
    }
}
