#!/usr/bin/env python
"""CPython reference servers for the clab protocol (docs: the README's "The protocol").

The same service as `clab serve`, written the way the essays write it, so the lab can run
real CPython beside the Rust emulation and compare. One source runs unchanged on Python 2.7
and on every Python 3. One request path (`Service.answer`) serves every model; the models
differ only in scheduling:

  serial    one client at a time
  threads   a thread per connection
  procpool  a thread per connection; fib and spin computed by a process pool
  interpreters  a thread per connection; fib and spin computed in subinterpreters with a GIL
            each (Python 3.12+), one per pool thread
  hybrid    an event loop; fib n > --threshold (and spin) sent to a pool of --pool kind
            (asyncio on Python 3, a select() loop on Python 2)
  prefork   --workers forked children accepting on one socket, each serving serially
  asyncio   an asyncio loop computing inline (Python 3 only)

With --workload PATH.py:FUNCTION (and its --workload-arg literals), a `call` request calls
that function, as `clab workload` serves a user's function under each model.

Like `clab serve`, it prints "listening on HOST:PORT" once ready, and stops on SIGTERM.
Standard library only.
"""

from __future__ import print_function

import argparse
import json
import multiprocessing
import os
import select
import signal
import socket
import sys
import threading
import time

MAX_LINE = 4096
# Connections the kernel queues before accept, as `clab serve` asks: thousands may arrive at once.
BACKLOG = 4096
MAX_MILLIS = 60000
PY3 = sys.version_info[0] >= 3
clock = getattr(time, "monotonic", time.time)
STARTED = clock()
COUNTERS = {"requests": 0, "errors": 0}
# What a `call` request calls: (function, arguments), set by --workload before any pool starts,
# so forked workers have it too.
WORKLOAD = []


def fib(n):
    return 1 if n <= 2 else fib(n - 1) + fib(n - 2)


def spin(ms):
    """Busy CPU work for about `ms` milliseconds (a clock, unlike clab's calibrated units)."""
    deadline = clock() + ms / 1000.0
    while clock() < deadline:
        pass
    return "spun %d" % ms


def work(kind, argument):
    """The work of a computing request; a module-level function, so a process pool can run it."""
    if kind == "fib":
        return str(fib(argument))
    if kind == "spin":
        return spin(argument)
    if kind == "echo":
        return argument
    if kind == "call":
        function, arguments = WORKLOAD[0]
        function(*arguments)
        return "worked"
    raise AssertionError(kind)


def parse(line, max_n):
    """A request line -> (kind, argument), or raise ValueError with the ERR reason."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("request is not valid UTF-8")
    text = text.rstrip("\r")
    stripped = text.lstrip()
    if stripped[:4].lower() == "echo" and (len(stripped) == 4 or stripped[4] in " \t"):
        return "echo", stripped[5:]
    words = text.split()
    if not words:
        raise ValueError("empty request")
    command, rest = words[0].lower(), words[1:]

    def number(word, limit, message):
        if word.lstrip("+").isdigit() and int(word) <= limit:
            return int(word)
        raise ValueError(message)

    bad_n = "n must be an integer from 0 to %d" % max_n
    bad_ms = "ms must be an integer from 0 to %d" % MAX_MILLIS
    if command in ("fib", "spin", "sleep"):
        if len(rest) != 1:
            raise ValueError("usage: %s <%s>" % (command, "n" if command == "fib" else "ms"))
        if command == "fib":
            return "fib", number(rest[0], max_n, bad_n)
        return command, number(rest[0], MAX_MILLIS, bad_ms)
    if command == "stats":
        if rest:
            raise ValueError("usage: stats")
        return "stats", None
    if command == "call":
        if rest:
            raise ValueError("usage: call")
        if not WORKLOAD:
            raise ValueError("no workload: serve with --workload PATH.py:FUNCTION")
        return "call", None
    if not rest and command.lstrip("+-").isdigit():
        if command.startswith("-"):
            raise ValueError(bad_n)
        return "fib", number(command, max_n, bad_n)
    raise ValueError('unknown command "%s"' % words[0][:40])


class Pool(object):
    """A pool of threads or processes with one blocking call, `run`, and one with a
    callback, `start`: concurrent.futures on Python 3, multiprocessing on Python 2."""

    def __init__(self, kind, workers):
        self.kind = kind
        self.job = work
        if PY3:
            import concurrent.futures as futures
            if kind == "interpreters":
                # Each pool thread runs its jobs in a subinterpreter of its own.
                self.job = Subinterpreters().run
            executor = futures.ProcessPoolExecutor if kind == "processes" else futures.ThreadPoolExecutor
            self.executor = executor(workers)
        else:
            from multiprocessing.pool import ThreadPool
            self.executor = ThreadPool(workers) if kind == "threads" else multiprocessing.Pool(workers)
        # Started (and its workers spawned) before "listening on", so the first request
        # does not pay for it.
        for _ in range(workers):
            self.run("fib", 1)

    def run(self, kind, argument):
        if PY3:
            return self.executor.submit(self.job, kind, argument).result()
        return self.executor.apply_async(work, (kind, argument)).get(3600)

    def call(self, function):
        """`function()` run by a worker, for what only a worker can tell (its own CPU time)."""
        if PY3:
            return self.executor.submit(function).result()
        return self.executor.apply_async(function).get(3600)

    def start(self, kind, argument, done):
        """Runs the job and calls `done(reply)` on a pool-owned thread when it ends."""
        if PY3:
            future = self.executor.submit(self.job, kind, argument)
            future.add_done_callback(lambda f: done(f.result()))
        else:
            self.executor.apply_async(work, (kind, argument), callback=done)

    def shutdown(self, wait=False):
        """Stops the pool; `wait` for its workers to exit (a program about to end should:
        3.7 and 3.8's executor, shut down without waiting, can hang at exit)."""
        if PY3:
            self.executor.shutdown(wait=wait)
        else:
            self.executor.terminate()


class Subinterpreters(object):
    """The work run in subinterpreters with a GIL each (Python 3.12+, PEP 684), one per
    calling thread, made on its first job. Only copies cross between interpreters: the work's
    source and each job go in as text, and the reply comes back through a pipe. (3.14's
    InterpreterPoolExecutor does the same with its own machinery.)"""

    def __init__(self):
        import inspect
        from clab_bench import subinterpreters
        self.module = subinterpreters()
        self.setup = "import time\nclock = time.monotonic\nWORKLOAD = []\n" + "".join(
            inspect.getsource(function) for function in (fib, spin, work))
        if WORKLOAD:
            function, arguments = WORKLOAD[0]
            path = os.path.dirname(os.path.abspath(sys.modules[function.__module__].__file__))
            self.setup += "import sys\nsys.path.insert(0, %r)\nfrom %s import %s\nWORKLOAD.append((%s, %r))\n" % (
                path, function.__module__, function.__name__, function.__name__, tuple(arguments))
        self.local = threading.local()

    def run(self, kind, argument):
        local = self.local
        if not hasattr(local, "interpreter"):
            local.interpreter = self.module.create()
            local.read, local.write = os.pipe()
            self.module.run_string(local.interpreter, self.setup)
        self.module.run_string(local.interpreter, "import os\nos.write(%d, (work(%r, %r) + '\\n').encode())\n"
                               % (local.write, kind, argument))
        reply = b""
        while not reply.endswith(b"\n"):
            reply += os.read(local.read, 65536)
        return reply.decode("utf-8").rstrip("\n")


class Service(object):
    """The request path every model shares."""

    def __init__(self, model, max_n, pool=None, threshold=None):
        self.model, self.max_n, self.pool, self.threshold = model, max_n, pool, threshold

    def offloads(self, kind, argument):
        if self.pool is None or kind not in ("fib", "spin", "call"):
            return False
        return self.threshold is None or kind != "fib" or argument > self.threshold

    def compute(self, kind, argument):
        if kind == "stats":
            stats = {"model": self.model, "uptime_s": clock() - STARTED}
            stats.update(COUNTERS)
            return json.dumps(stats)
        return work(kind, argument)

    def respond(self, line):
        """A request line -> (kind, argument) to do, or the reply to send now."""
        COUNTERS["requests"] += 1
        try:
            return parse(line, self.max_n), None
        except ValueError as error:
            COUNTERS["errors"] += 1
            return None, "ERR %s" % error

    def answer(self, line):
        """Blocking: the reply line to `line`."""
        job, reply = self.respond(line)
        if reply is not None:
            return reply
        kind, argument = job
        if kind == "sleep":
            time.sleep(argument / 1000.0)
            return "slept %d" % argument
        if self.offloads(kind, argument):
            return self.pool.run(kind, argument)
        return self.compute(kind, argument)


def lines(connection):
    """Request lines from a blocking socket: newline-terminated, or a bare request when
    nothing more is pending (the essays' clients send b"30" and wait). `None` means the line
    was too long."""
    buffer = b""
    while True:
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if len(line) > MAX_LINE:
                yield None
                return
            yield line
        if len(buffer) > MAX_LINE:
            yield None
            return
        if buffer and not select.select([connection], [], [], 0)[0]:
            line, buffer = buffer, b""
            yield line
            continue
        data = connection.recv(65536)
        if not data:
            if buffer:
                yield buffer
            return
        buffer += data


def serve_connection(service, connection):
    try:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for line in lines(connection):
            if line is None:
                connection.sendall(b"ERR line too long\n")
                return
            connection.sendall(service.answer(line).encode("utf-8") + b"\n")
    except (IOError, OSError):
        pass
    finally:
        connection.close()


def announce(listener):
    host, port = listener.getsockname()[:2]
    print("listening on %s:%d" % ("[%s]" % host if ":" in host else host, port))
    sys.stdout.flush()


def serve_blocking(listener, spawn):
    while True:
        try:
            connection, _ = listener.accept()
        except (IOError, OSError):
            continue  # EINTR on Python 2, a client gone before accept
        spawn(connection)


def spawn_thread(service):
    def spawn(connection):
        thread = threading.Thread(target=serve_connection, args=(service, connection))
        thread.daemon = True
        thread.start()
    return spawn


class SelectLoop(object):
    """Python 2's event loop for the hybrid model: select() over non-blocking sockets, the
    pool's replies handed back through a pipe. (Python 3 uses asyncio: clab_aio.py.)"""

    def __init__(self, listener, service):
        self.listener, self.service = listener, service
        self.buffers, self.outputs = {}, {}
        self.finished, self.lock = [], threading.Lock()
        self.wake_read, self.wake_write = os.pipe()

    def run(self):
        self.listener.setblocking(False)
        announce(self.listener)
        while True:
            readers = [self.listener, self.wake_read] + list(self.buffers)
            writers = [c for c, out in self.outputs.items() if out]
            try:
                readable, writable, _ = select.select(readers, writers, [])
            except (IOError, OSError, select.error):
                continue  # EINTR
            for connection in writable:
                self.flush(connection)
            for source in readable:
                if source is self.listener:
                    self.accept()
                elif source == self.wake_read:
                    self.deliver()
                elif source in self.buffers:
                    self.receive(source)

    def accept(self):
        try:
            connection, _ = self.listener.accept()
        except (IOError, OSError):
            return
        connection.setblocking(False)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffers[connection], self.outputs[connection] = b"", b""

    def receive(self, connection):
        try:
            data = connection.recv(65536)
        except (IOError, OSError):
            data = b""
        if not data:
            return self.close(connection)
        buffer = self.buffers[connection] + data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            self.handle(connection, line)
        if buffer and not select.select([connection], [], [], 0)[0]:
            self.handle(connection, buffer)
            buffer = b""
        if len(buffer) > MAX_LINE:
            self.reply(connection, "ERR line too long")
            buffer = b""
        self.buffers[connection] = buffer

    def handle(self, connection, line):
        job, reply = self.service.respond(line)
        if reply is None:
            kind, argument = job
            if kind == "sleep":
                threading.Timer(argument / 1000.0, self.finish, (connection, "slept %d" % argument)).start()
                return
            if self.service.offloads(kind, argument):
                self.service.pool.start(kind, argument, lambda reply: self.finish(connection, reply))
                return
            reply = self.service.compute(kind, argument)
        self.reply(connection, reply)

    def finish(self, connection, reply):
        """From a pool or timer thread: queue the reply and wake the loop."""
        with self.lock:
            self.finished.append((connection, reply))
        os.write(self.wake_write, b"x")

    def deliver(self):
        os.read(self.wake_read, 4096)
        with self.lock:
            finished, self.finished = self.finished, []
        for connection, reply in finished:
            if connection in self.outputs:
                self.reply(connection, reply)

    def reply(self, connection, text):
        self.outputs[connection] += text.encode("utf-8") + b"\n"
        self.flush(connection)

    def flush(self, connection):
        try:
            sent = connection.send(self.outputs[connection])
        except (IOError, OSError) as error:
            if getattr(error, "errno", None) in (11, 35):  # EAGAIN, EWOULDBLOCK
                return
            return self.close(connection)
        self.outputs[connection] = self.outputs[connection][sent:]

    def close(self, connection):
        self.buffers.pop(connection, None)
        self.outputs.pop(connection, None)
        connection.close()


def prefork(listener, service, workers):
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
            serve_blocking(listener, lambda c: serve_connection(service, c))
        children.append(pid)
    announce(listener)

    def stop(*_):
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except OSError:
                pass
        for child in children:
            os.waitpid(child, 0)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        signal.pause()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["serial", "threads", "procpool", "hybrid", "prefork", "asyncio",
                                            "interpreters"], default="threads")
    parser.add_argument("--addr", default="127.0.0.1:25000", help="HOST:PORT; port 0 picks a free one")
    parser.add_argument("--workers", type=int, default=multiprocessing.cpu_count() or 2)
    parser.add_argument("--threshold", type=int, default=15, help="hybrid: offload fib n above this")
    parser.add_argument("--pool", choices=["threads", "processes", "interpreters"], default="processes",
                        help="hybrid: where offloaded requests run")
    parser.add_argument("--switch-interval", type=float, metavar="SECONDS",
                        help="sys.setswitchinterval (Python 3.2+); Python 2 has none")
    parser.add_argument("--max-n", type=int, default=45)
    parser.add_argument("--workload", metavar="PATH.py:FUNCTION", help="what a `call` request calls")
    parser.add_argument("--workload-arg", action="append", default=[], metavar="LITERAL",
                        help="an argument of each call (repeatable): a Python literal, or else a string")
    args = parser.parse_args()
    if args.workload:
        from clab_workload import literal, load
        WORKLOAD.append((load(args.workload), [literal(a) for a in args.workload_arg]))

    if args.switch_interval is not None:
        if not hasattr(sys, "setswitchinterval"):
            parser.error("--switch-interval needs Python 3.2+ (Python 2 switches every N ticks)")
        sys.setswitchinterval(args.switch_interval)
    if args.model == "asyncio" and not PY3:
        parser.error("the asyncio model needs Python 3")
    if "interpreters" in (args.model, args.pool) and sys.version_info < (3, 12):
        parser.error("subinterpreters with a GIL each need Python 3.12+")

    host, port = args.addr.rsplit(":", 1)
    host = host.strip("[]")
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(BACKLOG)

    if args.model == "prefork":
        prefork(listener, Service("prefork", args.max_n), args.workers)
        return
    pool = None
    if args.model == "procpool":
        pool = Pool("processes", args.workers)
    elif args.model == "interpreters":
        pool = Pool("interpreters", args.workers)
    elif args.model == "hybrid":
        pool = Pool(args.pool, args.workers)
    threshold = args.threshold if args.model == "hybrid" else None
    service = Service(args.model, args.max_n, pool, threshold)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if args.model in ("asyncio", "hybrid") and PY3:
            import clab_aio
            clab_aio.serve(listener, service, work, announce, MAX_LINE, BACKLOG)
        elif args.model == "hybrid":
            SelectLoop(listener, service).run()
        else:
            announce(listener)
            spawn = spawn_thread(service) if args.model != "serial" else (lambda c: serve_connection(service, c))
            serve_blocking(listener, spawn)
    finally:
        if pool is not None:
            pool.shutdown()


if __name__ == "__main__":
    main()
