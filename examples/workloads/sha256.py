"""A C call that releases the GIL: hashlib hashes data of 2 KiB or more with the GIL
released, so threads hash side by side even on an interpreter with a GIL.

    clab workload examples/workloads/sha256.py:digest --arg 1048576
"""

import hashlib

_DATA = {}


def digest(size):
    """The SHA-256 of `size` bytes (made once per process), as hex."""
    data = _DATA.get(size)
    if data is None:
        data = _DATA[size] = b"\x5a" * size
    return hashlib.sha256(data).hexdigest()
