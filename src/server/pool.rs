//! `pool`: a fixed set of worker threads takes connections from a queue, each serving one
//! connection to its end. With N workers, client N + 1 waits in the queue — the bounded
//! concurrency of a thread-pool executor.

use std::net::{TcpListener, TcpStream};

use std::thread;

use crate::server::blocking::{accept_loop, serve_connection};
use crate::server::service::Service;
use crate::server::{ServeError, server_thread};
use crate::sync::BlockingQueue;
use crate::system::connections::Connection;
use crate::work::{Free, Interpreter};

/// A worker's life: take a connection, serve it to its end, repeat until the queue closes.
/// Waiting for the queue is blocking, so it happens outside the GIL.
fn work(
    service: &Service,
    jobs: &BlockingQueue<Connection<TcpStream>>,
    interpreter: &mut impl Interpreter,
) {
    while let Some(connection) = interpreter.allow_threads(|| jobs.take()) {
        serve_connection(service, connection, interpreter);
    }
}

pub fn serve(listener: TcpListener, service: &Service) -> Result<(), ServeError> {
    // Unbounded, because `--max-connections` already bounds what can be queued.
    let queue = BlockingQueue::default();
    thread::scope(|scope| {
        let spawned = (0..service.config.workers).try_for_each(|index| {
            let jobs = &queue;
            server_thread(&service.config, format!("clab-pool-{index}"))
                .spawn_scoped(scope, move || match &service.gil {
                    None => work(service, jobs, &mut Free),
                    Some(gil) => work(
                        service,
                        jobs,
                        &mut gil.attach(format!("pool worker {index}")),
                    ),
                })
                .map(drop)
        });
        if let Err(error) = spawned {
            // The workers already started wait on the queue, and the scope joins them before
            // it returns: close the queue first, or the error would never be returned.
            queue.close();
            return Err(ServeError::Worker(error));
        }
        let accepted = accept_loop(&listener, service, |connection| {
            // The workers outlive the loop (the scope joins them), so the queue is open.
            let _ = queue.put(connection);
        });
        // Closing the queue lets the workers finish what is queued, then stop.
        queue.close();
        accepted.map_err(ServeError::Accept)
    })
}
