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
//! those writes: what they cost is this machine's, as CPython's is. A thread that finds an
//! object locked yields its CPU 40 times and then parks, as 3.13's `PyMutex` does; the other
//! thread meanwhile has the line to itself, and wakes it at its next unlock. A list grows as
//! CPython's does, copying its items into a larger array under its lock; one that a thread
//! other than its owner grew keeps the arrays it replaced, as 3.13t delays freeing them.
//! Under a GIL the header is one plain count, the lock is never found held, and the emulated
//! GIL lets one thread run at a time.

use std::cell::UnsafeCell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::gil::{Gil, GilConfig, PythonThread, Variant};
use crate::lab::running::Sample;
use crate::lab::running::health::HealthLog;
use crate::lab::running::pythons::{LoopIteration, LoopIterations};
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
    /// generic, not specialised). Used only where no interpreter was timed running the loop
    /// (the emulation alone): an interpreter's own iteration is calibrated with its tick.
    pub fn ticks(self) -> f64 {
        match self {
            Operation::Attribute => 2.5,
            Operation::Append => 1.5,
            Operation::Call => 1.0,
        }
    }

    /// The part of [`Operation::ticks`] spent holding the object's lock: for the store, the
    /// key's lookup in the instance's values, the store and the old value's release (3.13's
    /// `store_instance_attr_lock_held`); for the append, the store of the item and the new
    /// length (`_PyList_AppendTakeRef`), and any growth on top. Read from the source, not
    /// fitted: a few of the iteration's hundred nanoseconds.
    fn locked_ticks(self) -> f64 {
        match self {
            Operation::Attribute => 0.5,
            Operation::Append => 0.25,
            Operation::Call => 0.0,
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

    /// Its iteration on an interpreter that was timed running it.
    pub fn of(self, loops: &LoopIterations) -> LoopIteration {
        match self {
            Operation::Attribute => loops.attribute,
            Operation::Append => loops.append,
            Operation::Call => loops.call,
        }
    }

    /// Its iteration there, to change.
    pub fn of_mut(self, loops: &mut LoopIterations) -> &mut LoopIteration {
        match self {
            Operation::Attribute => &mut loops.attribute,
            Operation::Append => &mut loops.append,
            Operation::Call => &mut loops.call,
        }
    }

    /// Its iteration by [`Operation::ticks`] at `tick`, where no interpreter was timed: one
    /// check, at the backward jump.
    pub fn at_tick(self, tick: Duration) -> LoopIteration {
        LoopIteration {
            iteration_ns: self.ticks() * tick.as_nanos().max(1) as f64,
            checks: 1,
        }
    }
}

/// The iterations of a loop of about `length`.
pub(crate) fn iterations(iteration: LoopIteration, length: Duration) -> u64 {
    ((length.as_nanos() as f64 / iteration.iteration_ns.max(1.0)) as u64).max(1)
}

/// Seconds for one thread doing both threads' loops in a row and for two threads at once,
/// on objects of their own and on one object, each side running the same objects' loops.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timed {
    pub own_in_a_row: f64,
    pub own_at_once: f64,
    pub shared_in_a_row: f64,
    pub shared_at_once: f64,
}

impl Timed {
    /// Every time positive and finite: a repeat that was measured.
    pub fn measured(&self) -> bool {
        let times = [
            self.own_in_a_row,
            self.own_at_once,
            self.shared_in_a_row,
            self.shared_at_once,
        ];
        times.iter().all(|&time| time > 0.0 && time.is_finite())
    }
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
    lock: ObjectLock,
    /// A list's length (`ob_size`), in the header, changed under `lock`.
    length: AtomicUsize,
    /// Its items (`ob_item`), apart from the header as CPython's list keeps them; read and
    /// written only under `lock`.
    items: UnsafeCell<Items>,
    /// Never counted: 3.13's free-threaded build makes module-level functions (and code
    /// objects, classes, modules) immortal once a second thread starts, so their counts are
    /// only read.
    immortal: bool,
}

// SAFETY: `items`, the one field without its own synchronisation, is touched only by
// `Object::append` and `Object::items`, whose callers hold the object's lock.
unsafe impl Sync for Object {}

impl Object {
    /// An empty one made by the calling thread.
    fn new() -> Object {
        Object {
            owner: thread_number(),
            local: AtomicU64::new(1),
            shared: AtomicI64::new(0),
            value: AtomicU64::new(0),
            lock: ObjectLock::default(),
            length: AtomicUsize::new(0),
            items: UnsafeCell::new(Items::default()),
            immortal: false,
        }
    }

    /// A module-level function as `free_threaded` CPython 3.13 keeps it.
    fn function(free_threaded: bool) -> Object {
        Object {
            immortal: free_threaded,
            ..Object::new()
        }
    }

    /// `list.append(item)` by the thread `header` stands for, which holds the lock.
    fn append(&self, item: u64, header: Header) {
        // SAFETY: the caller holds `lock`, so no other thread touches `items`.
        let items = unsafe { &mut *self.items.get() };
        let growth = match (header.free_threaded, header.me == self.owner) {
            (false, _) => Growth::Reallocate,
            (true, true) => Growth::Copy,
            (true, false) => Growth::CopyShared,
        };
        items.push(item, growth);
        self.length.store(items.array.len(), Ordering::Relaxed);
    }

    /// Its items, for a caller that holds the only reference.
    #[cfg(test)]
    fn items(&mut self) -> Vec<u64> {
        self.items.get_mut().array.clone()
    }
}

/// A list's items (`ob_item`, its length `ob_size`, its capacity `allocated`), each a pointer
/// in CPython, and the arrays its growth replaced that are not yet freed.
#[derive(Default)]
struct Items {
    array: Vec<u64>,
    /// Replaced arrays of a list some other thread grew, freed only once every thread has
    /// passed a quiescent state (QSBR): 3.13t queues such frees and processes its queue when
    /// 254 are waiting, which a loop's few dozen growths never reach.
    retired: Vec<Vec<u64>>,
    /// Grown by a thread other than its owner once (`_PyObject_GC_SET_SHARED`), so any
    /// thread may be reading an array it replaces.
    shared: bool,
}

/// How a full list's array grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Growth {
    /// With a GIL, `realloc`: a large array's mapping grows where it lies, nothing copied.
    Reallocate,
    /// Free-threaded, by the list's owner: a new array, the items copied over and the rest
    /// zeroed under the list's lock, the old one freed at once.
    Copy,
    /// Free-threaded, by another thread: as [`Growth::Copy`], the old array freed delayed.
    CopyShared,
}

impl Items {
    /// Appends `item`. A full array grows to one an eighth larger, as `list_resize` sizes it.
    /// The arrays come from this process's allocator, which keeps what is freed for the next
    /// allocations as mimalloc and pymalloc do: 3.13t took 1,300–3,800 page faults for two
    /// 539,000-item lists grown in a row where fresh mappings for every growth took 20,000,
    /// and 20,000–25,000 for one list grown by two threads that do not own it, whose old
    /// arrays wait (December 2026, Intel; `ru_minflt` around each of the bench's loops).
    fn push(&mut self, item: u64, growth: Growth) {
        let len = self.array.len();
        if len == self.array.capacity() {
            let size = len + 1;
            let capacity = (size + (size >> 3) + 6) & !3;
            if growth == Growth::Reallocate {
                self.array.reserve_exact(capacity - len);
            } else {
                let mut grown = Vec::with_capacity(capacity);
                grown.extend_from_slice(&self.array);
                // The slots past the items are zeroed, as `list_resize` does.
                for slot in grown.spare_capacity_mut() {
                    slot.write(0);
                }
                let old = std::mem::replace(&mut self.array, grown);
                self.shared |= growth == Growth::CopyShared;
                if self.shared && old.capacity() > 0 {
                    self.retired.push(old);
                }
            }
        }
        self.array.push(item);
    }
}

/// A chunk of a heap: a mapping of its own, so its pages are fresh ones the kernel hands
/// out at their first touch, or where mappings run out, from this process's allocator.
enum Block {
    Heap(Vec<u8>),
    Mapped(memmap2::MmapMut),
}

impl Block {
    fn new(bytes: usize) -> Block {
        match memmap2::MmapMut::map_anon(bytes) {
            Ok(map) => Block::Mapped(map),
            Err(_) => Block::Heap(vec![0; bytes]),
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Block::Heap(bytes) => bytes,
            Block::Mapped(map) => map,
        }
    }
}

/// The objects a loop makes and keeps: `range` hands `items.append(i)` a new int each
/// iteration (none past 256 is cached) and the list keeps it, so a list's growth is also the
/// heap's. An int takes 48 bytes free-threaded (44, in mimalloc's size class of 48) and 32
/// with a GIL (28, in pymalloc's 32): 36 MB for 760,000 appends on 3.13t.
struct Made {
    size: usize,
    chunks: Vec<Block>,
    used: usize,
}

impl Made {
    fn new(free_threaded: bool) -> Made {
        Made {
            size: if free_threaded { 48 } else { 32 },
            chunks: Vec::new(),
            used: Heap::CHUNK,
        }
    }

    /// A new int of `value`, written whole as CPython initialises one: its address.
    fn int(&mut self, heap: &Mutex<Heap>, value: u64) -> u64 {
        if self.used + self.size > Heap::CHUNK {
            self.chunks.push(crate::sync::lock(heap).chunk());
            self.used = 0;
        }
        let chunk = self.chunks.last_mut().expect("a chunk was just taken");
        let object = &mut chunk.bytes_mut()[self.used..self.used + self.size];
        for word in object.chunks_exact_mut(std::mem::size_of::<u64>()) {
            word.copy_from_slice(&value.to_ne_bytes());
        }
        self.used += self.size;
        object.as_ptr() as u64
    }

    /// Frees all of it: its pages go back to the heap they came from.
    fn free(self, heap: &Mutex<Heap>) {
        crate::sync::lock(heap).free.extend(self.chunks);
    }
}

/// A heap as CPython's allocators keep them: one per thread free-threaded (mimalloc), one
/// per process with a GIL (pymalloc). What its frees return, it keeps for its next
/// allocations; a heap with nothing kept takes fresh pages from the kernel, and each is a
/// page fault at its first touch, in the address space both threads share. The bench's
/// serial loops run on its main thread, whose heap is warm from the repeats before; without
/// a GIL each repeat's threads are new, with empty heaps. On 3.13.5t two threads growing
/// lists of their own took 0.51× the serial time in a first repeat and 0.65–0.76× in the
/// next four, as the main thread's heap warmed; appending the constant 1, which allocates
/// nothing, 0.54×. (Lists' arrays, larger and fewer, come from the process's allocator:
/// see [`Items::push`].)
#[derive(Default)]
pub(crate) struct Heap {
    free: Vec<Block>,
}

impl Heap {
    /// The step by which a heap grows: a mapping of fresh pages.
    const CHUNK: usize = 1 << 20;

    fn chunk(&mut self) -> Block {
        self.free.pop().unwrap_or_else(|| Block::new(Heap::CHUNK))
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

    /// Runs `f` holding the object's lock. Under a GIL it is never found held — one thread
    /// runs at a time — and costs a few nanoseconds that CPython's GIL build does not pay.
    fn locked(self, object: &Object, f: impl FnOnce()) {
        object.lock.lock();
        f();
        object.lock.unlock();
    }
}

/// An object's lock as free-threaded 3.13's `PyMutex` (Python/lock.c): a compare-and-swap
/// when free. A thread that finds it held yields its CPU 40 times without looking again
/// (`_PyMutex_LockTimed` does not reload the lock's state between its yields), then marks
/// it `HAS_PARKED` and parks — at once, without yielding, if another thread is parked
/// already. Unlocking a lock with a parked thread wakes it (a system call, where a plain
/// unlock is a store); the woken thread looks again and parks again if the lock was taken
/// meanwhile. A thread parked for over a millisecond is handed the lock by the next unlock.
/// CPython parks each thread on a semaphore of its own, queued in a hashed bucket, and wakes
/// one; here the lock's own word is the futex and an unlock wakes every thread parked on it
/// (the others look and park again): the same while at most one waits, as in this method's
/// two-thread loops.
#[derive(Default)]
struct ObjectLock {
    /// `LOCKED | HAS_PARKED`, as `PyMutex._bits`.
    bits: AtomicU32,
    /// When the parked thread is owed the lock (`time_to_be_fair`), ns on [`lock_clock`].
    fair_at_ns: AtomicU64,
    /// Set by an unlock that handed the lock to the thread it woke.
    handed_off: AtomicBool,
}

const LOCKED: u32 = 1;
const HAS_PARKED: u32 = 2;
/// `TIME_TO_BE_FAIR_NS`.
const TIME_TO_BE_FAIR: Duration = Duration::from_millis(1);

/// Nanoseconds on one clock for all object locks.
fn lock_clock() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

impl ObjectLock {
    fn lock(&self) {
        let mut bits = self.bits.load(Ordering::Relaxed);
        if bits & LOCKED == 0
            && self
                .bits
                .compare_exchange(bits, bits | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
        let fair_at = lock_clock() + TIME_TO_BE_FAIR.as_nanos() as u64;
        let mut yields = 0;
        loop {
            if bits & LOCKED == 0 {
                match self.bits.compare_exchange(
                    bits,
                    bits | LOCKED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(now) => {
                        bits = now;
                        continue;
                    }
                }
            }
            if bits & HAS_PARKED == 0 && yields < crate::sync::FREE_THREADED_YIELDS {
                std::thread::yield_now();
                yields += 1;
                continue;
            }
            if bits & HAS_PARKED == 0 {
                if let Err(now) = self.bits.compare_exchange(
                    bits,
                    bits | HAS_PARKED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    bits = now;
                    continue;
                }
                bits |= HAS_PARKED;
            }
            self.fair_at_ns.store(fair_at, Ordering::Relaxed);
            crate::system::futex::wait(&self.bits, bits);
            if self.handed_off.swap(false, Ordering::Acquire) {
                return;
            }
            bits = self.bits.load(Ordering::Relaxed);
        }
    }

    fn unlock(&self) {
        if self
            .bits
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        // A thread is parked: wake it, handing it the lock if it has waited long enough.
        if lock_clock() > self.fair_at_ns.load(Ordering::Relaxed) {
            self.handed_off.store(true, Ordering::Release);
            self.bits.store(LOCKED, Ordering::Release);
        } else {
            self.bits.store(0, Ordering::Release);
        }
        crate::system::futex::wake_all(&self.bits);
    }
}

/// An iteration's busy work: the part outside the object's lock, in as many stretches as
/// the interpreter has checks in an iteration, each ending at a checkpoint, and the part
/// inside it. Under the legacy GIL, which counts checks, how far apart they are sets how
/// often the holder drops the lock.
#[derive(Clone, Copy)]
struct Paces {
    unlocked: Pace,
    checks: u32,
    locked: Pace,
}

impl Paces {
    fn new(operation: Operation, iteration: LoopIteration) -> Paces {
        let locked_share = operation.locked_ticks() / operation.ticks();
        let checks = iteration.checks.max(1);
        let ns = |ns: f64| Pace::for_tick(Duration::from_nanos(ns as u64));
        Paces {
            unlocked: ns(iteration.iteration_ns * (1.0 - locked_share) / f64::from(checks)),
            checks,
            locked: ns(iteration.iteration_ns * locked_share),
        }
    }
}

/// One iteration of `operation` on `object`: the eval loop's time, then what the iteration's
/// instructions do to the object's header, in CPython's order.
///
/// The touches come together at the end of the iteration's time rather than spread between
/// its instructions as CPython's are: spread out, they made sharing one box cost 3.9× the
/// serial time where CPython 3.13.5t pays 1.1–1.3× (an Intel host, December 2026).
fn iteration(
    operation: Operation,
    (object, made, heap): (&Object, &mut Made, &Mutex<Heap>),
    header: Header,
    (paces, thread): (Paces, &mut PythonThread),
) {
    for _ in 0..paces.checks {
        crate::work::tick(paces.unlocked, thread);
    }
    let locked_work = || crate::work::tick(paces.locked, &mut crate::work::Free);
    match operation {
        Operation::Attribute => {
            // LOAD_FAST and COPY take two references; LOAD_ATTR reads the value without the
            // lock and drops one; STORE_ATTR stores under the object's lock and drops the other.
            header.incref(object);
            header.incref(object);
            let value = object.value.load(Ordering::Relaxed);
            header.decref(object);
            header.locked(object, || {
                locked_work();
                object.value.store(value + 1, Ordering::Relaxed);
            });
            header.decref(object);
        }
        Operation::Append => {
            // `range` makes the int; LOAD_FAST and the method's lookup take a reference to
            // the list; the call appends under its lock; the call's end drops it.
            let item = made.int(heap, object.length.load(Ordering::Relaxed) as u64);
            header.incref(object);
            header.locked(object, || {
                locked_work();
                object.append(item, header);
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

/// `iterations` of `operation` on `object` on the calling thread, allocating from `heap`;
/// what they made, for the caller to free once it has stopped timing.
fn run_loop(
    operation: Operation,
    (object, heap): (&Object, &Mutex<Heap>),
    iterations: u64,
    free_threaded: bool,
    (paces, thread): (Paces, &mut PythonThread),
) -> Made {
    let header = Header {
        free_threaded,
        me: thread_number(),
    };
    let mut made = Made::new(free_threaded);
    for _ in 0..iterations {
        iteration(
            operation,
            (object, &mut made, heap),
            header,
            (paces, thread),
        );
    }
    made
}

/// An emulated iteration fitted to an interpreter's: the eval loop's time it spends, and
/// what the emulated loop alone then took, ns an iteration in each of five loops.
#[derive(Debug, Clone)]
pub(crate) struct Fitted {
    pub eval_loop: LoopIteration,
    pub alone_ns: Vec<f64>,
}

/// Fits the eval loop's time in an emulated iteration of `operation` under `config` so that
/// the emulated loop alone takes the interpreter's `iteration`: the best of five loops of
/// `iterations`, the loops' length in the pair (a longer list's growth costs more an
/// iteration), each on a new object, the heap's pages kept between them. The interpreter's iteration holds
/// its allocations, a list's growth and its objects' headers already, and the emulation does
/// that work too, so only the rest is the eval loop's: spending the whole iteration on top
/// made 3.13t's emulated appends in a row take 114 ns against CPython's 73 and hid what
/// sharing adds. Not a subtraction: the CPU overlaps the two (a 2.7 attribute loop with 67
/// ns of eval loop and 24 of object work alone took 61 ns an iteration), so each try is
/// timed and the next corrected by the miss. Where the emulated work alone takes longer than
/// the whole iteration (a free-threaded append sized in ticks, where no interpreter was timed:
/// 33 ns against 55–66), no eval loop is left, and the emulated loop is the slower.
pub(crate) fn fitted(
    config: &GilConfig,
    (operation, iteration, iterations): (Operation, LoopIteration, u64),
    main_heap: &Mutex<Heap>,
    (cpus, log): (&[usize], &HealthLog),
) -> Fitted {
    let free_threaded = config.variant == Variant::None;
    let target = iteration.iteration_ns;
    let gil = config.lock();
    on_a_thread_of_its_own(
        (gil.as_ref(), cpus, log),
        operation,
        "calibration",
        |thread| {
            let mut alone = |eval_loop: LoopIteration| -> Vec<f64> {
                let paces = Paces::new(operation, eval_loop);
                (0..5)
                    .map(|_| {
                        let object = Object::new();
                        let started = Instant::now();
                        let made = run_loop(
                            operation,
                            (&object, main_heap),
                            iterations,
                            free_threaded,
                            (paces, thread),
                        );
                        let elapsed = started.elapsed();
                        made.free(main_heap);
                        elapsed.as_nanos() as f64 / iterations as f64
                    })
                    .collect()
            };
            let miss = |fitted: &Fitted| target - Sample::new(fitted.alone_ns.clone()).min;
            let mut tried = Fitted {
                eval_loop: iteration,
                alone_ns: alone(iteration),
            };
            let mut closest = tried.clone();
            // A few corrections: the eval loop's time is spent in whole spin steps.
            for _ in 0..4 {
                let next = (tried.eval_loop.iteration_ns + miss(&tried)).max(0.0);
                if miss(&tried).abs() <= 0.02 * target || next == tried.eval_loop.iteration_ns {
                    break;
                }
                let eval_loop = LoopIteration {
                    iteration_ns: next,
                    ..iteration
                };
                tried = Fitted {
                    eval_loop,
                    alone_ns: alone(eval_loop),
                };
                if miss(&tried).abs() < miss(&closest).abs() {
                    closest = tried.clone();
                }
            }
            closest
        },
    )
}

/// Runs `f` on a thread of its own pinned to `cpus` and attached to `gil` as a Python thread,
/// as the bench runs its loops in a row on its main thread; what `f` returns.
fn on_a_thread_of_its_own<R: Send>(
    (gil, cpus, log): (Option<&Gil>, &[usize], &HealthLog),
    operation: Operation,
    role: &str,
    f: impl FnOnce(&mut PythonThread) -> R + Send,
) -> R {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                log.pin_thread(&format!("shared-objects {} {role}", operation.name()), cpus);
                f(&mut PythonThread::attach(gil, role))
            })
            .join()
            .expect("a loop does not panic")
    })
}

/// The four timings of one repeat under `config`, its GIL or none, each loop `iterations`
/// of `iteration`; the loops in a row on one thread on `cpus`, each of the two threads at
/// once on one of them in turn. The loops in a row allocate from `main_heap`, the heap of the
/// bench's main thread, kept from one repeat to the next, and with a GIL the threads' loops
/// do too: it is the process's.
pub(crate) fn timed(
    config: &GilConfig,
    (operation, iteration, iterations): (Operation, LoopIteration, u64),
    main_heap: &Mutex<Heap>,
    (cpus, log): (&[usize], &HealthLog),
) -> Timed {
    let free_threaded = config.variant == Variant::None;
    // An iteration's time, whether or not a lock listens.
    let paces = Paces::new(operation, iteration);
    let gil = config.lock();
    let shared_object = || match operation {
        Operation::Call => Object::function(free_threaded),
        _ => Object::new(),
    };
    // Both loops on one thread, on two objects of its own or twice on one.
    let in_a_row = |shared: bool| {
        on_a_thread_of_its_own((gil.as_ref(), cpus, log), operation, "serial", |thread| {
            // The thread that runs them made them, as the bench's main thread does.
            let objects = if shared {
                vec![shared_object()]
            } else {
                vec![Object::new(), Object::new()]
            };
            let started = Instant::now();
            let made: Vec<Made> = (0..2)
                .map(|index| {
                    run_loop(
                        operation,
                        (&objects[index % objects.len()], main_heap),
                        iterations,
                        free_threaded,
                        (paces, thread),
                    )
                })
                .collect();
            let elapsed = started.elapsed().as_secs_f64();
            // Freed once timed, as the bench frees them.
            for made in made {
                made.free(main_heap);
            }
            elapsed
        })
    };
    // Each thread on `shared`, or on an object it makes itself.
    let at_once = |shared: Option<&Object>| {
        let (ready, go) = (std::sync::Barrier::new(3), std::sync::Barrier::new(3));
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..2)
                .map(|index| {
                    let (gil, ready, go) = (gil.as_ref(), &ready, &go);
                    scope.spawn(move || {
                        // A CPU each, as the bench's workers (see `together` there).
                        log.pin_thread(
                            &format!("shared-objects {} thread {index}", operation.name()),
                            &[cpus[index % cpus.len()]],
                        );
                        let own = Object::new();
                        ready.wait();
                        // Attaching takes the GIL: only after both are ready to run.
                        go.wait();
                        let mut thread = PythonThread::attach(gil, &format!("worker {index}"));
                        let new_heap = Mutex::default();
                        let heap = if free_threaded { &new_heap } else { main_heap };
                        let made = run_loop(
                            operation,
                            (shared.unwrap_or(&own), heap),
                            iterations,
                            free_threaded,
                            (paces, &mut thread),
                        );
                        (Instant::now(), (made, own))
                    })
                })
                .collect();
            // The clock starts before the threads are let go, as the bench's does: read after,
            // it waited for this thread to get a CPU from the two busy loops, up to a
            // scheduler slice (4 ms of a 39 ms loop), and the loops at once read 0.44× the
            // loops in a row.
            ready.wait();
            let started = Instant::now();
            go.wait();
            let (finished, made): (Vec<Instant>, Vec<_>) = workers
                .into_iter()
                .map(|worker| worker.join().expect("a loop does not panic"))
                .unzip();
            // What the loops made is freed once both are timed, as the bench frees it: with
            // a GIL into the process's one heap, which serves the next loops as it serves
            // these (dropped instead, its pages left the loops in a row the only ones to take
            // fresh pages, and emulated threads took 0.90× their time); without one, each
            // thread's heap goes with the thread.
            for (made, _own) in made {
                if !free_threaded {
                    made.free(main_heap);
                }
            }
            finished
                .into_iter()
                .max()
                .map_or(0.0, |finished| (finished - started).as_secs_f64())
        })
    };
    let own_in_a_row = in_a_row(false);
    let own_at_once = at_once(None);
    let shared_in_a_row = in_a_row(true);
    // Made here, by neither of the threads that use it.
    let one = shared_object();
    Timed {
        own_in_a_row,
        own_at_once,
        shared_in_a_row,
        shared_at_once: at_once(Some(&one)),
    }
}

/// What `clab_bench.py shared` prints: seconds per repeat of each of the four.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct PythonTimed {
    pub own_in_a_row: Vec<f64>,
    pub own_at_once: Vec<f64>,
    pub shared_in_a_row: Vec<f64>,
    pub shared_at_once: Vec<f64>,
}

impl PythonTimed {
    pub fn repeats(&self) -> Vec<Timed> {
        let repeat = |index: usize| {
            Some(Timed {
                own_in_a_row: *self.own_in_a_row.get(index)?,
                own_at_once: *self.own_at_once.get(index)?,
                shared_in_a_row: *self.shared_in_a_row.get(index)?,
                shared_at_once: *self.shared_at_once.get(index)?,
            })
        };
        (0..).map_while(repeat).collect()
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
        let _alone = crate::system::timing::timing_lock();
        let cpus = crate::system::cpus::allowed_cpus();
        if cpus.len() < 2 {
            eprintln!("one CPU: nothing can overlap");
            return;
        }
        let tick = Duration::from_nanos(50);
        let iteration = Operation::Attribute.at_tick(tick);
        let iterations = iterations(iteration, Duration::from_millis(20));
        let best = |config: &GilConfig| {
            (0..5)
                .map(|_| {
                    let run = (Operation::Attribute, iteration, iterations);
                    let timed = timed(config, run, &Mutex::default(), (&cpus, &quiet()));
                    timed.own_at_once / timed.own_in_a_row
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

    /// Under a GIL every loop allocates from the process's one heap and gives it back, the
    /// threads' at once too: after a repeat the heap keeps the two loops' worth it lent last,
    /// ready for the next repeat's loops in a row.
    #[test]
    fn a_gil_keeps_one_heap_for_every_loop() {
        let cpus = crate::system::cpus::allowed_cpus();
        let tick = Duration::from_nanos(1);
        let config = GilConfig {
            tick,
            ..GilConfig::new(Variant::New)
        };
        let heap = Mutex::default();
        // Three chunks of 32-byte ints a loop.
        let iterations = 3 * Heap::CHUNK as u64 / 32;
        let run = (
            Operation::Append,
            Operation::Append.at_tick(tick),
            iterations,
        );
        timed(&config, run, &heap, (&cpus, &quiet()));
        assert_eq!(crate::sync::lock(&heap).free.len(), 6);
    }

    /// The fit counts the emulated objects' own work in the interpreter's iteration: an
    /// append loop alone spends less than the iteration as the eval loop's and still takes
    /// about the iteration (wide margins: other tests share the machine).
    #[test]
    fn an_emulated_loop_alone_is_fitted_to_the_interpreters() {
        let _alone = crate::system::timing::timing_lock();
        let cpus = crate::system::cpus::allowed_cpus();
        let config = GilConfig::new(Variant::None);
        let iteration = LoopIteration {
            iteration_ns: 300.0,
            checks: 1,
        };
        let heap = Mutex::default();
        let run = (Operation::Append, iteration, 200_000);
        let fit = fitted(&config, run, &heap, (&cpus, &quiet()));
        assert!(fit.eval_loop.iteration_ns < 300.0, "{fit:?}");
        let best = fit.alone_ns.iter().copied().fold(f64::INFINITY, f64::min);
        assert!((150.0..600.0).contains(&best), "{fit:?}");
    }

    /// An iteration with four checks is four stretches of a quarter of the unlocked time, as
    /// 2.7 ticks four times in `box.v += 1`; the locked part stays whole.
    #[test]
    fn an_iteration_is_split_at_its_checks() {
        let iteration = |checks| LoopIteration {
            iteration_ns: 400.0,
            checks,
        };
        let (one, four) = (
            Paces::new(Operation::Attribute, iteration(1)),
            Paces::new(Operation::Attribute, iteration(4)),
        );
        assert_eq!((one.checks, four.checks), (1, 4));
        let quarter = f64::from(one.unlocked.spin_iterations) / 4.0;
        assert!((f64::from(four.unlocked.spin_iterations) - quarter).abs() <= 1.0);
        assert_eq!(one.locked, four.locked);
    }

    #[test]
    fn an_append_lands_in_the_list() {
        let mut object = Object::new();
        let mut thread = PythonThread::attach(None, "test");
        let (tick, heap) = (Duration::from_nanos(10), Mutex::default());
        let appends = Paces::new(Operation::Append, Operation::Append.at_tick(tick));
        let made = run_loop(
            Operation::Append,
            (&object, &heap),
            100,
            true,
            (appends, &mut thread),
        );
        let stores = Paces::new(Operation::Attribute, Operation::Attribute.at_tick(tick));
        run_loop(
            Operation::Attribute,
            (&object, &heap),
            7,
            true,
            (stores, &mut thread),
        );
        let items = object.length.load(Ordering::Relaxed);
        assert_eq!((items, object.value.load(Ordering::Relaxed)), (100, 7));
        // Each item is a new int of 48 bytes, made one after the other.
        let addresses = object.items();
        assert_eq!(addresses.len(), 100);
        assert!(addresses.windows(2).all(|pair| pair[1] - pair[0] == 48));
        // Every reference taken was dropped: the owner's count is back where it began.
        assert_eq!(object.local.load(Ordering::Relaxed), 1);
        // Freed, its pages serve the heap's next allocations.
        made.free(&heap);
        let again = run_loop(
            Operation::Append,
            (&object, &heap),
            1,
            true,
            (appends, &mut thread),
        );
        assert_eq!(object.items()[100], addresses[0]);
        drop(again);
    }

    /// Copied into new arrays free-threaded, `realloc`ed with a GIL: the same items, and only
    /// a list grown by a thread that does not own it keeps the arrays it replaced.
    #[test]
    fn a_growing_list_keeps_its_items_in_order() {
        let count = 100_000;
        for growth in [Growth::Reallocate, Growth::Copy, Growth::CopyShared] {
            let mut items = Items::default();
            for item in 0..count {
                items.push(item, growth);
            }
            assert_eq!(items.array, (0..count).collect::<Vec<u64>>(), "{growth:?}");
            // 4, 8, 16, 24, … 108,848: 66 growths, each but the first replacing an array.
            let retired = items.retired.len();
            match growth {
                Growth::CopyShared => assert_eq!(retired, 65),
                _ => assert_eq!(retired, 0, "{growth:?}"),
            }
        }
        // Once shared, always: the owner's growths keep their old arrays too.
        let mut items = Items::default();
        items.push(0, Growth::CopyShared);
        for item in 1..100 {
            items.push(item, Growth::Copy);
        }
        assert_eq!(items.retired.len(), 10);
    }

    /// The lock excludes, parking and handing over included: two threads' read-then-store
    /// increments under it lose none, also when one holds it for over the millisecond after
    /// which a parked thread is handed the lock.
    #[test]
    fn the_object_lock_excludes() {
        let object = Object::new();
        let header = |me| Header {
            free_threaded: true,
            me,
        };
        std::thread::scope(|scope| {
            for me in [100, 101] {
                let object = &object;
                scope.spawn(move || {
                    for round in 0..20_000 {
                        header(me).locked(object, || {
                            let value = object.value.load(Ordering::Relaxed);
                            if round % 5_000 == 0 {
                                std::thread::sleep(Duration::from_millis(2));
                            }
                            object.value.store(value + 1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(object.value.load(Ordering::Relaxed), 40_000);
    }
}
