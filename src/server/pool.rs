//! `pool`: a fixed set of worker threads takes connections from a queue, each serving one
//! connection to its end. With N workers, client N + 1 waits in the queue — the bounded
//! concurrency of a thread-pool executor.

use std::net::TcpListener;
use std::thread;

use crate::server::ServeError;
use crate::server::blocking::{accept_loop, serve_connection};
use crate::server::service::Service;
use crate::work::Free;

pub fn serve(listener: TcpListener, service: &Service) -> Result<(), ServeError> {
    // Unbounded, because `--max-connections` already bounds what can be queued.
    let (queue, jobs) = crossbeam_channel::unbounded();
    thread::scope(|scope| {
        for index in 0..service.config.workers {
            let jobs = jobs.clone();
            thread::Builder::new()
                .name(format!("clab-pool-{index}"))
                .spawn_scoped(scope, move || {
                    for connection in jobs {
                        serve_connection(service, connection, &mut Free);
                    }
                })
                .map_err(ServeError::Worker)?;
        }
        let accepted = accept_loop(&listener, service, |connection| {
            // The workers outlive the loop (the scope joins them), so the queue is open.
            let _ = queue.send(connection);
        });
        // Closing the queue lets the workers finish what is queued, then stop.
        drop(queue);
        accepted.map_err(ServeError::Accept)
    })
}
