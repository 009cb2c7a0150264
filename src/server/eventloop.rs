//! `eventloop`: one thread, one event loop (a single-threaded tokio runtime), like asyncio.
//! Waiting overlaps; computing does not — CPU work runs inline and stalls the loop.

use std::net::TcpListener;
use std::sync::Arc;

use crate::server::service::Service;
use crate::server::{ServeError, nonblocking};

pub fn serve(listener: TcpListener, service: Arc<Service>) -> Result<(), ServeError> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if let Some(gil) = &service.gil {
        // The loop runs on this thread: it is the one Python thread, holding the GIL while
        // it runs tasks, releasing it while it waits for events.
        nonblocking::hold_gil_while_running(&mut builder, gil.clone());
        nonblocking::attach_this_thread(gil);
    }
    let runtime = builder.build().map_err(ServeError::Runtime)?;
    let served = runtime.block_on(nonblocking::serve(listener, service));
    nonblocking::detach_this_thread();
    served
}
