#!/usr/bin/env python
"""In-process reference programs for the lab: what CPython's GIL does to threads in one
interpreter, measured on the interpreter that runs this file. One source for Python 2.7 and
every Python 3; each command prints one JSON object on stdout.

  probe                          version and GIL kind (legacy 2.x, new 3.2+, free-threaded)
  tick                           the time of one countdown-loop iteration and of one fib call,
                                 how often the eval loop checks its breaker in each, and the
                                 tick: the time between two checks in the countdown loop
  countdown --n N --mode M       two countdown(N) loops: serial, threads, processes, or
                                 interpreters (3.12+: a subinterpreter each, with its own GIL)
  race --each N                  two threads doing counter[0] += 1, N times each
  shared --op OP --each N --repeats R
                                 two threads doing OP N times each (an attribute incremented,
                                 a list appended to, a function called) on objects of their
                                 own and on one shared object, each beside one thread doing
                                 both threads' work in a row on the same kind of objects; R
                                 interleaved repeats of the four
  hop --to POOL --jobs N --repeats R [--gap S]
                                 the CPU time per tiny job handed to a pool of processes,
                                 threads or subinterpreters (3.12+) and awaited, as the
                                 reference server does it, each followed by a pause of S
                                 seconds: in all (a worker process's too) and on the
                                 submitting thread; R repeats of N jobs
  long --ms MS                   one C-level call of about MS ms (sum over a range) beside a
                                 10 ms ticker thread, with a signal due a quarter of the way in
"""

from __future__ import print_function

import argparse
import functools
import json
import multiprocessing
import os
import signal
import sys
import threading
import time

try:
    import queue
except ImportError:  # Python 2
    import Queue as queue

clock = getattr(time, "perf_counter", time.time)
if sys.version_info[0] < 3:
    range = xrange  # noqa: F821 -- Python 2's lazy range


def gil_kind():
    if sys.version_info[0] < 3:
        return "legacy"
    enabled = getattr(sys, "_is_gil_enabled", None)
    if enabled is not None and not enabled():
        return "free-threaded"
    return "new"


def countdown(n):
    while n > 0:
        n -= 1


def fib(n):
    return 1 if n <= 2 else fib(n - 1) + fib(n - 2)


def timings(times, function, *args):
    """Seconds of each of `times` calls."""
    took = []
    for _ in range(times):
        started = clock()
        function(*args)
        took.append(clock() - started)
    return took


def best_of(times, function, *args):
    return min(timings(times, function, *args))


def checks_per_iteration():
    """How often the eval loop looks at its breaker in one `while n > 0: n -= 1` iteration.
    2.x ticks at the subtraction and the backward jump (the loads, the compare and the
    conditional jump take the fast path); 3.0-3.9 likewise check at the opcodes that go
    through DISPATCH (the subtraction and JUMP_ABSOLUTE); 3.10+ only at the backward jump."""
    return 1 if sys.version_info >= (3, 10) else 2


def fib_checks_per_call():
    """How often the eval loop looks at its breaker per call of `fib`, on average. 2.x ticks
    at a new frame's first opcode and after every opcode that ends with `continue`: a call
    that recurses ticks eight times (its start, then after LOAD_GLOBAL, BINARY_SUBTRACT and
    CALL_FUNCTION twice, and BINARY_ADD), one that returns 1 once (the loads, the compare and
    its predicted jump take the fast path); fib(n) makes fib(n) of the second kind and one
    fewer of the first, so 4.5 a call. 3.0-3.9 check at the same opcodes; 3.10+ once, at the
    function's start."""
    return 1.0 if sys.version_info >= (3, 10) else 4.5


def operation_checks(op):
    """How often the eval loop looks at its breaker in one iteration of a shared-objects loop.
    2.x ticks at every opcode that ends with `continue` (and at a new frame's first), not at
    those that take the fast path (loads, stores, DUP_TOP, ROT_TWO, POP_TOP) or that FOR_ITER
    predicts (STORE_FAST): `box.v += 1` at LOAD_ATTR, INPLACE_ADD, STORE_ATTR and the
    backward jump; `items.append(i)` at LOAD_ATTR, the call and the backward jump; `f()` in
    the callee's frame, after the call and at the backward jump. From 3.2 a drop request
    comes by time, and the count only sets how soon it is seen: one, the backward jump."""
    if sys.version_info[0] >= 3:
        return 1
    return {"attribute": 4, "append": 3, "call": 3}[op]


def operation_iteration_ns(op, iterations):
    """The best of five timings of one shared-objects loop alone, ns per iteration; each
    object is freed after its timing, as the bench frees it."""
    loop, new = OPERATIONS[op]
    took = []
    for _ in range(5):
        made = new()
        started = clock()
        loop(made, iterations)
        took.append(clock() - started)
        del made
    return min(took) / iterations * 1e9


def probe(_):
    return {"version": "%d.%d.%d" % sys.version_info[:3], "gil": gil_kind(),
            "implementation": getattr(sys, "implementation", None) and sys.implementation.name or "cpython"}


def tick(_):
    """The best of five timings is the calibration (the one least disturbed on a shared
    machine); all five are reported, so their spread can be shown beside it."""
    iterations = 1000000
    repeats = [took / iterations * 1e9 for took in timings(5, countdown, iterations)]
    iteration_s = min(repeats) / 1e9
    calls = 2 * fib(20) - 1
    fib_call_s = best_of(5, fib, 20) / calls
    checks = checks_per_iteration()
    operations = dict((op, {"iteration_ns": operation_iteration_ns(op, 200000),
                            "checks": operation_checks(op)}) for op in sorted(OPERATIONS))
    return {"iteration_ns": iteration_s * 1e9, "iteration_ns_repeats": repeats,
            "checks_per_iteration": checks, "fib_checks_per_call": fib_checks_per_call(),
            "tick_ns": iteration_s * 1e9 / checks, "fib_call_ns": fib_call_s * 1e9,
            "operations": operations}


def libc_affinity(call, cpus=()):
    """2.x's way to the calling thread's CPU set (it has no `os.sched_*affinity`): libc's
    `call` ("sched_getaffinity" or "sched_setaffinity") on a mask of `cpus`; the CPUs in the
    mask afterwards."""
    import ctypes
    mask = (ctypes.c_ulong * 16)()
    bits = ctypes.sizeof(ctypes.c_ulong) * 8
    for cpu in cpus:
        mask[cpu // bits] |= 1 << (cpu % bits)
    if getattr(ctypes.CDLL(None, use_errno=True), call)(0, ctypes.sizeof(mask), mask) != 0:
        raise OSError(ctypes.get_errno(), call)
    return [cpu for cpu in range(len(mask) * bits) if mask[cpu // bits] >> (cpu % bits) & 1]


def allowed_cpus():
    """The CPUs this process may run on, in order."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return libc_affinity("sched_getaffinity")


def pin_to(cpu):
    """Keeps the calling thread (a process's only one, for a process) on `cpu`."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, [cpu])  # 0: the calling thread, on Linux
    else:
        libc_affinity("sched_setaffinity", [cpu])


def counted(count, cpu, ready, go, done):
    """A worker's countdown: move to its CPU, say it is ready, wait for the start, count
    down, say when."""
    pin_to(cpu)
    ready.set()
    go.wait()
    count()
    done.put(clock())


def subinterpreters():
    """The module that runs code in a subinterpreter with a GIL of its own: `_interpreters`
    from 3.13 (under `concurrent.interpreters` from 3.14), `_xxsubinterpreters` on 3.12;
    None before."""
    for name in ("_interpreters", "_xxsubinterpreters"):
        try:
            return __import__(name)
        except ImportError:
            pass
    return None


def in_subinterpreter(module, n):
    """A countdown(n) to run in a fresh subinterpreter: the function's source goes over as
    text, as everything that crosses between interpreters is copied. (A function, as in the
    main interpreter: a loop at module level would count down a global, twice as slowly.)"""
    interpreter = module.create()
    source = "def countdown(n):\n    while n > 0:\n        n -= 1\ncountdown(%d)\n" % n
    return interpreter, lambda: module.run_string(interpreter, source)


def run_countdown(args):
    """Times the two countdowns from the moment both workers run to the moment the last one
    finishes its count, so neither starting nor ending a process is counted: the question
    is whether the two use two cores."""
    n = args.n
    if args.mode == "serial":
        started = clock()
        countdown(n)
        countdown(n)
        return {"seconds": clock() - started}
    interpreters = []
    if args.mode == "threads":
        kind, event, done = threading.Thread, threading.Event, queue.Queue()
        counts = [functools.partial(countdown, n)] * 2
    elif args.mode == "interpreters":
        # 3.11 has `_xxsubinterpreters` too, but its subinterpreters share one GIL.
        module = subinterpreters() if sys.version_info >= (3, 12) else None
        if module is None:
            raise SystemExit("no subinterpreters with a GIL of their own before Python 3.12")
        kind, event, done = threading.Thread, threading.Event, queue.Queue()
        interpreters, counts = zip(*[in_subinterpreter(module, n) for _ in range(2)])
    else:
        kind, event, done = multiprocessing.Process, multiprocessing.Event, multiprocessing.Queue()
        counts = [functools.partial(countdown, n)] * 2
    seconds = together(counts, kind, event, done)
    for interpreter in interpreters:
        module.destroy(interpreter)
    return {"seconds": seconds}


class Box(object):
    def __init__(self):
        self.v = 0


def function():
    pass


def increment(box, n):
    for _ in range(n):
        box.v += 1


def append(items, n):
    for i in range(n):
        items.append(i)


def call(f, n):
    for _ in range(n):
        f()


# Each operation: the loop, and a fresh object to run it on. A function's copy shares only its
# code object; the one shared is the module-level function itself.
OPERATIONS = {
    "attribute": (increment, Box),
    "append": (append, list),
    "call": (call, lambda: type(function)(function.__code__, globals(), "copy")),
}


def together(jobs, kind=threading.Thread, event=threading.Event, done=None):
    """Runs each job on a worker of `kind` (a thread, or a process with the events and queue
    of processes), each worker on a CPU of its own among this process's, in turn; seconds
    from the moment every worker is ready to the moment the last one finishes its job, so
    neither starting nor ending a worker is counted. Left to the scheduler, two threads that
    take turns at a GIL may share one CPU for a while: 2.7's pair of loops took 1.0x the
    serial time on one CPU and 1.3x on two, and the median of five repeats drifted between."""
    done = queue.Queue() if done is None else done
    go = event()
    readies = [event() for _ in jobs]
    cpus = allowed_cpus()
    workers = [kind(target=counted, args=(job, cpus[index % len(cpus)], ready, go, done))
               for index, (job, ready) in enumerate(zip(jobs, readies))]
    for worker in workers:
        worker.start()
    for ready in readies:
        ready.wait()
    started = clock()
    go.set()
    # The clock is system-wide (perf_counter is CLOCK_MONOTONIC; 2.x uses the wall clock).
    finished = max(done.get() for _ in workers)
    for worker in workers:
        worker.join()
    return finished - started


def shared(args):
    """Two threads at once over one thread doing both loops in a row, on objects of their own
    and on one shared object: each repeat times the four back to back, so a slow spell weighs
    on all of them. Each side runs the same objects' loops: 3.13 specialises a call to a
    module-level function but not to a copy made by FunctionType (35.7 against 42.9 ns an
    iteration), so threads calling the one function measured against a thread calling copies
    read 0.83x with a GIL that lets one run at a time."""
    loop, new = OPERATIONS[args.op]
    n = args.each
    shared_object = (lambda: function) if args.op == "call" else new
    times = {"own_in_a_row": [], "own_at_once": [], "shared_in_a_row": [], "shared_at_once": []}
    for _ in range(args.repeats):
        # Every object outlives its timing and is freed before the next: what is timed is the
        # loop, never the freeing of what it made (a list's items are objects of their own).
        made = [new(), new()]
        started = clock()
        loop(made[0], n)
        loop(made[1], n)
        times["own_in_a_row"].append(clock() - started)
        del made[:]

        def own():
            # Made by the thread that uses it: it owns it, and its allocator puts it apart
            # from the other's (two objects made one after the other may share a cache line).
            mine = new()
            loop(mine, n)
            made.append(mine)

        times["own_at_once"].append(together([own] * 2))
        del made[:]
        one = shared_object()
        started = clock()
        loop(one, n)
        loop(one, n)
        times["shared_in_a_row"].append(clock() - started)
        del one
        one = shared_object()
        times["shared_at_once"].append(together([functools.partial(loop, one, n)] * 2))
        del one
    return times


def cpu_time(thread=False):
    """CPU time so far, user and system: every thread's of this process, or the calling
    thread's (`resource` has both to the microsecond; 2.7 lacks the name RUSAGE_THREAD, not
    the call)."""
    import resource
    who = getattr(resource, "RUSAGE_THREAD", 1) if thread else resource.RUSAGE_SELF
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def hop(args):
    """The CPU a tiny job handed to a pool and its reply cost, as the reference server hands
    them (submitting, pickling, the executor's own threads, entering a subinterpreter, and a
    process pool's worker's own Python), in all and on the submitting thread alone. Each job
    is followed by a pause of `args.gap` seconds, as a server's next request follows its
    reply a network round trip later: in the pause every thread of the executor falls asleep,
    and the next job wakes each one again, which back-to-back jobs would not. What the pauses
    alone cost is measured in the same repeat and taken off."""
    from clab_server import Pool
    pool = Pool(args.to, 1)
    worker = (lambda: pool.call(cpu_time)) if args.to == "processes" else (lambda: 0.0)
    times = {"cpu_s": [], "submitter_s": []}
    for _ in range(args.repeats):
        process, thread = cpu_time(), cpu_time(thread=True)
        for _ in range(args.jobs):
            time.sleep(args.gap)
        pauses, pauses_here = cpu_time() - process, cpu_time(thread=True) - thread
        process, thread, worker_before = cpu_time(), cpu_time(thread=True), worker()
        for _ in range(args.jobs):
            pool.run("fib", 1)
            time.sleep(args.gap)
        workers = worker() - worker_before
        times["submitter_s"].append((cpu_time(thread=True) - thread - pauses_here) / args.jobs)
        times["cpu_s"].append((cpu_time() - process - pauses + workers) / args.jobs)
    pool.shutdown(wait=True)
    return times


def race(args):
    counter = [0]

    def work():
        for _ in range(args.each):
            counter[0] += 1

    # Both start together: one must not finish before the other begins.
    together([work, work])
    expected = 2 * args.each
    return {"total": counter[0], "expected": expected, "lost": expected - counter[0]}


def long_instruction(args):
    # Size the C-level call: sum() over a range never returns to the eval loop.
    probe_n = 1000000
    per_item = best_of(3, sum, range(probe_n)) / probe_n
    n = int(args.ms / 1000.0 / per_item)
    ticks = []
    stop = []

    def ticker():
        while not stop:
            time.sleep(0.01)
            ticks.append(clock())

    handled = []
    signal.signal(signal.SIGALRM, lambda *_: handled.append(clock()))
    thread = threading.Thread(target=ticker)
    thread.daemon = True
    thread.start()
    time.sleep(0.1)
    started = clock()
    # The kernel delivers the signal a quarter of the way in; CPython runs the handler only
    # when the main thread next reaches the eval loop.
    signal.setitimer(signal.ITIMER_REAL, args.ms / 4000.0)
    due = started + args.ms / 4000.0
    sum(range(n))
    ended = clock()
    time.sleep(0.1)
    stop.append(True)
    thread.join()
    gaps = [b - a for a, b in zip(ticks, ticks[1:]) if b > started - 0.02]
    return {"section_ms": (ended - started) * 1e3,
            "longest_gap_ms": max(gaps) * 1e3 if gaps else None,
            "signal_delay_ms": (handled[0] - due) * 1e3 if handled else None}


def run_command(parser):
    """Runs the command the arguments name and prints its result as one JSON object."""
    args = parser.parse_args()
    if getattr(args, "run", None) is None:
        parser.error("a command is needed")
    print(json.dumps(args.run(args)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("probe").set_defaults(run=probe)
    commands.add_parser("tick").set_defaults(run=tick)
    command = commands.add_parser("countdown")
    command.add_argument("--n", type=int, required=True)
    command.add_argument("--mode", choices=["serial", "threads", "processes", "interpreters"],
                         required=True)
    command.set_defaults(run=run_countdown)
    command = commands.add_parser("race")
    command.add_argument("--each", type=int, required=True)
    command.set_defaults(run=race)
    command = commands.add_parser("shared")
    command.add_argument("--op", choices=sorted(OPERATIONS), required=True)
    command.add_argument("--each", type=int, required=True)
    command.add_argument("--repeats", type=int, default=3)
    command.set_defaults(run=shared)
    command = commands.add_parser("hop")
    command.add_argument("--to", choices=["processes", "threads", "interpreters"], required=True)
    command.add_argument("--jobs", type=int, default=1000)
    command.add_argument("--repeats", type=int, default=5)
    command.add_argument("--gap", type=float, default=0.0001, help="seconds after each job")
    command.set_defaults(run=hop)
    command = commands.add_parser("long")
    command.add_argument("--ms", type=float, required=True)
    command.set_defaults(run=long_instruction)
    run_command(parser)


if __name__ == "__main__":
    main()
