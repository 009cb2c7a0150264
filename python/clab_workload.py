#!/usr/bin/env python
"""A user's own function measured under each concurrency model on the interpreter that runs
this file (`clab workload` runs it on every interpreter it finds). One source for Python 2.7
and every Python 3; each command prints one JSON object on stdout, and a failure is one line
on stderr with exit status 1.

  check TARGET [--arg A]...      import PATH.py:FUNCTION, call it once with the arguments,
                                 and say how long a call takes and what crossing to another
                                 process costs in pickled bytes (or why it cannot cross)
  measure TARGET [--arg A]... --workers N --calls K --repeats R --patience S
                                 K calls in a row, and K calls spread over N workers: threads,
                                 a process pool (also with one process) and, on 3.12+ with a
                                 GIL, subinterpreters (also with one); R interleaved repeats,
                                 so a slow spell of the machine weighs on every model alike.
                                 A pool whose call takes over S seconds is stopped and noted

An argument is a Python literal (`1048576`, `"text"`, `{"a": [1, 2]}`); anything that is not
one is passed as a string.
"""

from __future__ import print_function

import argparse
import ast
import functools
import os
import pickle
import sys
import threading

from clab_bench import clock, cpu_time, gil_kind, run_command, subinterpreters, together

if sys.version_info[0] < 3:
    range = xrange  # noqa: F821 -- Python 2's lazy range

def fail(message):
    """Ends the program with one line on stderr and exit status 1."""
    raise SystemExit("clab_workload: " + message)


def load(target):
    """PATH.py:FUNCTION -> the function, imported as a module of its own directory's, so a
    process pool's workers can import it by name too."""
    path, _, name = target.rpartition(":")
    if not path or not name:
        fail("%r is not PATH.py:FUNCTION" % target)
    directory, filename = os.path.split(os.path.abspath(path))
    module_name, extension = os.path.splitext(filename)
    if extension != ".py" or not os.path.isfile(path):
        fail("%s is not a Python file" % path)
    sys.path.insert(0, directory)
    try:
        module = __import__(module_name)
    except Exception as error:
        fail("cannot import %s: %s" % (path, describe(error)))
    function = getattr(module, name, None)
    if not callable(function):
        fail("%s has no function %s" % (path, name))
    return function


def describe(error):
    text = str(error).splitlines()
    if isinstance(error, RuntimeError) and text:
        return text[0]
    return "%s: %s" % (type(error).__name__, text[0]) if text else type(error).__name__


def literal(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def pickled_size(value):
    try:
        return len(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)), None
    except Exception as error:
        return None, describe(error)


def check(args):
    function, arguments = load(args.target), [literal(a) for a in args.arg]
    walls = []
    result = None
    for _ in range(3):
        started = clock()
        try:
            result = function(*arguments)
        except Exception as error:
            fail("%s raised %s" % (args.target, describe(error)))
        walls.append(clock() - started)
    function_error = pickled_size(function)[1]
    args_bytes, args_error = pickled_size(tuple(arguments))
    result_bytes, result_error = pickled_size(result)
    cannot = function_error or args_error or result_error
    what = "the function" if function_error else "its arguments" if args_error else "its result"
    return {"version": "%d.%d.%d" % sys.version_info[:3], "gil": gil_kind(),
            "seconds": sorted(walls)[1],
            "result": repr(result)[:80],
            "args_bytes": args_bytes, "result_bytes": result_bytes,
            "pickle_error": "%s cannot be pickled (%s)" % (what, cannot) if cannot else None}


def in_a_row(function, arguments, calls):
    for _ in range(calls):
        function(*arguments)


class Threads(object):
    def __init__(self, function, arguments, workers):
        self.job = functools.partial(in_a_row, function, arguments)
        self.workers = workers

    def time(self, calls):
        return together([functools.partial(self.job, calls // self.workers)] * self.workers)

    def close(self):
        pass


class Processes(object):
    """A process pool as a program uses one: concurrent.futures on Python 3,
    multiprocessing.Pool on 2.7. Started, its workers spawned and the module imported in
    each, before anything is timed."""

    def __init__(self, function, arguments, workers, patience):
        self.function, self.arguments, self.patience = function, arguments, patience
        if sys.version_info[0] >= 3:
            import concurrent.futures
            self.executor = concurrent.futures.ProcessPoolExecutor(workers)
        else:
            import multiprocessing
            self.executor = multiprocessing.Pool(workers)
        try:
            self.time(workers)
        except Exception:
            self.close()
            raise

    def time(self, calls):
        started = clock()
        if sys.version_info[0] >= 3:
            pending = [self.executor.submit(self.function, *self.arguments) for _ in range(calls)]
            wait = lambda future: future.result(self.patience)  # noqa: E731
        else:
            pending = [self.executor.apply_async(self.function, self.arguments) for _ in range(calls)]
            wait = lambda result: result.get(self.patience)  # noqa: E731
        for job in pending:
            try:
                wait(job)
            except Exception as error:
                if "Timeout" in type(error).__name__:
                    raise RuntimeError("a call did not return within %g s" % self.patience)
                raise
        return clock() - started

    def close(self):
        if sys.version_info[0] >= 3:
            # Workers stuck in a call that never returns are stopped, not waited for.
            for process in list(getattr(self.executor, "_processes", {}).values()):
                process.terminate()
            self.executor.shutdown(wait=True)
        else:
            self.executor.terminate()
            self.executor.join()


class Subinterpreters(object):
    """One subinterpreter per worker thread, each with a GIL of its own (3.12+). What
    crosses is copied, as between processes: the arguments go in pickled within each call's
    source, the result comes back pickled through a pipe that a thread of the worker drains
    (a result larger than a pipe holds would otherwise block the call writing it)."""

    def __init__(self, function, arguments, workers, target):
        self.module = subinterpreters()
        path, _, name = target.rpartition(":")
        directory, filename = os.path.split(os.path.abspath(path))
        self.setup = ("import os, pickle, struct, sys\nsys.path.insert(0, %r)\nfrom %s import %s as call\n"
                      % (directory, os.path.splitext(filename)[0], name))
        self.payload = pickle.dumps(tuple(arguments), pickle.HIGHEST_PROTOCOL)
        self.workers = [self.start() for _ in range(workers)]

    def run(self, interpreter, source):
        failed = self.module.run_string(interpreter, source)  # 3.13 returns what 3.12 raises
        if failed is not None:
            raise RuntimeError(failed.formatted)

    def start(self):
        interpreter = self.module.create()
        read, write = os.pipe()
        results = []

        def drain():
            buffer = b""
            while True:
                data = os.read(read, 1 << 20)
                if not data:
                    return
                buffer += data
                while len(buffer) >= 8:
                    size = int(buffer[:8].decode(), 16)
                    if len(buffer) < 8 + size:
                        break
                    results.append(pickle.loads(buffer[8:8 + size]))
                    buffer = buffer[8 + size:]

        reader = threading.Thread(target=drain)
        reader.daemon = True
        reader.start()
        self.run(interpreter, self.setup)
        source = ("result = pickle.dumps(call(*pickle.loads(%r)), pickle.HIGHEST_PROTOCOL)\n"
                  "os.write(%d, ('%%08x' %% len(result)).encode() + result)\n" % (self.payload, write))
        return {"interpreter": interpreter, "source": source, "write": write, "reader": reader,
                "results": results}

    def calls(self, worker, count):
        for _ in range(count):
            self.run(worker["interpreter"], worker["source"])

    def time(self, calls):
        each = calls // len(self.workers)
        return together([functools.partial(self.calls, worker, each) for worker in self.workers])

    def close(self):
        for worker in self.workers:
            self.module.destroy(worker["interpreter"])
            os.close(worker["write"])
            worker["reader"].join(5)


def models(args, function, arguments):
    """Each model's pool by name, in the order they are timed, and the one-line reason for
    each that cannot run here. The process pools come first: forking a process that has
    subinterpreters crashes CPython 3.13."""
    workers = args.workers
    made = [("serial", lambda: Threads(function, arguments, 1)),
            ("threads", lambda: Threads(function, arguments, workers)),
            ("processes-1", lambda: Processes(function, arguments, 1, args.patience)),
            ("processes", lambda: Processes(function, arguments, workers, args.patience))]
    if sys.version_info >= (3, 12) and gil_kind() == "new":
        made += [("interpreters-1", lambda: Subinterpreters(function, arguments, 1, args.target)),
                 ("interpreters", lambda: Subinterpreters(function, arguments, workers, args.target))]
    pools, errors = [], {}
    for name, make in made:
        try:
            pools.append((name, make()))
        except Exception as error:
            errors[name] = describe(error)
    return pools, errors


def measure(args):
    function, arguments = load(args.target), [literal(a) for a in args.arg]
    pools, errors = models(args, function, arguments)
    seconds = dict((name, []) for name, _ in pools)
    cpu_seconds = []
    try:
        for _ in range(args.repeats):
            for name, pool in pools:
                if name in errors:
                    continue
                cpu = cpu_time()
                try:
                    seconds[name].append(pool.time(args.calls))
                except Exception as error:
                    errors[name] = describe(error)
                if name == "serial":
                    # The process's CPU over the calls in a row (the pools are idle meanwhile):
                    # how much of a call computes rather than waits.
                    cpu_seconds.append(cpu_time() - cpu)
    finally:
        for _, pool in pools:
            pool.close()
    return {"workers": args.workers, "calls": args.calls, "serial_cpu_seconds": cpu_seconds,
            "seconds": dict((name, times) for name, times in seconds.items() if name not in errors),
            "errors": errors}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    for name, run in (("check", check), ("measure", measure)):
        command = commands.add_parser(name)
        command.add_argument("target", metavar="PATH.py:FUNCTION")
        command.add_argument("--arg", action="append", default=[])
        command.set_defaults(run=run)
        if name == "measure":
            command.add_argument("--workers", type=int, required=True)
            command.add_argument("--calls", type=int, required=True)
            command.add_argument("--repeats", type=int, default=3)
            command.add_argument("--patience", type=float, default=60.0)
    run_command(parser)


if __name__ == "__main__":
    main()
