//! The shared-objects method: two threads running one small loop on objects of their own and
//! on one object they share, beside one thread running both loops in a row — `python/
//! clab_bench.py shared` on CPython, and here the emulated mechanism on threads of the lab's
//! own process.
//!
//! Free-threaded CPython (PEP 703) keeps, in each object's header, the thread that made it, a
//! reference count only that thread changes (plain loads and stores), a second one the other
//! threads change with atomic instructions, and a lock that mutations of containers and of
//! attributes take. Threads on their own objects touch their own cache lines; threads on one
//! object write the same line at every reference taken and dropped and at every lock, and the
//! line travels between the cores. The emulation keeps that header on one cache line and does
//! those writes: what they cost is this machine's, as CPython's is. Under a GIL the header is
//! one plain count, no lock is taken, and the emulated GIL lets one thread run at a time.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::gil::{GilConfig, PythonThread, Variant};
use crate::lab::running::health::HealthLog;
use crate::work::Pace;

/// What one loop iteration does to its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// `box.v += 1`: two references to the box taken and dropped, a store under its lock.
    Attribute,
    /// `items.append(i)`: a reference taken and dropped, the list's lock around the append.
    Append,
    /// `f()`: the function's reference taken and dropped around the call, and its frame's.
    Call,
}

impl Operation {
    pub const ALL: [Operation; 3] = [Operation::Attribute, Operation::Append, Operation::Call];

    /// `clab_bench.py shared --op` names it so.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Attribute => "attribute",
            Operation::Append => "append",
            Operation::Call => "call",
        }
    }

    /// The eval loop's own time in one iteration, in ticks (one `while n > 0: n -= 1`
    /// iteration each), as free-threaded CPython 3.13 runs it alone: measured there at 2.6,
    /// 1.5 and 0.85 ticks (103, 60 and 33 ns against a 39.6 ns tick; its attribute access is
    /// generic, not specialised). With a GIL the three take 1.1–1.4 ticks (3.13.0); the
    /// ratios judged depend little on it.
    pub fn ticks(self) -> f64 {
        match self {
            Operation::Attribute => 2.5,
            Operation::Append => 1.5,
            Operation::Call => 1.0,
        }
    }

    /// Its two metrics: threads ÷ serial on objects of their own, and on one shared object.
    pub fn metrics(self) -> (&'static str, &'static str) {
        use crate::lab::claims::metrics::*;
        match self {
            Operation::Attribute => (SHARED_ATTRIBUTE_OWN, SHARED_ATTRIBUTE_ONE),
            Operation::Append => (SHARED_APPEND_OWN, SHARED_APPEND_ONE),
            Operation::Call => (SHARED_CALL_OWN, SHARED_CALL_ONE),
        }
    }

    /// The loop's body, as the bench writes it.
    pub fn code(self) -> &'static str {
        match self {
            Operation::Attribute => "box.v += 1",
            Operation::Append => "items.append(i)",
            Operation::Call => "f()",
        }
    }

    pub fn own_objects(self) -> &'static str {
        match self {
            Operation::Attribute => "a box each",
            Operation::Append => "a list each",
            Operation::Call => "a copy of the function each",
        }
    }

    pub fn shared_object(self) -> &'static str {
        match self {
            Operation::Attribute => "one shared box",
            Operation::Append => "one shared list",
            Operation::Call => "one module-level function",
        }
    }

    /// The iterations of a loop of about `length` at `tick`.
    pub fn iterations(self, length: Duration, tick: Duration) -> u64 {
        let per_iteration = self.ticks() * tick.as_nanos().max(1) as f64;
        ((length.as_nanos() as f64 / per_iteration) as u64).max(1)
    }
}

/// Seconds for one thread doing both threads' loops in a row, two threads on objects of
/// their own, and two threads on one object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timed {
    pub serial: f64,
    pub own: f64,
    pub shared: f64,
}

/// This thread's number, for the objects' owner field.
fn thread_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static NUMBER: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|number| *number)
}

/// An object's header and contents, on one cache line as in CPython.
#[repr(align(64))]
struct Object {
    /// The thread that made it (`ob_tid`).
    owner: u64,
    /// The owner's reference count (`ob_ref_local`): plain loads and stores.
    local: AtomicU64,
    /// Everyone else's (`ob_ref_shared`): atomic read-modify-writes.
    shared: AtomicI64,
    /// An attribute, read without the lock and stored under it.
    value: AtomicU64,
    /// The per-object lock (`ob_mutex`).
    lock: AtomicBool,
    /// A list's length (`ob_size`), in the header, changed under `lock`.
    length: AtomicUsize,
    /// Its items (`ob_item`), apart from the header as CPython's list keeps them; allocated
    /// for the appends to come, so no append moves them.
    items: Box<[AtomicU64]>,
    /// Never counted: 3.13's free-threaded build makes module-level functions (and code
    /// objects, classes, modules) immortal once a second thread starts, so their counts are
    /// only read.
    immortal: bool,
}

impl Object {
    /// Made by the calling thread, with room for `capacity` items.
    fn new(capacity: usize) -> Object {
        Object {
            owner: thread_number(),
            local: AtomicU64::new(1),
            shared: AtomicI64::new(0),
            value: AtomicU64::new(0),
            lock: AtomicBool::new(false),
            length: AtomicUsize::new(0),
            items: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            immortal: false,
        }
    }

    /// A module-level function as `free_threaded` CPython 3.13 keeps it.
    fn function(free_threaded: bool) -> Object {
        Object {
            immortal: free_threaded,
            ..Object::new(0)
        }
    }
}

/// How reference counts and object locks behave: one plain count under a GIL, biased
/// counts and a lock per object without one.
#[derive(Clone, Copy)]
struct Header {
    free_threaded: bool,
    me: u64,
}

impl Header {
    fn incref(self, object: &Object) {
        if object.immortal {
            std::hint::black_box(object.local.load(Ordering::Relaxed));
        } else if !self.free_threaded || object.owner == self.me {
            let count = object.local.load(Ordering::Relaxed);
            object.local.store(count + 1, Ordering::Relaxed);
        } else {
            object.shared.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn decref(self, object: &Object) {
        if object.immortal {
            std::hint::black_box(object.local.load(Ordering::Relaxed));
        } else if !self.free_threaded || object.owner == self.me {
            let count = object.local.load(Ordering::Relaxed);
            object.local.store(count.wrapping_sub(1), Ordering::Relaxed);
        } else {
            object.shared.fetch_sub(1, Ordering::Release);
        }
    }

    /// Runs `f` holding the object's lock, taken as CPython's `PyMutex` is: a
    /// compare-and-swap when it looks free, and while another thread holds it, yielding the
    /// CPU between looks (its critical sections here last nanoseconds, so no thread parks).
    /// Under a GIL it is never contended — one thread runs at a time — and costs a few
    /// nanoseconds that CPython's GIL build does not pay.
    fn locked(self, object: &Object, f: impl FnOnce()) {
        while object
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while object.lock.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
        }
        f();
        object.lock.store(false, Ordering::Release);
    }
}

/// One iteration of `operation` on `object`: the eval loop's time, then what the iteration's
/// instructions do to the object's header, in CPython's order.
///
/// The touches come together at the end of the iteration's time rather than spread between
/// its instructions as CPython's are. Neither way is faithful yet: on an Intel host in
/// December 2026, with the touches spread out, sharing one box took 3.9× the serial time
/// against CPython 3.13.5t's 1.1–1.3×; together, 2.0–2.5×; one shared list 4.4× against 1.4×.
/// The report's fidelity rows show the gap.
fn iteration(
    operation: Operation,
    object: &Object,
    header: Header,
    (pace, thread): (Pace, &mut PythonThread),
) {
    crate::work::tick(pace, thread);
    match operation {
        Operation::Attribute => {
            // LOAD_FAST and COPY take two references; LOAD_ATTR reads the value without the
            // lock and drops one; STORE_ATTR stores under the object's lock and drops the other.
            header.incref(object);
            header.incref(object);
            let value = object.value.load(Ordering::Relaxed);
            header.decref(object);
            header.locked(object, || object.value.store(value + 1, Ordering::Relaxed));
            header.decref(object);
        }
        Operation::Append => {
            // LOAD_FAST and the method's lookup take a reference; the call appends under the
            // list's lock; the call's end drops it.
            header.incref(object);
            header.locked(object, || {
                let length = object.length.load(Ordering::Relaxed);
                if let Some(slot) = object.items.get(length) {
                    slot.store(length as u64, Ordering::Relaxed);
                }
                object.length.store(length + 1, Ordering::Relaxed);
            });
            header.decref(object);
        }
        Operation::Call => {
            // LOAD_FAST's reference, then the new frame's; both dropped on return.
            header.incref(object);
            header.incref(object);
            header.decref(object);
            header.decref(object);
        }
    }
}

/// `iterations` of `operation` on `object` on the calling thread.
fn run_loop(
    operation: Operation,
    object: &Object,
    iterations: u64,
    free_threaded: bool,
    (pace, thread): (Pace, &mut PythonThread),
) {
    let header = Header {
        free_threaded,
        me: thread_number(),
    };
    for _ in 0..iterations {
        iteration(operation, object, header, (pace, thread));
    }
}

/// The three timings of one repeat under `config`: its GIL, or none, and its tick, the loops
/// `iterations` long, the threads pinned to `cpus`.
pub(crate) fn timed(
    config: &GilConfig,
    operation: Operation,
    iterations: u64,
    (cpus, log): (&[usize], &HealthLog),
) -> Timed {
    let free_threaded = config.variant == Variant::None;
    // An iteration's time in ticks of this configuration, whether or not a lock listens.
    let pace = Pace::for_tick(Duration::from_nanos(
        (operation.ticks() * config.tick.as_nanos() as f64) as u64,
    ));
    let gil = config.lock();
    // Room for every append a list of this loop receives.
    let capacity = match operation {
        Operation::Append => usize::try_from(iterations).unwrap_or(usize::MAX),
        _ => 0,
    };
    let serial = std::thread::scope(|scope| {
        let gil = gil.as_ref();
        scope
            .spawn(move || {
                log.pin_thread(&format!("shared-objects {} serial", operation.name()), cpus);
                // The thread that runs them made them, as the bench's main thread does.
                let objects = [Object::new(capacity), Object::new(capacity)];
                let mut thread = PythonThread::attach(gil, "serial");
                let started = Instant::now();
                for object in &objects {
                    run_loop(
                        operation,
                        object,
                        iterations,
                        free_threaded,
                        (pace, &mut thread),
                    );
                }
                started.elapsed().as_secs_f64()
            })
            .join()
            .expect("the serial loop does not panic")
    });
    // Made here, by neither of the threads that use it.
    let one = match operation {
        Operation::Call => Object::function(free_threaded),
        _ => Object::new(2 * capacity),
    };
    // Each thread on `shared`, or on an object it makes itself.
    let together = |shared: Option<&Object>| {
        let start = std::sync::Barrier::new(3);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..2)
                .map(|index| {
                    let (gil, start) = (gil.as_ref(), &start);
                    scope.spawn(move || {
                        log.pin_thread(
                            &format!("shared-objects {} thread {index}", operation.name()),
                            cpus,
                        );
                        let own = Object::new(capacity);
                        // Attaching takes the GIL: only after both are ready to run.
                        start.wait();
                        let mut thread = PythonThread::attach(gil, &format!("worker {index}"));
                        run_loop(
                            operation,
                            shared.unwrap_or(&own),
                            iterations,
                            free_threaded,
                            (pace, &mut thread),
                        );
                        Instant::now()
                    })
                })
                .collect();
            start.wait();
            let started = Instant::now();
            workers
                .into_iter()
                .map(|worker| worker.join().expect("a loop does not panic"))
                .max()
                .map_or(0.0, |finished| (finished - started).as_secs_f64())
        })
    };
    Timed {
        serial,
        own: together(None),
        shared: together(Some(&one)),
    }
}

/// What `clab_bench.py shared` prints: seconds per repeat of each of the three.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct PythonTimed {
    pub serial: Vec<f64>,
    pub own: Vec<f64>,
    pub shared: Vec<f64>,
}

impl PythonTimed {
    pub fn repeats(&self) -> Vec<Timed> {
        self.serial
            .iter()
            .zip(&self.own)
            .zip(&self.shared)
            .map(|((&serial, &own), &shared)| Timed {
                serial,
                own,
                shared,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> HealthLog {
        HealthLog::default()
    }

    /// The mechanism, not a number: without a GIL two threads on objects of their own
    /// overlap (under 0.8 of the serial time), and under the GIL they cannot (over 0.8). The
    /// best of five rounds: other tests on the machine only ever raise the ratio.
    #[test]
    fn threads_overlap_only_without_a_gil() {
        let cpus = crate::system::cpus::allowed_cpus();
        if cpus.len() < 2 {
            eprintln!("one CPU: nothing can overlap");
            return;
        }
        let tick = Duration::from_nanos(50);
        let iterations = Operation::Attribute.iterations(Duration::from_millis(20), tick);
        let best = |config: &GilConfig| {
            (0..5)
                .map(|_| {
                    let timed = timed(config, Operation::Attribute, iterations, (&cpus, &quiet()));
                    timed.own / timed.serial
                })
                .fold(f64::INFINITY, f64::min)
        };
        let free = GilConfig {
            tick,
            ..GilConfig::new(Variant::None)
        };
        let new = GilConfig {
            tick,
            ..GilConfig::new(Variant::New)
        };
        let (without, with) = (best(&free), best(&new));
        assert!(without < 0.8, "own objects without a GIL: {without:.2}");
        assert!(with > 0.8, "own objects under the GIL: {with:.2}");
    }

    #[test]
    fn an_append_lands_in_the_list() {
        let object = Object::new(100);
        let mut thread = PythonThread::attach(None, "test");
        let pace = Pace::for_tick(Duration::from_nanos(10));
        run_loop(Operation::Append, &object, 100, true, (pace, &mut thread));
        run_loop(Operation::Attribute, &object, 7, true, (pace, &mut thread));
        let items = object.length.load(Ordering::Relaxed);
        assert_eq!((items, object.value.load(Ordering::Relaxed)), (100, 7));
        assert_eq!(object.items[99].load(Ordering::Relaxed), 99);
        // Every reference taken was dropped: the owner's count is back where it began.
        assert_eq!(object.local.load(Ordering::Relaxed), 1);
    }
}
