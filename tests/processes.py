"""Test helper: Python subprocesses of a test. A writer killed with SIGKILL mid-run and the
events of the document log it left behind; a simulator server that announces its endpoints as a
JSON line. Imported by tests as ``from processes import Child, logged_events, server``
(``tests/`` is on ``sys.path`` because of its ``conftest.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from spinlight.doclog import read_log

REAP_S = 10.0     # wall seconds for a killed child to be reaped


def logged_events(path: pathlib.Path) -> list[dict]:
    """The event documents of a JSON-lines document log (a torn last line is skipped)."""
    return [doc for name, doc in read_log(path) if name == "event"]


class Child:
    """``python *args`` started with stdout/stderr in ``<logs>.out``/``<logs>.err``; a context
    manager that kills (SIGKILL) and reaps it on exit if it still runs."""

    def __init__(self, *args, logs: pathlib.Path, **popen):
        self.err_path = logs.with_suffix(".err")
        self._out = open(logs.with_suffix(".out"), "w")
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen([sys.executable, *map(str, args)], stdout=self._out,
                                     stderr=self._err, **popen)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=REAP_S)
        self._out.close()
        self._err.close()

    def wait_until(self, ready, *, timeout_s: float, poll_s: float, what: str) -> None:
        """Poll ``ready()`` every ``poll_s`` wall s until it is true; fail the test if the child
        exits first (with its stderr) or after ``timeout_s`` wall s (saying ``what``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.err_path.read_text()
            if ready():
                return
            time.sleep(poll_s)
        pytest.fail(f"{what} in {timeout_s} s")

    def kill9(self) -> int:
        """SIGKILL, as a power cut or ``kill -9`` would; returns the return code."""
        os.kill(self.proc.pid, signal.SIGKILL)
        return self.proc.wait(timeout=REAP_S)


@contextlib.contextmanager
def server(*args, announce_timeout_s: float,
           **popen) -> Iterator[tuple[subprocess.Popen, dict]]:
    """``python *args`` (stdout and stderr piped as text, unbuffered) that prints its endpoints
    as a JSON line first; yields the process and that object; killed on exit if still running.
    The line is read in a thread: a child that hangs fails the test after
    ``announce_timeout_s`` wall s, with its stderr if it has exited."""
    proc = subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, **popen)
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(announce_timeout_s)
        assert line and line[0].strip(), proc.stderr.read() if proc.poll() is not None else \
            f"no endpoints printed in {announce_timeout_s} s"
        yield proc, json.loads(line[0])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(REAP_S)
