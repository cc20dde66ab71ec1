"""The campaign log: one file with wall and instrument time, and the engine events that go in it.

:class:`CampaignLog` attaches, for the length of a run, a file handler to the ``spinlight``
loggers (INFO and up; the simulators' own chatter only from WARNING) and to ``bluesky``
(WARNING and up: e.g. the RunEngine's traceback of an aborted run), and a console handler
printing the runner's lines (``spinlight.campaign``, not its RunEngine state lines) above the
progress bar. Each file line reads::

    2026-05-04 21:13:07  instr 2026-05-05 03:40:12  INFO    spinlight.campaign: measurement 3 start: ...

(wall time, then instrument time: the simulated lab's virtual clock, or the wall clock on real
instruments). The notifier process appends its own lines (run starts/stops, faults, summary)
to the same file.

:func:`watch_engine` logs — and sends to the notifier feed — every RunEngine state change
(``RE.state_hook``), every suspension and resume (whatever suspender asked), and the drivers'
fault events (:mod:`spinlight.instruments.retry`: lost connections and giving up as faults,
reconnections as ``reconnect``).
"""

from __future__ import annotations

import logging
import sys
import time

LOG_FORMAT = "%(asctime)s  instr %(instrument)s  %(levelname)-7s %(name)s: %(message)s"
log = logging.getLogger("spinlight.campaign")
engine_log = logging.getLogger("spinlight.campaign.engine")          # file only


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


class _LogFilter(logging.Filter):
    """Adds the instrument time; drops the simulators' chatter below WARNING."""

    def __init__(self, now):
        super().__init__()
        self.now = now

    def filter(self, record) -> bool:
        if record.name.startswith("spinlight.simulators") and record.levelno < logging.WARNING:
            return False
        try:
            record.instrument = _stamp(self.now())
        except Exception:  # noqa: BLE001 - a log line must never fail
            record.instrument = "?"
        return True


class _Console(logging.Handler):
    """Runner lines on stderr, above the progress bar."""

    def emit(self, record) -> None:
        from tqdm import tqdm
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001
            self.handleError(record)


class CampaignLog:
    """Handlers of one campaign run on ``path``; ``now()`` gives the instrument time (s)."""

    def __init__(self, path, now):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = logging.FileHandler(path, encoding="utf-8")
        self.file.setFormatter(logging.Formatter(LOG_FORMAT, "%Y-%m-%d %H:%M:%S"))
        self.file.addFilter(_LogFilter(now))
        self.file.setLevel(logging.INFO)
        self.console = _Console(logging.INFO)
        self.console.setFormatter(logging.Formatter("spinlight: %(message)s"))
        self.console.addFilter(lambda r: r.name != engine_log.name or r.levelno >= logging.WARNING)
        self.root = logging.getLogger("spinlight")
        self.saved_level = self.root.level
        if self.root.getEffectiveLevel() > logging.INFO:
            self.root.setLevel(logging.INFO)
        self.root.addHandler(self.file)
        logging.getLogger("bluesky").addHandler(self.file)
        log.addHandler(self.console)

    def close(self) -> None:
        log.removeHandler(self.console)
        logging.getLogger("bluesky").removeHandler(self.file)
        self.root.removeHandler(self.file)
        self.root.setLevel(self.saved_level)
        self.file.close()


def watch_engine(RE, feed):
    """Log and notify state changes, suspensions and driver faults; returns ``undo()``."""
    from spinlight.instruments.retry import add_fault_listener, remove_fault_listener

    RE.state_hook = lambda new, old: engine_log.info("RunEngine %s -> %s", old, new)
    request = RE.request_suspend

    def request_suspend(fut, *, justification=None, **kwargs):
        why = justification or "a suspender tripped"
        log.warning("suspended: %s", why)
        feed.campaign_event("suspend", why)

        async def waited():
            await (fut() if callable(fut) else fut)
            log.info("resumed after: %s", why)
            feed.campaign_event("resume", f"after: {why}")
        return request(waited, justification=justification, **kwargs)

    def fault(kind: str, message: str, fields: dict) -> None:
        # already in the log through the ``spinlight.faults`` logger; here: notifications
        if kind in ("connection_lost", "gave_up"):
            feed.campaign_event("fault", message, fault=f"instrument_{kind}",
                                **{k: v for k, v in fields.items() if k != "fault"})
        elif kind == "reconnected":
            feed.campaign_event("reconnect", message, **fields)

    RE.request_suspend = request_suspend
    listener = add_fault_listener(fault)

    def undo() -> None:
        remove_fault_listener(listener)
        RE.request_suspend = request
        RE.state_hook = None
    return undo
