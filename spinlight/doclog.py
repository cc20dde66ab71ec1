"""The unconditional JSON-lines document log: the write-ahead record of every run.

Tiled's ``backup_directory`` only writes when a Tiled write fails (ecosystem.md pitfall 2) and
TiledWriter/SQL storage is young (pitfall 10), so every document of every run is also appended
to ``<root>/doclog/<YYYY-MM-DD>/<uid>.jsonl`` (local date of the start document), one
``{"name": ..., "doc": ...}`` object per line (the format of the bluesky/bluesky-tiled-plugins
``JSONLinesWriter``), flushed and fsynced before the callback returns. Subscribe it *before*
the TiledWriter so each document is on disk before Tiled sees it.

While a run is open its writer holds an OS lock on ``<uid>.jsonl.lock``; the kernel drops it
when the process dies (even on ``kill -9``), so a reader can tell a run still being measured
("open") from one whose writer is gone ("interrupted"): :func:`writer_alive`.

Any run can be re-inserted from its log: :func:`reinsert` (TiledWriter on the replayed docs).
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import pathlib
from typing import Any, Callable, Iterator

import numpy as np

logger = logging.getLogger(__name__)

DOCLOG_DIR = "doclog"

try:  # POSIX
    import fcntl

    def _try_lock(fh) -> bool:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def _unlock(fh) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock(fh) -> bool:
        try:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fh) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, (pathlib.Path, datetime.datetime, datetime.date)):
        return str(obj)
    raise TypeError(f"document value of type {type(obj).__name__} is not JSON serialisable")


def dumps(name: str, doc: dict) -> str:
    """One log line (no newline). NaN/inf are written as JSON ``NaN``/``Infinity`` (Python's
    json reads them back)."""
    return json.dumps({"name": name, "doc": doc}, default=_json_default)


def log_dir(root: str | pathlib.Path) -> pathlib.Path:
    return pathlib.Path(root) / DOCLOG_DIR


def log_path(root: str | pathlib.Path, uid: str, start_time: float | None = None
             ) -> pathlib.Path:
    """Where the log of run ``uid`` is (or will be) written."""
    if start_time is None or not math.isfinite(start_time):
        found = sorted(log_dir(root).glob(f"*/{uid}.jsonl"))
        if found:
            return found[0]
        start_time = datetime.datetime.now().timestamp()
    day = datetime.datetime.fromtimestamp(start_time).strftime("%Y-%m-%d")
    return log_dir(root) / day / f"{uid}.jsonl"


def writer_alive(root: str | pathlib.Path, uid: str) -> bool | None:
    """True if a process is still writing run ``uid``, False if its log exists but no writer
    holds it (finished or died), None if there is no log for this run."""
    found = sorted(log_dir(root).glob(f"*/{uid}.jsonl"))
    if not found:
        return None
    lock = found[0].with_name(found[0].name + ".lock")
    if not lock.exists():
        return False
    try:
        with open(lock, "a+") as fh:
            if _try_lock(fh):
                _unlock(fh)
                return False
            return True
    except OSError:
        return None


class _OpenRun:
    def __init__(self, path: pathlib.Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.lock = open(self.lock_path, "a+")
        if not _try_lock(self.lock):
            self.lock.close()
            raise RuntimeError(f"document log {str(path)!r} is locked by another process")
        self.fh = open(path, "a", encoding="utf-8")

    def write(self, line: str) -> None:
        self.fh.write(line + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self, *, finished: bool) -> None:
        self.fh.close()
        try:
            _unlock(self.lock)
        finally:
            self.lock.close()
        if finished:
            self.lock_path.unlink(missing_ok=True)


class DocLog:
    """RunEngine callback ``(name, doc)`` writing one JSON-lines file per run.

    Handles several interleaved runs; documents are routed to their run by ``run_start``,
    ``descriptor`` and ``resource``/``stream_resource`` uids.
    """

    def __init__(self, root: str | pathlib.Path):
        self.root = pathlib.Path(root)
        self._runs: dict[str, _OpenRun] = {}        # run uid -> open file
        self._owner: dict[str, str] = {}            # descriptor/resource uid -> run uid
        self.paths: dict[str, pathlib.Path] = {}    # run uid -> log file (kept after stop)

    def __call__(self, name: str, doc: dict) -> None:
        run_uid = self._run_of(name, doc)
        if name == "start":
            run = _OpenRun(log_path(self.root, doc["uid"], doc.get("time")))
            self._runs[run_uid] = run
            self.paths[run_uid] = run.path
        run = self._runs.get(run_uid) if run_uid else None
        if run is None:
            raise RuntimeError(f"document log: {name} document for an unknown run ({run_uid!r})")
        run.write(dumps(name, doc))
        if name in ("descriptor", "resource", "stream_resource"):
            self._owner[doc["uid"]] = run_uid
        elif name == "stop":
            run.close(finished=True)
            del self._runs[run_uid]
            self._owner = {k: v for k, v in self._owner.items() if v != run_uid}

    def _run_of(self, name: str, doc: dict) -> str | None:
        if name == "start":
            return doc["uid"]
        if "run_start" in doc:
            return doc["run_start"]
        for key in ("descriptor", "resource", "stream_resource"):
            if key in doc and doc[key] in self._owner:
                return self._owner[doc[key]]
        if name == "datum_page" and doc.get("resource") in self._owner:
            return self._owner[doc["resource"]]
        return None

    @property
    def open_runs(self) -> list[str]:
        return list(self._runs)

    def close(self) -> None:
        """Close files of runs without a stop document (their lock is released, so readers
        report them 'interrupted')."""
        for run in self._runs.values():
            run.close(finished=False)
        self._runs.clear()


def read_log(path: str | pathlib.Path) -> Iterator[tuple[str, dict]]:
    """``(name, doc)`` pairs from a log; a torn last line (writer killed mid-write) is
    skipped with a warning."""
    path = pathlib.Path(path)
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            if i >= len(lines) - 2:
                logger.warning("%s: skipping incomplete last line", path)
                continue
            raise ValueError(f"{str(path)!r} line {i + 1} is not valid JSON") from None
        yield item["name"], item["doc"]


def replay_log(path: str | pathlib.Path, callback: Callable[[str, dict], Any]) -> int:
    """Feed every document of a log to ``callback``; returns the number of documents."""
    n = 0
    for name, doc in read_log(path):
        callback(name, doc)
        n += 1
    return n


def reinsert(path: str | pathlib.Path, catalog) -> str:
    """Re-insert the run logged in ``path`` into ``catalog`` (a spinlight Catalog or a Tiled
    client) with bluesky_tiled_plugins.TiledWriter; returns the run uid. A run whose log has
    no stop document is inserted as it is (no stop: reported 'interrupted'). For a spinlight
    Catalog the log is copied into its ``doclog`` folder unless one is there already."""
    import shutil

    from bluesky_tiled_plugins import TiledWriter

    path = pathlib.Path(path)
    client = getattr(catalog, "client", catalog)
    writer = TiledWriter(client, batch_size=1)
    uid: list[str] = []

    def cb(name: str, doc: dict) -> None:
        if name == "start":
            uid.append(doc["uid"])
        writer(name, doc)

    replay_log(path, cb)
    if not uid:
        raise ValueError(f"document log {str(path)!r} has no start document")
    root = getattr(catalog, "root", None)
    if root is not None and writer_alive(root, uid[0]) is None:
        # keep the log with the catalog (its write-ahead record; also marks a run without
        # stop document 'interrupted' rather than 'open')
        start_time = next(doc for name, doc in read_log(path) if name == "start").get("time")
        dest = log_path(root, uid[0], start_time)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return uid[0]
