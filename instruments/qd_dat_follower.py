"""``DatFollower``: tail a MultiVu ``.dat`` file that another process is still writing.

It remembers the byte offset of the last complete line, so each poll reads and parses only
the new bytes; a half-written last line stays unread until its line break arrives. The file
may not exist yet and its header may arrive in pieces. If the file shrinks or is replaced
(new inode), the follower starts over from the new file's beginning.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from .qd_dat_format import DatParser, detect_flavor, ole_to_unix, time_base_of

__all__ = ["DatFollower"]

_SIGNATURE_BYTES = 512


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


class DatFollower:
    """Follow a ``.dat`` file: ``poll()`` returns the complete data rows added since the
    last call (row dicts as in ``read_dat``); comment-only rows go to :attr:`comments`.

    ``from_end=True`` skips the rows already in the file when the follower is created
    (the header is still parsed), so only rows written afterwards are returned.
    """

    def __init__(self, path: str | os.PathLike, *, poll_interval_s: float = 0.05,
                 from_end: bool = False):
        if not (poll_interval_s > 0 and math.isfinite(poll_interval_s)):
            raise ValueError(f"poll_interval_s={poll_interval_s!r}; must be a finite number > 0")
        self.path = Path(path)
        self.poll_interval_s = float(poll_interval_s)
        self._lock = threading.RLock()
        self._reset()
        if from_end:
            self._read()
            self._pending.clear()
            self._since_start.clear()
            self.comments.clear()

    def _reset(self) -> None:
        self._parser = DatParser(self.path)
        self.offset = 0                 # bytes consumed (always at a line start)
        self.lines_parsed = 0           # lines fed to the parser since the file started
        self._inode: int | None = None
        self._signature = b""
        self._pending: deque[dict] = deque()
        self._since_start: list[dict] = []
        self.comments: list[tuple[float | None, str]] = []

    # ------------------------------------------------------------ header info
    @property
    def columns(self) -> list[str]:
        return list(self._parser.columns)

    @property
    def header(self) -> dict[str, Any]:
        return self._parser.header

    @property
    def header_complete(self) -> bool:
        return self._parser.in_data

    @property
    def flavor(self) -> str:
        p = self._parser
        return detect_flavor(p.header, p.header_comments, p.columns)

    def time_unix(self, row: dict) -> float:
        """Unix seconds of a row (MPMS3 OLE stamps converted, local time)."""
        p = self._parser
        if p.time_index is None:
            return math.nan
        return self._unix_of(row.get(p.columns[p.time_index]))

    def _unix_of(self, t: Any) -> float:
        if not isinstance(t, float):
            return math.nan
        p = self._parser
        base = time_base_of(p.file_open_time_raw if p.file_open_time_raw is not None else t,
                            self.flavor)
        return float(ole_to_unix(t)) if base == "ole" else t

    @property
    def rows_since_start(self) -> list[dict]:
        """Every data row read since the follower started (returned or still pending)."""
        with self._lock:
            return list(self._since_start)

    # ------------------------------------------------------------ reading
    def _read(self) -> None:
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return
        with fh:
            size = os.fstat(fh.fileno()).st_size
            ino = os.fstat(fh.fileno()).st_ino
            # replaced (new inode, or same inode reused but other first bytes) or truncated
            replaced = self._inode is not None and ino != self._inode
            if not replaced and self._signature and size >= len(self._signature):
                replaced = fh.read(len(self._signature)) != self._signature
            if replaced or size < self.offset:
                kept = (self._since_start, self._pending, self.comments)
                self._reset()            # start over on the new file, keep what was read
                self._since_start, self._pending, self.comments = kept
            self._inode = ino
            if not self._signature and size >= _SIGNATURE_BYTES:
                # the first bytes identify the file: they include FILEOPENTIME (10 us steps)
                fh.seek(0)
                self._signature = fh.read(_SIGNATURE_BYTES)
            if size == self.offset:
                return
            fh.seek(self.offset)
            chunk = fh.read(size - self.offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            return                       # only a partial line so far
        start = 0
        while start <= end:
            nl = chunk.index(b"\n", start)
            raw = chunk[start:nl]
            start = nl + 1
            # advance first: a malformed line raises once and is then skipped, never re-read
            self.offset += len(raw) + 1
            self.lines_parsed += 1
            event = self._parser.feed(_decode(raw), self.lines_parsed)
            if event is None:
                continue
            kind, payload = event
            if kind == "row":
                self._pending.append(payload)
                self._since_start.append(payload)
            else:
                t, text = payload
                self.comments.append((self._unix_of(t) if t is not None else None, text))

    def poll(self) -> list[dict]:
        """Complete data rows added since the last poll (possibly none); never blocks."""
        with self._lock:
            self._read()
            out = list(self._pending)
            self._pending.clear()
            return out

    def wait_for_rows(self, n: int = 1, timeout_s: float = 30.0,
                      predicate: Callable[[dict], bool] | None = None) -> list[dict]:
        """Block until ``n`` new rows (matching ``predicate``, if given) have arrived and
        return exactly those ``n``; later rows stay queued for the next call. Rows that do not
        match the predicate are consumed. Raises ``TimeoutError`` naming the file."""
        if n < 1:
            raise ValueError(f"n={n!r}; must be >= 1")
        if timeout_s is None or not (timeout_s >= 0 and math.isfinite(timeout_s)):
            raise ValueError(f"timeout_s={timeout_s!r}; must be a finite number >= 0")
        deadline = time.monotonic() + timeout_s
        got: list[dict] = []
        while True:
            with self._lock:
                self._read()
                while self._pending and len(got) < n:
                    row = self._pending.popleft()
                    if predicate is None or predicate(row):
                        got.append(row)
            if len(got) >= n:
                return got
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                with self._lock:         # hand back what we took, so nothing is lost
                    self._pending.extendleft(reversed(got))
                raise TimeoutError(
                    f"{self.path}: {len(got)} of {n} expected row(s) after {timeout_s:g} s"
                    + ("" if self._parser.in_data else " (no complete [Data] header yet)"))
            time.sleep(min(self.poll_interval_s, remaining))

    def __repr__(self) -> str:
        return f"DatFollower({str(self.path)!r}, offset={self.offset})"
