"""The run catalog: Tiled on local SQLite + files, in process, no server and no port.

Layout of a catalog folder ``root`` (``ecosystem.md`` recipe A)::

    root/catalog.db       Tiled node metadata and search index (SQLite)
    root/storage.sqlite   event tables (SQLite, readable while another process writes;
                          DuckDB would lock the file per process)
    root/data/            array/file storage
    root/doclog/          JSON-lines document log, one file per run (see spinlight.doclog)
    root/re_md/           persistent RunEngine metadata (scan ids; see spinlight.engine)

``open_catalog(root)`` returns a :class:`Catalog`, a small wrapper around the
``CatalogOfBlueskyRuns`` Tiled client with helpers that tolerate runs that are still being
written or whose writer was killed (no stop document).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
import sqlite3
import warnings
from typing import Any, Callable, Iterator

import numpy as np

#: Root specs; not stored in the database, so they are passed on every open (pitfall 3).
ROOT_SPECS = [{"name": "CatalogOfBlueskyRuns", "version": "3.0"}]
CATALOG_DB = "catalog.db"
TABLES_DB = "storage.sqlite"
FILES_DIR = "data"

logger = logging.getLogger(__name__)


class NotACatalogError(FileNotFoundError):
    """The folder given is not a spinlight catalog."""


class RunNotFoundError(KeyError):
    """No run matches the reference given (scan id, uid prefix, negative index)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def _quiet_starlette() -> None:
    # Harmless with the in-process ASGI transport (pitfall 7); keep it out of user output.
    warnings.filterwarnings("ignore", message=r".*starlette\.testclient.*")
    warnings.filterwarnings("ignore", message=r".*httpx.*starlette.*")
    logging.getLogger("tiled.server.app").setLevel(logging.WARNING)


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One line of ``spinlight runs``."""

    scan_id: int | None
    uid: str
    plan_name: str
    sample: str
    start_time: float
    status: str            # stop exit_status, or "open" (writer alive) / "interrupted" (writer gone)
    num_events: int        # events in the primary stream
    measurement: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (non-finite floats become None)."""
        out = dataclasses.asdict(self)
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in out.items()}


def _sample_name(start: dict) -> str:
    sample = start.get("sample", start.get("sample_name"))  # derived runs: sample_name
    if isinstance(sample, dict):
        return str(sample.get("name", ""))
    return "" if sample is None else str(sample)


def open_catalog(root: str | pathlib.Path, *, create: bool = False) -> "Catalog":
    """Open (or with ``create=True`` create, idempotently) the catalog in folder ``root``."""
    _quiet_starlette()
    root = pathlib.Path(root).expanduser().resolve()
    db = root / CATALOG_DB
    if root.exists() and not root.is_dir():
        raise NotACatalogError(f"catalog folder {str(root)!r} is a file, not a folder")
    if not create:
        if not root.is_dir():
            raise NotACatalogError(
                f"catalog folder {str(root)!r} does not exist "
                "(give --data DIR or set SPINLIGHT_DATA; runs are stored by 'spinlight import' "
                "or an acquisition)")
        if not db.is_file():
            raise NotACatalogError(
                f"folder {str(root)!r} is not a spinlight catalog (no {CATALOG_DB} in it)")
        _check_sqlite(db)
    (root / FILES_DIR).mkdir(parents=True, exist_ok=True)

    from tiled.catalog import from_uri as catalog_from_uri
    from tiled.client import Context, from_context
    from tiled.server.app import build_app

    try:
        adapter = catalog_from_uri(
            f"sqlite:///{db}",
            writable_storage=[f"file://{root / FILES_DIR}", f"sqlite:///{root / TABLES_DB}"],
            # initialising is slow (~seconds, even on an existing database): only when new
            init_if_not_exists=create and not db.is_file(),
            specs=ROOT_SPECS,
        )
    except Exception as exc:  # tiled raises various types for a foreign/old database
        raise NotACatalogError(
            f"folder {str(root)!r} does not hold a usable catalog ({CATALOG_DB}: "
            f"{type(exc).__name__}: {exc})") from exc
    with warnings.catch_warnings():
        _quiet_starlette()
        context = Context.from_app(build_app(adapter))
    try:
        client = from_context(context)
    except Exception:
        context.close()
        raise
    return Catalog(root, context, client)


def _check_sqlite(db: pathlib.Path) -> None:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise NotACatalogError(f"{str(db)!r} is not a catalog database ({exc})") from exc
    if "nodes" not in names:
        raise NotACatalogError(f"{str(db)!r} is not a Tiled catalog database (no 'nodes' table)")


class Catalog:
    """A catalog of Bluesky runs in one folder. Use as a context manager or call close()."""

    def __init__(self, root: pathlib.Path, context, client):
        self.root = root
        self.context = context
        self.client = client          # bluesky_tiled_plugins CatalogOfBlueskyRuns
        self._close_hooks: list[Callable[[], None]] = []
        self._closed = False
        self._store = None

    # -- lifetime ---------------------------------------------------------------------------
    def add_close_hook(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` when the catalog closes (before the Tiled context); used by engine."""
        self._close_hooks.append(fn)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fn in reversed(self._close_hooks):
            try:
                fn()
            except Exception:  # close must not fail half-way
                logger.exception("error while closing %s", self.root)
        self.context.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.client)

    def __repr__(self) -> str:
        return f"<spinlight Catalog {str(self.root)!r} ({len(self)} runs)>"

    def store(self, name: str, doc: dict) -> None:
        """Store one document of a run made outside the RunEngine (e.g. a derived analysis
        run): appended to the document log first, then written by a TiledWriter
        (batch_size=1). Usable as an ``emit`` callback."""
        if self._closed:
            raise RuntimeError(f"catalog {str(self.root)!r} is closed")
        if self._store is None:
            from bluesky_tiled_plugins import TiledWriter

            from spinlight.doclog import DocLog

            self._store = (DocLog(self.root), TiledWriter(self.client, batch_size=1))
            self._close_hooks.insert(0, self._store[0].close)
        log, writer = self._store
        log(name, doc)
        writer(name, doc)

    # -- lookup -----------------------------------------------------------------------------
    def get_run(self, ref: int | str):
        """A run by scan id (``7``, ``"7"``), uid or uid prefix (≥5 chars), or negative index
        (``-1`` = the run stored last). Several runs with one scan id: the latest wins; an
        all-digit string is a scan id first, then a uid prefix."""
        if isinstance(ref, str):
            text = ref.strip()
            if text.lstrip("-").isdigit():
                try:
                    return self.get_run(int(text))
                except RunNotFoundError:
                    if text.startswith("-") or len(text) < 5:
                        raise
                # else: maybe an all-digit uid prefix
            return self._by_uid_prefix(text)
        if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
            ref = int(ref)
            n = len(self.client)
            if ref == 0:
                raise RunNotFoundError("run reference 0: scan ids start at 1; use -1 for the last run")
            if ref < 0:
                if -ref > n:
                    raise RunNotFoundError(
                        f"run reference {ref}: catalog {str(self.root)!r} holds only {n} runs")
                return self.client.values()[ref]
            try:
                return self.client[ref]
            except KeyError:
                raise RunNotFoundError(
                    f"no run with scan_id {ref} in catalog {str(self.root)!r}") from None
        raise RunNotFoundError(f"run reference {ref!r}: expected a scan id, uid prefix or -N")

    def _by_uid_prefix(self, text: str):
        if len(text) < 5:
            raise RunNotFoundError(
                f"run reference {text!r}: a uid prefix needs at least 5 characters")
        try:
            return self.client[text]
        except KeyError:
            raise RunNotFoundError(
                f"no run with uid starting {text!r} in catalog {str(self.root)!r}") from None
        except ValueError as exc:  # ambiguous prefix
            raise RunNotFoundError(f"run reference {text!r}: {exc}") from None

    @staticmethod
    def start_doc(run) -> dict:
        return dict(run.metadata["start"])

    @staticmethod
    def stop_doc(run) -> dict | None:
        stop = run.metadata.get("stop")
        return dict(stop) if stop else None

    def derived_runs(self, raw_uid: str) -> list:
        """Runs whose start document has ``derived_from == raw_uid`` (stored fit results)."""
        from tiled.queries import Eq

        return list(self.client.search(Eq("start.derived_from", raw_uid)).values())

    # -- data -------------------------------------------------------------------------------
    @staticmethod
    def read_stream(run, stream: str = "primary", *, timestamps: bool = False
                    ) -> dict[str, np.ndarray]:
        """Columns of one event stream as numpy arrays (``seq_num``, ``time`` and every data
        key). Works for runs still being written and for runs whose writer died: it returns the
        rows on disk. Empty dict if the stream has no rows yet."""
        if stream not in run:
            return {}
        node = run[stream]
        out: dict[str, np.ndarray] = {}
        for key, item in node.base.items():
            family = str(getattr(item, "structure_family", ""))
            if family.endswith("table"):
                df = item.read()
                for col in df.columns:
                    if timestamps or not str(col).startswith("ts_"):
                        out[str(col)] = df[col].to_numpy()
            elif family.endswith("array"):
                out[key] = np.asarray(item.read())
        return out

    def read_primary(self, run) -> dict[str, np.ndarray]:
        return self.read_stream(run, "primary")

    def num_events(self, run, stream: str = "primary") -> int:
        stop = run.metadata.get("stop") or {}
        counts = stop.get("num_events") or {}
        if stream in counts:
            return int(counts[stream])
        if stream not in run:
            return 0
        node = run[stream]
        if "seq_num" in node:
            return int(len(node["seq_num"].read()))
        return 0

    # -- listing ----------------------------------------------------------------------------
    def run_status(self, run) -> str:
        stop = run.metadata.get("stop")
        if stop:
            return str(stop.get("exit_status", "unknown"))
        from spinlight.doclog import writer_alive

        alive = writer_alive(self.root, run.metadata["start"]["uid"])
        return "interrupted" if alive is False else "open"

    def summary(self, run) -> RunSummary:
        start = run.metadata["start"]
        t = start.get("time")
        return RunSummary(
            scan_id=start.get("scan_id"),
            uid=str(start["uid"]),
            plan_name=str(start.get("plan_name", "")),
            sample=_sample_name(start),
            start_time=float(t) if t is not None and math.isfinite(float(t)) else float("nan"),
            status=self.run_status(run),
            num_events=self.num_events(run),
            measurement=start.get("measurement"),
        )

    def runs(self, limit: int | None = None, *, sample: str | None = None
             ) -> Iterator[RunSummary]:
        """Summaries in storage order (oldest first); ``limit`` keeps the last N (after the
        ``sample`` name filter)."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        node = self.client
        if sample is None:
            n = len(node)
            first = 0 if limit is None else max(0, n - limit)
            for run in node.values()[first:]:
                yield self.summary(run)
            return
        picked = [run for run in node.values() if _sample_name(run.metadata["start"]) == sample]
        if limit is not None:
            picked = picked[len(picked) - limit:] if limit else []
        for run in picked:
            yield self.summary(run)
