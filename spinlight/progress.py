"""A per-run tqdm progress bar with elapsed and remaining *instrument* time.

Against the simulators instrument time runs faster than wall time, and on a real magnetometer a
point's duration is set by the instrument, so the estimate uses the instrument time of each
point: event data key ``vsm_time`` (instrument Unix seconds) when present, else the event
``time``. ETA = remaining points × mean instrument seconds per point. Without
``start["num_points"]`` the bar is indeterminate (count and elapsed only). The callback never
raises into the RunEngine: errors are logged and the bar is dropped.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

logger = logging.getLogger(__name__)


def format_duration(seconds: float | None) -> str:
    """``"1h02m"``, ``"3m05s"``, ``"12s"``; ``"?"`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class _RunProgress:
    def __init__(self, start: dict, *, file, stream: str, time_key: str, leave: bool):
        from tqdm import tqdm

        total = start.get("num_points")
        self.total = int(total) if isinstance(total, (int, float)) and total > 0 else None
        self.stream = stream
        self.time_key = time_key
        self.descriptors: set[str] = set()
        self.times: list[float] = []
        name = start.get("plan_name", "run")
        desc = f"scan {start.get('scan_id', '?')} {name}"
        if self.total:
            fmt = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}"
        else:
            fmt = "{desc}: {n_fmt} points{postfix}"
        self.bar = tqdm(total=self.total, desc=desc, unit="pt", file=file, leave=leave,
                        bar_format=fmt, dynamic_ncols=True, mininterval=0)

    def event(self, doc: dict) -> None:
        if doc.get("descriptor") not in self.descriptors:
            return
        t = doc.get("data", {}).get(self.time_key)
        try:
            t = float(t)
        except (TypeError, ValueError):
            t = float("nan")
        if not math.isfinite(t):
            t = float(doc["time"])
        self.times.append(t)
        self.bar.set_postfix_str(self.postfix(), refresh=False)
        self.bar.update(1)

    def estimate(self) -> tuple[float | None, float | None]:
        """(elapsed, remaining) instrument seconds; None where not yet known."""
        n = len(self.times)
        if n < 2:
            return (0.0 if n else None), None
        per_point = (self.times[-1] - self.times[0]) / (n - 1)
        elapsed = per_point * n  # the first point took about one period too
        remaining = per_point * (self.total - n) if self.total else None
        if remaining is not None:
            remaining = max(remaining, 0.0)
        return elapsed, remaining

    def postfix(self) -> str:
        elapsed, remaining = self.estimate()
        text = f"instrument {format_duration(elapsed)}"
        if self.total:
            text += f", ETA {format_duration(remaining)}"
        return text

    def close(self, exit_status: str = "success") -> None:
        if exit_status != "success":
            self.bar.set_postfix_str(f"{self.postfix()} — {exit_status}", refresh=True)
        self.bar.close()


class ProgressCallback:
    """RunEngine callback ``(name, doc)``: one bar per run, on ``file`` (default stderr)."""

    def __init__(self, *, file=None, stream: str = "primary", time_key: str = "vsm_time",
                 leave: bool = True):
        self.file = file
        self.stream = stream
        self.time_key = time_key
        self.leave = leave
        self.runs: dict[str, _RunProgress] = {}
        self.last: _RunProgress | None = None

    def __call__(self, name: str, doc: dict) -> Any:
        try:
            handler = getattr(self, "_" + name, None)
            if handler is not None:
                handler(doc)
        except Exception:  # a progress bar must never stop a measurement
            logger.exception("progress bar error on %s document (ignored)", name)
            uid = doc.get("run_start") if isinstance(doc, dict) else None
            self.runs.pop(uid, None)

    def _start(self, doc: dict) -> None:
        prog = _RunProgress(doc, file=self.file if self.file is not None else sys.stderr,
                            stream=self.stream, time_key=self.time_key, leave=self.leave)
        self.runs[doc["uid"]] = self.last = prog

    def _descriptor(self, doc: dict) -> None:
        prog = self.runs.get(doc.get("run_start"))
        if prog is not None and doc.get("name") == prog.stream:
            prog.descriptors.add(doc["uid"])

    def _event(self, doc: dict) -> None:
        for prog in self.runs.values():
            if doc.get("descriptor") in prog.descriptors:
                prog.event(doc)
                return

    def _event_page(self, page: dict) -> None:
        from event_model import unpack_event_page

        for doc in unpack_event_page(page):
            self._event(doc)

    def _stop(self, doc: dict) -> None:
        prog = self.runs.pop(doc.get("run_start"), None)
        if prog is not None:
            prog.close(doc.get("exit_status", "success"))
