//! Runs a [`Plan`]: one OS thread per closed- or open-loop connection (a blocking read is
//! the cheapest way to wait for one reply, so the generator is not what limits the rate),
//! and one single-threaded event loop per idle class (thousands of connections, few
//! requests). At the deadline every client socket's read side is shut down, so whatever is
//! still in flight ends at once and is counted as aborted, never as a result.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::histogram::DurationHistogram;
use crate::load::plan::{ClassPlan, Pacing, Plan};
use crate::load::record::{FailureKind, Recorder};
use crate::protocol::{Reply, ReplyLine};
use crate::system::connections::{Connection, Connections};

/// A send more than this behind its due time counts as late.
pub const LATE: Duration = Duration::from_millis(1);

/// After a failed connection, wait this long before the next try.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// The instants that bound a run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub measure_from: Instant,
    pub deadline: Instant,
}

impl Window {
    fn class_start(&self, class: &ClassPlan) -> Instant {
        if class.start_after.is_zero() {
            self.start
        } else {
            self.measure_from + class.start_after
        }
    }
}

/// Completed requests and errors per class so far, and the latencies since someone last
/// took them, for the progress lines and the live view.
#[derive(Debug)]
pub struct LiveCounts {
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    /// One lock per reply: uncontended but for the watcher's brief swap at each tick.
    latencies: Mutex<DurationHistogram>,
}

impl Default for LiveCounts {
    fn default() -> LiveCounts {
        LiveCounts {
            completed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latencies: Mutex::new(DurationHistogram::new(2)),
        }
    }
}

impl LiveCounts {
    fn completed(&self, latency: Duration) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        self.latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(latency);
    }

    /// The latencies recorded since the last call.
    pub fn take_latencies(&self) -> DurationHistogram {
        let mut latencies = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *latencies, DurationHistogram::new(2))
    }
}

/// Runs `plan` to its deadline; calls `each_tick` every `tick` of the run with the live
/// counters, and returns one merged recorder per class, in plan order.
pub fn execute(
    plan: &Plan,
    tick: Duration,
    mut each_tick: impl FnMut(Duration, &[Arc<LiveCounts>]),
) -> Vec<Recorder> {
    // A short head start, so every thread is waiting when the run begins.
    let start = Instant::now() + Duration::from_millis(20);
    let window = Window {
        start,
        measure_from: start + plan.warmup(),
        deadline: start + plan.warmup() + plan.duration(),
    };
    let sockets = Connections::new(usize::MAX);
    let live: Vec<Arc<LiveCounts>> = plan.classes().iter().map(|_| Arc::default()).collect();
    thread::scope(|scope| {
        let mut handles = Vec::new();
        for (class, live) in plan.classes().iter().zip(&live) {
            let class_handles: Vec<_> = match class.pacing {
                Pacing::Idle { interval } => {
                    let (sockets, live) = (&sockets, Arc::clone(live));
                    vec![
                        scope
                            .spawn(move || idle::run(plan, class, interval, window, sockets, live)),
                    ]
                }
                pacing => (0..class.connections)
                    .map(|index| {
                        let (sockets, live) = (&sockets, Arc::clone(live));
                        scope.spawn(move || {
                            let client = Client {
                                target: plan.target(),
                                class,
                                window,
                                sockets,
                                live: &live,
                                timeout: plan.timeout(),
                            };
                            match pacing {
                                Pacing::Open { rate } => client.open_loop(index, rate),
                                _ => client.closed_loop(),
                            }
                        })
                    })
                    .collect(),
            };
            handles.push(class_handles);
        }
        let mut next = window.start + tick;
        while next <= window.deadline {
            sleep_until(next);
            each_tick(next - window.start, &live);
            next += tick;
        }
        sleep_until(window.deadline);
        sockets.close_reads();
        handles
            .into_iter()
            .map(|class_handles| {
                // A client thread does not panic on anything a server sends; if one did, the
                // run's numbers would be incomplete, so say so loudly.
                let mut recorders = class_handles
                    .into_iter()
                    .map(|h| h.join().expect("a load client thread panicked"));
                let mut merged = recorders
                    .next()
                    .unwrap_or_else(|| Recorder::new(window.measure_from, false));
                for recorder in recorders {
                    merged.merge(&recorder);
                }
                merged
            })
            .collect()
    })
}

fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        thread::sleep(at - now);
    }
}

/// One closed- or open-loop connection's thread.
struct Client<'a> {
    target: SocketAddr,
    class: &'a ClassPlan,
    window: Window,
    sockets: &'a Arc<Connections>,
    live: &'a LiveCounts,
    timeout: Duration,
}

/// A connected client: the buffered stream, and its registration for the deadline sweep.
struct Link {
    reader: BufReader<TcpStream>,
    _registered: Connection<TcpStream>,
}

/// What became of one request.
enum Exchange {
    Reply(Instant),
    Failed(FailureKind),
    /// The deadline came first.
    Aborted,
}

impl Client<'_> {
    fn connect(&self, recorder: &mut Recorder) -> Option<Link> {
        let attempt = || -> io::Result<Link> {
            let stream = TcpStream::connect(self.target)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(self.timeout))?;
            let registered = self
                .sockets
                .admit(stream.try_clone()?)
                .map_err(|_| io::Error::other("run is over"))?;
            Ok(Link {
                reader: BufReader::new(stream),
                _registered: registered,
            })
        };
        match attempt() {
            Ok(link) => {
                recorder.connected += 1;
                Some(link)
            }
            Err(error) => {
                if Instant::now() < self.window.deadline {
                    let kind = if error.kind() == io::ErrorKind::ConnectionRefused {
                        FailureKind::Refused
                    } else {
                        FailureKind::Reset
                    };
                    self.fail(recorder, kind);
                    thread::sleep(RECONNECT_PAUSE);
                }
                None
            }
        }
    }

    fn fail(&self, recorder: &mut Recorder, kind: FailureKind) {
        recorder.failure(Instant::now(), kind);
        self.live.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends the request and reads its reply line into `line`.
    fn exchange(&self, link: &mut Link, request: &[u8], line: &mut String) -> Exchange {
        if link.reader.get_mut().write_all(request).is_err() {
            return self.after_deadline_or(FailureKind::Reset);
        }
        line.clear();
        match link.reader.read_line(line) {
            Ok(_) if line.ends_with('\n') => {
                let done = Instant::now();
                if done >= self.window.deadline {
                    Exchange::Aborted
                } else {
                    Exchange::Reply(done)
                }
            }
            Ok(_) => self.after_deadline_or(FailureKind::Reset),
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                self.after_deadline_or(FailureKind::Timeout)
            }
            Err(_) => self.after_deadline_or(FailureKind::Reset),
        }
    }

    fn after_deadline_or(&self, kind: FailureKind) -> Exchange {
        if Instant::now() >= self.window.deadline {
            Exchange::Aborted
        } else {
            Exchange::Failed(kind)
        }
    }

    /// Records what became of one request; a failure drops the connection (the next
    /// request reconnects), the deadline ends the loop.
    /// `(due, sent)`: when the request was due and when it went out (the same, closed loop).
    fn settle(
        &self,
        exchange: Exchange,
        recorder: &mut Recorder,
        link: &mut Option<Link>,
        line: &str,
        (due, sent): (Instant, Instant),
        open: bool,
    ) -> ControlFlow<()> {
        match exchange {
            Exchange::Reply(done) => self.judge(recorder, line, due, sent, done, open),
            Exchange::Failed(kind) => {
                self.fail(recorder, kind);
                *link = None;
            }
            Exchange::Aborted => {
                recorder.aborted_at_deadline += 1;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    /// Records a reply that arrived at `done`, due at `due` and sent at `sent`.
    fn judge(
        &self,
        recorder: &mut Recorder,
        line: &str,
        due: Instant,
        sent: Instant,
        done: Instant,
        open: bool,
    ) {
        let line = line.trim_end_matches('\n');
        match ReplyLine::parse(line) {
            ReplyLine::Err(_) => return self.fail(recorder, FailureKind::ErrReply),
            ReplyLine::Ok(_) => {
                if let Reply::Error(_) = Reply::for_request(&self.class.parsed, line) {
                    return self.fail(recorder, FailureKind::Malformed);
                }
            }
        }
        recorder.success(done, done - due, open.then(|| done - sent));
        self.live.completed(done - due);
    }

    /// Send, wait, record, repeat until the deadline.
    fn closed_loop(&self) -> Recorder {
        let mut recorder = Recorder::new(self.window.measure_from, false);
        sleep_until(self.window.class_start(self.class));
        let request = format!("{}\n", self.class.request).into_bytes();
        let mut line = String::new();
        let mut link = None;
        while Instant::now() < self.window.deadline {
            let Some(current) = link.as_mut() else {
                link = self.connect(&mut recorder);
                continue;
            };
            let sent = Instant::now();
            let exchange = self.exchange(current, &request, &mut line);
            if self
                .settle(
                    exchange,
                    &mut recorder,
                    &mut link,
                    &line,
                    (sent, sent),
                    false,
                )
                .is_break()
            {
                break;
            }
        }
        recorder
    }

    /// Connection `index` of the class sends on its share of a fixed schedule: `rate`
    /// requests per second over all connections. A request is never sent before it is
    /// due; when the previous reply comes too late, it is sent late (and counted), and its
    /// latency still runs from when it was due — no coordinated omission.
    fn open_loop(&self, index: usize, rate: f64) -> Recorder {
        let mut recorder = Recorder::new(self.window.measure_from, true);
        let connections = self.class.connections as f64;
        let period = Duration::from_secs_f64(connections / rate);
        let mut due =
            self.window.class_start(self.class) + Duration::from_secs_f64(index as f64 / rate);
        let request = format!("{}\n", self.class.request).into_bytes();
        let mut line = String::new();
        let mut link = None;
        while due < self.window.deadline {
            sleep_until(due);
            let sent = Instant::now();
            if sent - due > LATE && due >= self.window.measure_from {
                recorder.late_sends += 1;
            }
            if link.is_none() {
                link = self.connect(&mut recorder);
            }
            if let Some(current) = link.as_mut() {
                let exchange = self.exchange(current, &request, &mut line);
                if self
                    .settle(exchange, &mut recorder, &mut link, &line, (due, sent), true)
                    .is_break()
                {
                    break;
                }
            }
            due += period;
        }
        recorder
    }
}

mod idle {
    //! Idle classes: many connections on one single-threaded event loop.

    use std::cell::RefCell;
    use std::rc::Rc;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;
    use tokio::sync::Semaphore;

    use super::*;

    /// Connections being opened at once: enough to open thousands quickly without a burst
    /// that overflows the server's accept backlog.
    const CONNECTING_AT_ONCE: usize = 256;

    pub fn run(
        plan: &Plan,
        class: &ClassPlan,
        interval: Option<Duration>,
        window: Window,
        sockets: &Arc<Connections>,
        live: Arc<LiveCounts>,
    ) -> Recorder {
        let recorder = Rc::new(RefCell::new(Recorder::new(window.measure_from, false)));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(runtime) = runtime else {
            let mut recorder = recorder.borrow_mut();
            for _ in 0..class.connections {
                recorder.failure(Instant::now(), FailureKind::Refused);
            }
            return recorder.clone();
        };
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            tokio::time::sleep_until(window.class_start(class).into()).await;
            let connecting = Rc::new(Semaphore::new(CONNECTING_AT_ONCE));
            let hold = Rc::new(Hold {
                target: plan.target(),
                class: class.clone(),
                interval,
                window,
                sockets: Arc::clone(sockets),
                live,
                timeout: plan.timeout(),
            });
            let mut tasks = Vec::with_capacity(class.connections);
            for index in 0..class.connections {
                let (recorder, connecting, hold) = (
                    Rc::clone(&recorder),
                    Rc::clone(&connecting),
                    Rc::clone(&hold),
                );
                tasks.push(tokio::task::spawn_local(async move {
                    let permit = connecting.acquire().await;
                    let stream = hold.connect(&recorder).await;
                    drop(permit);
                    if let Some(stream) = stream {
                        hold.hold(stream, index, &recorder).await;
                    }
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
        });
        Rc::try_unwrap(recorder)
            .map(RefCell::into_inner)
            .unwrap_or_else(|shared| shared.borrow().clone())
    }

    /// What every connection of an idle class shares.
    struct Hold {
        target: SocketAddr,
        class: ClassPlan,
        interval: Option<Duration>,
        window: Window,
        sockets: Arc<Connections>,
        live: Arc<LiveCounts>,
        timeout: Duration,
    }

    impl Hold {
        fn fail(&self, recorder: &RefCell<Recorder>, kind: FailureKind) {
            recorder.borrow_mut().failure(Instant::now(), kind);
            self.live.errors.fetch_add(1, Ordering::Relaxed);
        }

        async fn connect(&self, recorder: &RefCell<Recorder>) -> Option<HeldConnection> {
            let deadline = tokio::time::Instant::from_std(self.window.deadline);
            let stream =
                match tokio::time::timeout_at(deadline, TcpStream::connect(self.target)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        let refused = error.kind() == io::ErrorKind::ConnectionRefused;
                        self.fail(
                            recorder,
                            if refused {
                                FailureKind::Refused
                            } else {
                                FailureKind::Reset
                            },
                        );
                        return None;
                    }
                    Err(_) => return None,
                };
            let _ = stream.set_nodelay(true);
            let registered = self.sockets.admit(RawStream::of(&stream)).ok()?;
            recorder.borrow_mut().connected += 1;
            Some(HeldConnection {
                _registered: registered,
                stream: BufReader::new(stream),
            })
        }

        /// Holds the connection to the deadline, sending a request every interval if asked.
        async fn hold(&self, held: HeldConnection, index: usize, recorder: &RefCell<Recorder>) {
            let deadline = tokio::time::Instant::from_std(self.window.deadline);
            let mut held = held;
            let stream = &mut held.stream;
            let Some(interval) = self.interval else {
                // Nothing to send: wait for the deadline (the sweep ends the read) or for the
                // server to drop us, which is an error while the run lasts.
                let mut byte = [0u8; 1];
                let _ = tokio::time::timeout_at(deadline, stream.read(&mut byte)).await;
                if Instant::now() < self.window.deadline {
                    self.fail(recorder, FailureKind::Reset);
                }
                return;
            };
            // Spread the connections' requests over the interval.
            let phase = interval.mul_f64(index as f64 / self.class.connections.max(1) as f64);
            let mut due =
                tokio::time::Instant::from_std(self.window.class_start(&self.class)) + phase;
            let request = format!("{}\n", self.class.request);
            let mut line = String::new();
            loop {
                due += interval;
                if due >= deadline {
                    return;
                }
                tokio::time::sleep_until(due).await;
                let sent = Instant::now();
                if stream
                    .get_mut()
                    .write_all(request.as_bytes())
                    .await
                    .is_err()
                {
                    return self.fail(recorder, FailureKind::Reset);
                }
                line.clear();
                let reply = tokio::time::timeout(self.timeout, stream.read_line(&mut line)).await;
                let done = Instant::now();
                if done >= self.window.deadline {
                    recorder.borrow_mut().aborted_at_deadline += 1;
                    return;
                }
                match reply {
                    Ok(Ok(_)) if line.ends_with('\n') => match ReplyLine::parse(line.trim_end()) {
                        ReplyLine::Ok(_) => {
                            recorder.borrow_mut().success(done, done - sent, None);
                            self.live.completed(done - sent);
                        }
                        ReplyLine::Err(_) => self.fail(recorder, FailureKind::ErrReply),
                    },
                    Ok(_) => return self.fail(recorder, FailureKind::Reset),
                    Err(_) => return self.fail(recorder, FailureKind::Timeout),
                }
            }
        }
    }

    /// A held connection. Field order is drop order: the registration goes before the
    /// socket closes, so the sweep never touches a reused descriptor.
    struct HeldConnection {
        _registered: Connection<RawStream>,
        stream: BufReader<TcpStream>,
    }

    /// A socket's descriptor, registered for the deadline sweep without duplicating it
    /// (10,000 connections must not cost 20,000 descriptors).
    pub struct RawStream(std::os::fd::RawFd);

    impl RawStream {
        fn of(stream: &TcpStream) -> RawStream {
            use std::os::fd::AsRawFd;
            RawStream(stream.as_raw_fd())
        }
    }

    impl std::os::fd::AsRawFd for RawStream {
        fn as_raw_fd(&self) -> std::os::fd::RawFd {
            self.0
        }
    }
}
