//! The primitives the GIL is built on: std's normally, loom's under `--cfg clab_loom`, so the
//! same algorithm is model-checked. Loom never fires a timed wait, so there the "switch
//! interval elapsed" event comes from the test instead (see `Shared::elapse_interval`).

#[cfg(not(clab_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
#[cfg(not(clab_loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(clab_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicI64, Ordering};
#[cfg(clab_loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
