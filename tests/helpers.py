"""Process and waiting helpers: plain functions for tests that start servers or poll.

Test data lives in tests/factories.py and fixtures in the conftest.py files.
"""

import socket
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, *, timeout: float, interval: float = 0.2, message: str = ""):
    """Poll `predicate` until it returns something truthy, and return that.

    `timeout` is a deadline, not a pause: size it for a loaded two-core machine.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s: {message}")
