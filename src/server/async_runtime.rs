//! `async`: tokio's multi-threaded, work-stealing runtime with `--workers` threads. CPU work
//! runs inline in the tasks; other tasks move to the remaining workers while one computes.

use std::net::TcpListener;
use std::sync::Arc;

use crate::server::service::Service;
use crate::server::{ServeError, nonblocking};

pub fn serve(listener: TcpListener, service: Arc<Service>) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(service.config.workers)
        .thread_name("clab-async")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(nonblocking::serve(listener, service))
}
