#!/usr/bin/env python3
"""CPython reference servers for the clab protocol (shared/DESIGN.md §2).

The same service as `clab serve`, written the way the essays write it, so the lab can run
real CPython beside the Rust emulation and compare. One request path (`respond`) serves
every model; the models differ only in scheduling:

  serial    one client at a time
  threads   a thread per connection
  procpool  a thread per connection; fib and spin computed by a ProcessPoolExecutor
  hybrid    an asyncio loop; fib n > --threshold (and spin) sent to a ProcessPoolExecutor
  prefork   --workers forked children accepting on one socket, each serving serially
  asyncio   an asyncio loop computing inline

Like `clab serve`, it prints "listening on HOST:PORT" once ready, and stops on SIGTERM.
Standard library only.
"""

import argparse
import asyncio
import concurrent.futures
import json
import os
import select
import signal
import socket
import sys
import threading
import time

MAX_LINE = 4096
MAX_MILLIS = 60_000
STARTED = time.monotonic()
COUNTERS = {"requests": 0, "errors": 0}


def fib(n):
    return 1 if n <= 2 else fib(n - 1) + fib(n - 2)


def spin(ms):
    """Busy CPU work for about `ms` milliseconds (a clock, unlike clab's calibrated units)."""
    deadline = time.perf_counter() + ms / 1000
    while time.perf_counter() < deadline:
        pass
    return f"spun {ms}"


def work(kind, argument):
    """The work of a computing request; a module-level function, so a process pool can run it."""
    if kind == "fib":
        return str(fib(argument))
    if kind == "spin":
        return spin(argument)
    if kind == "echo":
        return argument
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

    bad_n = f"n must be an integer from 0 to {max_n}"
    bad_ms = f"ms must be an integer from 0 to {MAX_MILLIS}"
    if command in ("fib", "spin", "sleep"):
        if len(rest) != 1:
            raise ValueError(f"usage: {command} <{'n' if command == 'fib' else 'ms'}>")
        if command == "fib":
            return "fib", number(rest[0], max_n, bad_n)
        return command, number(rest[0], MAX_MILLIS, bad_ms)
    if command == "stats":
        if rest:
            raise ValueError("usage: stats")
        return "stats", None
    if not rest and command.lstrip("+-").isdigit():
        if command.startswith("-"):
            raise ValueError(bad_n)
        return "fib", number(command, max_n, bad_n)
    raise ValueError(f'unknown command "{words[0][:40]}"')


class Service:
    """The request path every model shares."""

    def __init__(self, model, max_n, pool=None, threshold=None):
        self.model, self.max_n, self.pool, self.threshold = model, max_n, pool, threshold

    def offloads(self, kind, argument):
        if self.pool is None or kind not in ("fib", "spin"):
            return False
        return self.threshold is None or kind == "spin" or argument > self.threshold

    def compute(self, kind, argument):
        if kind == "stats":
            return json.dumps({"model": self.model, "uptime_s": time.monotonic() - STARTED, **COUNTERS})
        return work(kind, argument)

    def respond(self, line):
        """A request line -> (kind, argument) to do, or the reply to send now."""
        COUNTERS["requests"] += 1
        try:
            return parse(line, self.max_n), None
        except ValueError as error:
            COUNTERS["errors"] += 1
            return None, f"ERR {error}"

    def answer(self, line):
        """Blocking: the reply line to `line`."""
        job, reply = self.respond(line)
        if reply is not None:
            return reply
        kind, argument = job
        if kind == "sleep":
            time.sleep(argument / 1000)
            return f"slept {argument}"
        if self.offloads(kind, argument):
            return self.pool.submit(work, kind, argument).result()
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
    with connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for line in lines(connection):
                if line is None:
                    connection.sendall(b"ERR line too long\n")
                    return
                connection.sendall(service.answer(line).encode() + b"\n")
        except OSError:
            pass


def serve_blocking(listener, service, spawn):
    while True:
        connection, _ = listener.accept()
        spawn(connection)


async def serve_async(listener, service, executor_for):
    loop = asyncio.get_running_loop()

    async def handle(reader, writer):
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        try:
            while True:
                if b"\n" not in buffer:
                    if len(buffer) > MAX_LINE:
                        writer.write(b"ERR line too long\n")
                        break
                    chunk = await reader.read(65536)
                    if not chunk:
                        if not buffer:
                            break
                        buffer += b"\n"
                    elif b"\n" not in buffer + chunk and not reader._buffer:
                        buffer += chunk + b"\n"  # a bare request with nothing pending
                    else:
                        buffer += chunk
                    continue
                line, buffer = buffer.split(b"\n", 1)
                job, reply = service.respond(line)
                if reply is None:
                    kind, argument = job
                    if kind == "sleep":
                        await asyncio.sleep(argument / 1000)
                        reply = f"slept {argument}"
                    elif service.offloads(kind, argument):
                        reply = await loop.run_in_executor(executor_for(), work, kind, argument)
                    else:
                        reply = service.compute(kind, argument)
                writer.write(reply.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, sock=listener)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        print(f"listening on {listener.getsockname()[0]}:{listener.getsockname()[1]}", flush=True)
        await stop.wait()


def prefork(listener, service, workers):
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
            serve_blocking(listener, service, lambda c: serve_connection(service, c))
        children.append(pid)
    print(f"listening on {listener.getsockname()[0]}:{listener.getsockname()[1]}", flush=True)

    def stop(*_):
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
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
    parser.add_argument("--model", choices=["serial", "threads", "procpool", "hybrid", "prefork", "asyncio"], default="threads")
    parser.add_argument("--addr", default="127.0.0.1:25000", help="HOST:PORT; port 0 picks a free one")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threshold", type=int, default=15, help="hybrid: offload fib n above this")
    parser.add_argument("--max-n", type=int, default=45)
    args = parser.parse_args()

    host, port = args.addr.rsplit(":", 1)
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host.strip("[]"), int(port)))
    listener.listen(4096)

    if args.model == "prefork":
        prefork(listener, Service("prefork", args.max_n), args.workers)
        return
    pool = None
    if args.model in ("procpool", "hybrid"):
        # Started (and its workers spawned) before "listening on", so the first request
        # does not pay for it.
        pool = concurrent.futures.ProcessPoolExecutor(args.workers)
        list(pool.map(fib, [1] * args.workers))
    threshold = args.threshold if args.model == "hybrid" else None
    service = Service(args.model, args.max_n, pool, threshold)
    if args.model in ("asyncio", "hybrid"):
        asyncio.run(serve_async(listener, service, lambda: pool))
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        print(f"listening on {host}:{listener.getsockname()[1]}", flush=True)
        if args.model == "serial":
            spawn = lambda connection: serve_connection(service, connection)
        else:
            spawn = lambda connection: threading.Thread(target=serve_connection, args=(service, connection), daemon=True).start()
        try:
            serve_blocking(listener, service, spawn)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    if pool is not None:
        pool.shutdown(cancel_futures=True)


if __name__ == "__main__":
    main()
