//! When a failed `accept` ends a server, passes, or calls for a pause.

use std::io::{self, ErrorKind};
use std::time::Duration;

/// Whether an accept error ends the server (`Err`), passes (`Ok(None)`), or calls for a
/// pause before the next try (`Ok(Some(pause))`): out of descriptors or memory, the loop
/// would otherwise spin while the condition lasts.
pub fn accept_backoff(error: io::Error) -> io::Result<Option<Duration>> {
    match error.kind() {
        ErrorKind::WouldBlock | ErrorKind::Interrupted | ErrorKind::ConnectionAborted => Ok(None),
        _ => match error.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                tracing::warn!(%error, "cannot accept a connection now; backing off");
                Ok(Some(Duration::from_millis(50)))
            }
            Some(libc::EPROTO | libc::EPERM | libc::ECONNRESET) => Ok(None),
            _ => Err(error),
        },
    }
}
