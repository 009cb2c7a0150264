"""A mostly waiting call: it sleeps, as a handler waiting on a database or another service
does. Sleeping releases the GIL, and waiting needs no CPU, so threads (or asyncio) serve many
such calls at once.

    clab workload examples/workloads/waiting.py:wait --arg 5
"""

import time


def wait(ms):
    """Waits `ms` milliseconds without using the CPU."""
    time.sleep(ms / 1000.0)
    return ms
