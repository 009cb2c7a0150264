//! `eventloop`: one thread, one event loop (a single-threaded tokio runtime), like asyncio.
//! Waiting overlaps; computing does not — CPU work runs inline and stalls the loop.

use std::net::TcpListener;
use std::sync::Arc;

use crate::server::service::Service;
use crate::server::{ServeError, nonblocking};

pub fn serve(listener: TcpListener, service: Arc<Service>) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(nonblocking::serve(listener, service))
}
