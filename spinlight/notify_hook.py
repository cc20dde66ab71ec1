"""The notification hook runner: the user's command run once per notification.

Used by :mod:`spinlight.notifier`. The command (an argv list, no shell) gets the message as its
last argument and the notification as JSON on stdin (:func:`strict_json`, so a hook in any
language can parse it). Calls run one at a time on a thread of their own, each bounded by a
timeout (s) after which the command's whole process group is killed; a hook that cannot start,
times out or exits non-zero is logged as ``HOOK FAILED`` and never stops the notifier.
"""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import subprocess
import threading
from typing import Any


def strict_json(obj: Any) -> Any:
    """Hooks may be written in any language: no NaN/Infinity tokens in what they receive."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


class HookRunner:
    """Runs the hook command on its own thread, one call at a time, each with a timeout.

    ``log(t, tag, text)`` receives the failures (from the hook thread); ``calls`` counts the
    commands started."""

    def __init__(self, command: list[str] | None, timeout_s: float, log):
        self.command = command
        self.timeout_s = timeout_s
        self.log = log
        self.calls = 0
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="hook", daemon=True)
        self._thread.start()

    def submit(self, note: dict) -> None:
        if self.command:
            self._queue.put(note)

    def close(self) -> None:
        """Wait for the pending calls (each bounded by the timeout)."""
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while (note := self._queue.get()) is not None:
            try:
                self._call(note)
            except Exception as exc:  # noqa: BLE001 - a hook must never stop the notifier
                self.log(None, "HOOK FAILED", f"{note['kind']}: {type(exc).__name__}: {exc}")

    def _call(self, note: dict) -> None:
        argv = [*self.command, note["message"]]
        payload = json.dumps(strict_json(note)).encode()
        posix = os.name == "posix"
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=posix)
        except OSError as exc:
            self.log(None, "HOOK FAILED", f"{note['kind']}: cannot run {argv[0]!r}: {exc}")
            return
        self.calls += 1
        try:
            _, err = proc.communicate(payload, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            # the whole group: a mail script's own children must not outlive the timeout
            try:
                os.killpg(proc.pid, signal.SIGKILL) if posix else proc.kill()
            except OSError:
                pass
            proc.wait()
            proc.stderr.close()
            self.log(None, "HOOK FAILED",
                     f"{note['kind']}: timed out after {self.timeout_s:g} s (killed)")
            return
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip()[-200:]
            self.log(None, "HOOK FAILED", f"{note['kind']}: exit code {proc.returncode}"
                     + (f": {tail}" if tail else ""))
