//! `prefork`: the essays' pre-forked server. The parent binds, forks `--workers` children
//! that all accept on the one listening socket, each serving its clients one at a time, and
//! then only supervises: it reaps children, replaces one that dies, and on SIGINT/SIGTERM
//! forwards SIGTERM to them and waits for them to drain. Concurrency is capped at the number
//! of children — the limit the essays describe.
//!
//! The parent forks before any thread or async runtime exists in it, and never starts one:
//! a forked child gets a copy of only the forking thread, so a lock that another thread held
//! at that moment (the allocator's, a logger's, a runtime's) would stay locked in the child
//! for ever. The supervisor therefore waits for signals with `sigwait` on its only thread
//! instead of using handlers and a signal thread; children start their own threads after
//! the fork.

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};

use crate::server::{ServeError, ServerConfig, Shutdown, serve, signals};

/// A child that dies sooner than this after its start is replaced only after a pause, so a
/// child that cannot start does not make the parent fork in a tight loop.
const MIN_CHILD_LIFE: Duration = Duration::from_secs(1);

/// The signals the supervisor waits for.
fn supervised() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        set.add(signal);
    }
    set
}

/// Forks the children and supervises them until SIGINT/SIGTERM, then drains them within
/// `drain_timeout` (SIGKILL after it). Must be called before the process starts any thread.
pub fn supervise(
    listener: TcpListener,
    config: ServerConfig,
    drain_timeout: Duration,
) -> Result<(), ServeError> {
    crate::work::work_costs(); // calibrate once, before forking: the children share it
    // Blocked before the first fork, so no SIGCHLD can be lost: pending ones wait for sigwait.
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&supervised()), None).map_err(io)?;
    let mut children: HashMap<Pid, Instant> = HashMap::new();
    for _ in 0..config.workers {
        let child = fork_child(&listener, &config, drain_timeout)?;
        children.insert(child, Instant::now());
    }
    tracing::info!(children = children.len(), "prefork: children started");
    loop {
        match supervised().wait().map_err(io)? {
            Signal::SIGCHLD => {
                for (pid, started) in reap(&mut children) {
                    tracing::warn!(%pid, "prefork: a child died; replacing it");
                    if started.elapsed() < MIN_CHILD_LIFE {
                        std::thread::sleep(MIN_CHILD_LIFE);
                    }
                    let child = fork_child(&listener, &config, drain_timeout)?;
                    children.insert(child, Instant::now());
                }
            }
            signal => {
                tracing::info!(?signal, "prefork: stopping the children");
                return drain(children, drain_timeout);
            }
        }
    }
}

/// Reaps every child that has exited; returns them with their start time.
fn reap(children: &mut HashMap<Pid, Instant>) -> Vec<(Pid, Instant)> {
    let mut dead = Vec::new();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _)) => {
                if let Some(started) = children.remove(&pid) {
                    dead.push((pid, started));
                }
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return dead,
            Ok(_) => {}
        }
    }
}

/// Forwards SIGTERM, waits for the children to finish their requests, SIGKILLs whoever is
/// left at the deadline (or at a second signal), and reaps everyone.
fn drain(mut children: HashMap<Pid, Instant>, drain_timeout: Duration) -> Result<(), ServeError> {
    for pid in children.keys() {
        let _ = kill(*pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + drain_timeout;
    while !children.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero()
            || timed_wait(&supervised(), left).is_some_and(|signal| signal != Signal::SIGCHLD)
        {
            tracing::warn!(
                left = children.len(),
                "prefork: killing children that did not drain"
            );
            for pid in children.keys() {
                let _ = kill(*pid, Signal::SIGKILL);
            }
            for pid in children.keys() {
                let _ = waitpid(*pid, None);
            }
            return Err(ServeError::DrainTimeout(children.len()));
        }
        reap(&mut children);
    }
    Ok(())
}

/// `sigtimedwait`: the next of `set`'s signals, or `None` when `timeout` passes first.
fn timed_wait(set: &SigSet, timeout: Duration) -> Option<Signal> {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` is a valid signal set, `timeout` a valid timespec, and a null info
    // pointer is allowed.
    let signal = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &timeout) };
    Signal::try_from(signal).ok()
}

fn fork_child(
    listener: &TcpListener,
    config: &ServerConfig,
    drain_timeout: Duration,
) -> Result<Pid, ServeError> {
    let parent = getpid();
    // SAFETY: the parent has only this thread (see the module comment), so the child's copy
    // of the process holds no lock that some other thread would never release.
    match unsafe { fork() }.map_err(io)? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let code = match child_main(listener, config.clone(), drain_timeout, parent) {
                Ok(()) => 0,
                Err(error) => {
                    tracing::error!(error = %error, "prefork child failed");
                    1
                }
            };
            std::process::exit(code);
        }
    }
}

/// A child's life: serve one client at a time on the shared listener until SIGTERM.
fn child_main(
    listener: &TcpListener,
    config: ServerConfig,
    drain_timeout: Duration,
    parent: Pid,
) -> Result<(), ServeError> {
    sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&supervised()), None).map_err(io)?;
    // If the supervisor is killed outright, its children go too instead of serving on as
    // orphans. (Checked after: the parent may have died before prctl ran.)
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(io)?;
    if getppid() != parent {
        return Ok(());
    }
    let shutdown = Shutdown::new().map_err(ServeError::Supervise)?;
    signals::watch(shutdown.clone(), drain_timeout).map_err(ServeError::Supervise)?;
    let listener = listener.try_clone().map_err(ServeError::Listener)?;
    serve(listener, config, shutdown)
}

fn io(errno: Errno) -> ServeError {
    ServeError::Supervise(errno.into())
}
