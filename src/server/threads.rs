//! `threads`: a new OS thread for each connection, which blocks in its reads and computes
//! its requests itself — "launch a new thread for each connection".

use std::net::TcpListener;
use std::thread;

use crate::server::blocking::{accept_loop, serve_on_this_thread};
use crate::server::service::Service;
use crate::server::{ServeError, server_thread};

pub fn serve(listener: TcpListener, service: &Service) -> Result<(), ServeError> {
    // A scope joins every connection thread before `serve` returns: none outlives the server.
    thread::scope(|scope| {
        accept_loop(&listener, service, |connection| {
            let spawned = server_thread(&service.config, "clab-connection".into())
                .spawn_scoped(scope, move || serve_on_this_thread(service, connection));
            if let Err(error) = spawned {
                // The connection went down with the closure; the client sees it close.
                tracing::warn!(%error, "cannot start a thread for a connection; closing it");
            }
        })
        .map_err(ServeError::Accept)
    })
}
