"""RunEngine assembly: storage (Tiled + JSON-lines log), persistent metadata, progress.

    RE, catalog = make_run_engine(root)
    RE(plan)                  # every event is fsynced to the doc log, then written to Tiled
    catalog.close()           # also closes the engine's callbacks (see make_run_engine)
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any, Callable, Iterable

from spinlight.catalog import Catalog, open_catalog
from spinlight.doclog import DocLog, _try_lock, _unlock

logger = logging.getLogger(__name__)

RE_MD_DIR = "re_md"


class EngineLockedError(RuntimeError):
    """Another process already runs a RunEngine on this data folder."""


def _lock_md(root: pathlib.Path):
    path = root / (RE_MD_DIR + ".lock")
    fh = open(path, "a+")
    if not _try_lock(fh):
        fh.close()
        raise EngineLockedError(
            f"data folder {str(root)!r} is in use by another RunEngine process "
            f"({path.name} is locked); RE.md (scan ids) may only be used by one process")
    return fh


def make_run_engine(
    root: str | pathlib.Path,
    *,
    progress: bool = True,
    extra_callbacks: Iterable[Callable[[str, dict], Any]] = (),
    context_managers: list | None = None,
    progress_file=None,
) -> tuple[Any, Catalog]:
    """A ``bluesky.RunEngine`` storing every run in the catalog at ``root`` (created if needed).

    Subscribed, in this order: the JSON-lines document log (write-ahead, fsync per document),
    ``bluesky_tiled_plugins.TiledWriter(client, batch_size=1)`` (each event written before the
    next point: a kill loses nothing measured), the progress bar (``progress=True``), then
    ``extra_callbacks``. ``RE.md`` is a ``PersistentDict`` in ``root/re_md`` so scan ids survive
    restarts; one process at a time may own it (``EngineLockedError`` otherwise).

    ``catalog.close()`` closes everything: unsubscribes, closes the doc log (open runs become
    'interrupted'), flushes ``RE.md``, releases the folder lock, closes the Tiled context.
    ``context_managers`` is passed to RunEngine (``[]`` disables the SIGINT handler, needed
    when the engine runs outside the main thread).
    """
    from bluesky import RunEngine
    from bluesky.utils import PersistentDict
    from bluesky_tiled_plugins import TiledWriter

    root = pathlib.Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    lock = _lock_md(root)          # before the (slow) catalog open: fail fast if in use
    try:
        catalog = open_catalog(root, create=True)
    except BaseException:
        _unlock(lock)
        lock.close()
        raise
    kwargs = {} if context_managers is None else {"context_managers": context_managers}
    RE = RunEngine({}, **kwargs)
    md = PersistentDict(str(root / RE_MD_DIR))
    RE.md = md

    doclog = DocLog(root)
    tokens = [RE.subscribe(doclog), RE.subscribe(TiledWriter(catalog.client, batch_size=1))]
    if progress:
        from spinlight.progress import ProgressCallback

        tokens.append(RE.subscribe(ProgressCallback(file=progress_file)))
    for cb in extra_callbacks:
        tokens.append(RE.subscribe(cb))
    RE.spinlight_doclog = doclog  # for tests and tools: doclog.paths[uid]

    def close() -> None:
        for token in tokens:
            try:
                RE.unsubscribe(token)
            except Exception:
                pass
        doclog.close()
        try:
            md.flush()
            # PersistentDict re-writes its cache when garbage collected; after close another
            # engine may own the folder, so a late write would roll the scan id back.
            finalizer = getattr(md, "_finalizer", None)
            if finalizer is not None:
                finalizer.detach()
        finally:
            try:
                _unlock(lock)
            finally:
                lock.close()

    catalog.add_close_hook(close)
    return RE, catalog
