"""Test helper: wait (wall clock) for a condition that a simulator or a monitor thread makes
true. Imported by tests as ``from polling import wait_for`` (``tests/`` is on ``sys.path``
because of its ``conftest.py``)."""

from __future__ import annotations

import time


def wait_for(pred, timeout_s: float = 5.0, poll_s: float = 0.002) -> bool:
    """True as soon as ``pred()`` is, False after ``timeout_s`` wall seconds."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(poll_s)
    return False
