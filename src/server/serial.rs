//! `serial`: the essays' first server. The accept loop serves each client to the end before
//! it accepts the next, so one slow request holds up everyone.

use std::net::TcpListener;

use crate::server::ServeError;
use crate::server::blocking::{accept_loop, serve_on_this_thread};
use crate::server::service::Service;

pub fn serve(listener: TcpListener, service: &Service) -> Result<(), ServeError> {
    accept_loop(&listener, service, |connection| {
        serve_on_this_thread(service, connection)
    })
    .map_err(ServeError::Accept)
}
