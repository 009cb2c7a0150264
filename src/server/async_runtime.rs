//! `async`: tokio's multi-threaded, work-stealing runtime with `--workers` threads. CPU work
//! runs inline in the tasks; other tasks move to the remaining workers while one computes.

use std::net::TcpListener;
use std::sync::Arc;

use crate::server::service::Service;
use crate::server::{ServeError, nonblocking};

pub fn serve(listener: TcpListener, service: Arc<Service>) -> Result<(), ServeError> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(service.config.workers)
        .thread_name("clab-async")
        .enable_all();
    if let Some(gil) = &service.gil {
        // Each worker is a Python thread running tasks; the accept loop on this thread does
        // no Python work.
        nonblocking::hold_gil_while_running(&mut builder, gil.clone());
    }
    let runtime = builder.build().map_err(ServeError::Runtime)?;
    runtime.block_on(nonblocking::serve(listener, service))
}
