"""Loopback ports for the servers the demo, the tests and the benchmarks start themselves."""

from __future__ import annotations

import random
import socket
import time

# Below Linux's range for outgoing connections' own ports (32768-60999): a port given out here
# cannot be taken meanwhile by one of the many connections a test or a benchmark opens.
_PORTS = range(20000, 32768)


def free_port() -> int:
    """A TCP port nothing is bound to right now (127.0.0.1), one the kernel does not hand to
    outgoing connections; any free port if none of a hundred tries is free."""
    for port in random.sample(_PORTS, 100):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
