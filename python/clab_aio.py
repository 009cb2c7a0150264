"""The asyncio side of clab_server.py (Python 3 only: `async def` does not parse on 2.7).

One event loop serves every connection; offloaded requests go to the service's pool through
`run_in_executor`, as an asyncio program hands blocking work to a ThreadPoolExecutor or a
ProcessPoolExecutor. Runs on Python 3.6 and later (no asyncio.run, no `async with` server).
"""

import asyncio
import signal
import socket


def serve(listener, service, work, announce, max_line, backlog):
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve(loop, listener, service, work, announce, max_line, backlog))
    finally:
        loop.close()


async def _serve(loop, listener, service, work, announce, max_line, backlog):
    executor = service.pool.executor if service.pool is not None else None

    async def handle(reader, writer):
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        try:
            while True:
                if b"\n" not in buffer:
                    if len(buffer) > max_line:
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
                        reply = "slept %d" % argument
                    elif service.offloads(kind, argument):
                        reply = await loop.run_in_executor(executor, work, kind, argument)
                    else:
                        reply = service.compute(kind, argument)
                writer.write(reply.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    # start_server listens on the socket again, with a backlog of 100 unless told: a burst
    # of thousands of connections would then wait out SYN retries, seconds at a time.
    server = await asyncio.start_server(handle, sock=listener, backlog=backlog)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    announce(listener)
    await stop.wait()
    server.close()
    # From 3.12 on, wait_closed also waits for every open connection to end: a client that
    # stays connected would hold the server forever. Give them a moment, then stop anyway.
    try:
        await asyncio.wait_for(server.wait_closed(), 2)
    except asyncio.TimeoutError:
        pass
