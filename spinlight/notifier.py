"""The notification consumer: a separate process that cannot crash the acquisition.

    python -m spinlight.notifier --log FILE [--hook CMD] [--summary FILE]
                                 [--hook-timeout S] [--hook-on KIND,KIND,...]

Input (stdin, from :class:`spinlight.notify_feed.NotifierFeed`): JSON lines ``{"name": N,
"doc": {...}}``; N is a bluesky document name, ``"campaign"`` (doc: ``kind`` in
:data:`CAMPAIGN_KINDS`, ``message``, ``time``, free fields) or ``"feed"`` (cumulative
``dropped`` count, or ``restarted``). ``"replay": true`` marks state re-sent to a restarted
consumer (registered, not logged again). Malformed lines are logged and skipped.

Output: one line per run start/stop (exit status), fault, suspension, resume, reconnect and
campaign start/summary appended to ``--log``; ``--hook`` (shlex-split, no shell) run with the
message as last argument and JSON on stdin (``kind``, ``message``, ``time``, ``host``, details)
for the kinds in ``--hook-on``, one at a time on a thread, with a timeout; a failing hook is
logged (:mod:`spinlight.notify_hook`). When stdin closes (acquisition ended or died) an open
campaign is summarised, pending hooks finish, and the process exits.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import shlex
import signal
import socket
import sys
import threading
import time
from typing import Any

from spinlight.instruments.errors import check_choice, check_range
from spinlight.notify_hook import HookRunner, strict_json
from spinlight.progress import format_duration

CAMPAIGN_KINDS = ("campaign_start", "campaign_end", "suspend", "resume", "fault", "reconnect",
                  "info")
HOOK_KINDS = ("run_failed", "run_aborted", "run_interrupted", "fault", "summary", "suspend",
              "resume", "reconnect", "campaign_start")
DEFAULT_HOOK_ON = ("run_failed", "run_aborted", "fault", "summary")
_TAGS = {"suspend": "SUSPENDED", "resume": "RESUMED", "reconnect": "RECONNECT", "info": "INFO",
         "campaign_start": "CAMPAIGN", "success": "RUN OK", "fail": "RUN FAILED",
         "abort": "RUN ABORTED"}
_MAX_BAD_LINES_LOGGED = 20
_FEED_LOG_INTERVAL_S = 10.0


def _short(text: Any, limit: int = 300) -> str:
    lines = str(text).strip().splitlines()
    first = lines[0] if lines else ""
    return first if len(first) <= limit else first[:limit - 1] + "…"


def _fields_text(fields: dict) -> str:
    items = [f"{k}={_short(v, 80)}" for k, v in fields.items()]
    return f" ({', '.join(items)})" if items else ""


class _Run:
    def __init__(self, start: dict):
        self.uid = str(start.get("uid", "?"))
        self.scan_id = start.get("scan_id", "?")
        self.plan_name = start.get("plan_name", "run")
        self.time = _float(start.get("time"))
        self.num_points = start.get("num_points")
        self.streams: dict[str, str] = {}                    # descriptor uid -> stream name
        self.counted: collections.Counter = collections.Counter()   # stream -> events seen
        self.label = f"scan {self.scan_id} {self.plan_name} ({self.uid[:8]})"

    def points(self, num_events: Any = None) -> int:
        """The stop document's count if given (exact even if the feed dropped events)."""
        return _points(num_events if isinstance(num_events, dict) and num_events
                       else self.counted)


def _points(counts: Any) -> int:
    """Points of the primary stream (of all streams if there is none)."""
    if not isinstance(counts, dict):
        return 0
    if "primary" in counts:
        return int(counts["primary"])
    return int(sum(v for v in counts.values() if isinstance(v, (int, float))))


def _float(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class _Tally:
    """Counters of one campaign (or of the session, when no campaign was announced)."""

    def __init__(self, name: str | None = None, start_time: float | None = None,
                 dropped_before: int = 0):
        self.name = name
        self.explicit = self.active = name is not None   # announced by campaign_start
        self.start_time = start_time
        self.last_time: float | None = start_time
        self.exits: collections.Counter = collections.Counter()
        self.points = 0
        self.faults: collections.Counter = collections.Counter()
        self.suspensions = 0
        self.dropped_before = dropped_before
        self.bad_lines = 0

    def seen(self, t: float | None) -> None:
        self.active = True
        if t is not None:
            self.start_time = t if self.start_time is None else self.start_time
            self.last_time = t if self.last_time is None else max(self.last_time, t)

    def summary(self, how: str, open_runs: list[_Run], dropped_total: int,
                reported: dict) -> dict:
        end = self.last_time if self.last_time is not None else time.time()
        start = self.start_time if self.start_time is not None else end
        points = self.points + sum(r.points() for r in open_runs)
        return {"campaign": self.name, "ended": how, "start_time": start, "end_time": end,
                "duration_s": end - start,
                "runs": {"success": self.exits["success"], "fail": self.exits["fail"],
                         "abort": self.exits["abort"], "interrupted": len(open_runs),
                         "other": sum(v for k, v in self.exits.items()
                                      if k not in ("success", "fail", "abort"))},
                "points": points, "faults": dict(self.faults), "suspensions": self.suspensions,
                "dropped": dropped_total - self.dropped_before, "malformed_lines": self.bad_lines,
                "reported": reported}


def summary_text(s: dict) -> str:
    """The one-line human summary of :meth:`_Tally.summary`'s dict."""
    runs = s["runs"]
    faults = ", ".join(f"{k}×{v}" for k, v in sorted(s["faults"].items())) or "none"
    name = f"campaign {s['campaign']!r}" if s["campaign"] else "session"
    text = (f"{name} {s['ended']} after {format_duration(s['duration_s'])}: runs "
            f"{runs['success']} ok, {runs['fail']} failed, {runs['abort']} aborted, "
            f"{runs['interrupted']} interrupted; {s['points']} points; faults: {faults}; "
            f"{s['suspensions']} suspensions")
    for count, what in ((runs["other"], "runs with another exit status"),
                        (s["dropped"], "messages dropped by the feed"),
                        (s["malformed_lines"], "malformed input lines")):
        text += f"; {count} {what}" if count else ""
    return text + _fields_text(s["reported"])


class Notifier:
    """State machine fed one input line at a time; :meth:`feed_line` never raises."""

    def __init__(self, out, hook: list[str] | None = None, *, hook_timeout_s: float = 30.0,
                 hook_on=DEFAULT_HOOK_ON, summary_path: str | None = None):
        self.out = out
        self.hooks = HookRunner(hook, hook_timeout_s, self.log)
        self.hook_on = set(hook_on)
        self.summary_path = summary_path
        self.runs: dict[str, _Run] = {}
        self.descriptors: dict[str, _Run] = {}
        self.stopped: set[str] = set()
        self.dropped = 0
        self.tally = _Tally()
        self.line_no = 0
        self._last_feed_log = -math.inf
        self._lock = threading.Lock()
        self.host = socket.gethostname()

    # -- output -------------------------------------------------------------------------
    def log(self, t: float | None, tag: str, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t if t else time.time()))
        with self._lock:  # the hook thread logs too
            try:
                self.out.write(f"{stamp}  {tag:<15} {text}\n")
                self.out.flush()
            except OSError as exc:  # e.g. disk full: keep running the hooks
                print(f"spinlight.notifier: log not written ({exc}): {tag} {text}",
                      file=sys.stderr)

    def notify(self, kind: str, t: float | None, tag: str, text: str, **details) -> None:
        self.log(t, tag, text)
        if kind in self.hook_on:
            self.hooks.submit({"kind": kind, "message": f"{tag} {text}",
                               "time": t if t else time.time(), "host": self.host, **details})

    # -- input --------------------------------------------------------------------------
    def feed_line(self, raw: bytes | str) -> None:
        self.line_no += 1
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        if not text.strip():
            return
        try:
            item = json.loads(text)
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                    or not isinstance(item.get("doc"), dict):
                raise ValueError('expected {"name": str, "doc": {...}}')
        except ValueError as exc:
            self._bad(f"{_short(exc, 120)}: {_short(text, 80)!r}")
            return
        try:
            self.handle(item["name"], item["doc"], replay=bool(item.get("replay")))
        except Exception as exc:  # noqa: BLE001 - one odd document must not end notifications
            self._bad(f"{item['name']} document not understood: {type(exc).__name__}: {exc}")

    def _bad(self, why: str) -> None:
        self.tally.bad_lines += 1
        if self.tally.bad_lines <= _MAX_BAD_LINES_LOGGED:
            self.log(None, "BAD INPUT", f"line {self.line_no}: {why}; ignored")

    def handle(self, name: str, doc: dict, *, replay: bool = False) -> None:
        handler = getattr(self, "_on_" + name, None)
        if handler is not None:   # resource, datum, ...: not needed for notifications
            handler(doc, replay)

    def _on_start(self, doc: dict, replay: bool) -> None:
        uid = str(doc["uid"])
        if uid in self.runs or uid in self.stopped:
            return  # re-sent after a consumer restart
        run = self.runs[uid] = _Run(doc)
        if replay:
            return
        self.tally.seen(run.time)
        n = run.num_points
        self.log(run.time, "RUN START", run.label + (f": {n} points planned" if n else ""))

    def _on_descriptor(self, doc: dict, replay: bool) -> None:
        run = self.runs.get(str(doc.get("run_start")))
        if run is not None:
            run.streams[str(doc["uid"])] = str(doc.get("name", "primary"))
            self.descriptors[str(doc["uid"])] = run

    def _on_event(self, doc: dict, replay: bool, n: int = 1, t: Any = None) -> None:
        run = self.descriptors.get(str(doc.get("descriptor")))
        if run is not None:
            run.counted[run.streams[str(doc.get("descriptor"))]] += n
            self.tally.seen(_float(doc.get("time") if t is None else t))

    def _on_event_page(self, doc: dict, replay: bool) -> None:
        times = doc.get("time") or [None]
        self._on_event(doc, replay, len(doc.get("seq_num") or times), times[-1])

    def _on_stop(self, doc: dict, replay: bool) -> None:
        uid = str(doc.get("run_start"))
        if uid in self.stopped:
            return
        self.stopped.add(uid)
        run = self.runs.pop(uid, None)
        for key in [k for k, r in self.descriptors.items() if r is run]:
            del self.descriptors[key]
        label = run.label if run else f"run ({uid[:8]}, start document not received)"
        status = str(doc.get("exit_status", "?"))
        t = _float(doc.get("time"))
        points = run.points(doc.get("num_events")) if run else _points(doc.get("num_events"))
        self.tally.seen(t)
        self.tally.exits[status] += 1
        self.tally.points += points
        duration = t - run.time if run and t is not None and run.time is not None else None
        reason = _short(doc.get("reason", ""))
        text = f"{label}: {status}, {points} points in {format_duration(duration)}"
        text += f": {reason}" if reason else ""
        kind = {"fail": "run_failed", "abort": "run_aborted"}.get(status, "run_" + status)
        self.notify(kind, t, _TAGS.get(status, "RUN " + status.upper()), text, run={
            "uid": uid, "scan_id": run.scan_id if run else None,
            "plan_name": run.plan_name if run else None, "exit_status": status,
            "reason": str(doc.get("reason", "")), "points": points, "duration_s": duration})

    def _on_campaign(self, doc: dict, replay: bool) -> None:
        kind = check_choice("kind", doc.get("kind"), CAMPAIGN_KINDS)
        t = _float(doc.get("time"))
        message = str(doc.get("message", ""))
        fields = {k: v for k, v in doc.items() if k not in ("kind", "message", "time")}
        if kind == "campaign_start" and not (replay and self.tally.explicit):
            if self.tally.active and not replay:
                self._summarise("interrupted by a new campaign")
            self.tally = _Tally(str(fields.get("campaign") or "(unnamed)"), t, self.dropped)
        if replay:
            return
        self.tally.seen(t)
        if kind == "campaign_end":
            self._summarise("finished", reported=fields, message=message)
        elif kind == "fault":
            fault = str(fields.get("fault", "unspecified"))
            self.tally.faults[fault] += 1
            rest = {k: v for k, v in fields.items() if k != "fault"}
            self.notify("fault", t, "FAULT", f"[{fault}] {message}{_fields_text(rest)}",
                        fault=fault, fields=fields)
        else:
            if kind == "suspend":
                self.tally.suspensions += 1
            self.notify(kind, t, _TAGS[kind], message + _fields_text(fields), fields=fields)

    def _on_feed(self, doc: dict, replay: bool) -> None:
        if "restarted" in doc:
            self.log(None, "NOTIFIER", f"consumer restarted by the feed (restart "
                     f"{doc['restarted']}); counts restart here, open runs were re-sent")
        if "dropped" in doc:
            self.dropped = max(self.dropped, int(doc["dropped"]))
            now = time.monotonic()
            if now - self._last_feed_log >= _FEED_LOG_INTERVAL_S:
                self._last_feed_log = now
                self.log(None, "FEED", f"{self.dropped} messages dropped so far "
                         "(queue full or consumer down)")

    # -- end ----------------------------------------------------------------------------
    def _summarise(self, how: str, reported: dict | None = None, message: str = "") -> None:
        open_runs = list(self.runs.values())
        summary = self.tally.summary(how, open_runs, self.dropped, reported or {})
        text = summary_text(summary) + (f" — {message}" if message else "")
        self.notify("summary", summary["end_time"], "SUMMARY", text, summary=summary)
        if self.summary_path:
            try:  # atomic: a reader never sees half a file
                tmp = self.summary_path + ".tmp"
                with open(tmp, "w", encoding="utf-8") as fh:
                    json.dump(strict_json(summary), fh, indent=1)
                os.replace(tmp, self.summary_path)
            except OSError as exc:
                self.log(None, "SUMMARY", f"cannot write {self.summary_path!r}: {exc}")
        self.tally = _Tally(dropped_before=self.dropped)

    def finish(self) -> None:
        """Input closed: mark open runs interrupted, summarise a campaign left open."""
        for run in self.runs.values():
            self.notify("run_interrupted", None, "RUN INTERRUPTED",
                        f"{run.label}: no stop document ({run.points()} points seen); "
                        "the acquisition ended or died mid-run", run={"uid": run.uid})
        if self.tally.active or self.runs:
            self._summarise("ended without campaign_end (acquisition stopped or killed?)")
        self.runs.clear()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m spinlight.notifier", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log", required=True, help="human log file (appended; folders created)")
    p.add_argument("--hook", default=None, help="command run per notification (no shell)")
    p.add_argument("--summary", default=None, help="JSON file rewritten with each summary")
    p.add_argument("--hook-timeout", type=float, default=30.0, help="s per hook call")
    p.add_argument("--hook-on", default=",".join(DEFAULT_HOOK_ON),
                   help=f"comma-separated kinds among {', '.join(HOOK_KINDS)}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    # Ctrl-C in the acquisition terminal pauses the RunEngine: it must not end notifications.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))   # still summarise (finally)
    try:
        hook = shlex.split(args.hook) if args.hook else None
        hook_on = [check_choice("--hook-on", k.strip(), HOOK_KINDS)
                   for k in args.hook_on.split(",") if k.strip()]
        check_range("--hook-timeout", args.hook_timeout, 0.01, 3600, "s")
        os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
        out = open(args.log, "a", encoding="utf-8")
    except (ValueError, OSError) as exc:
        print(f"spinlight.notifier: {exc}", file=sys.stderr)
        return 2
    notifier = Notifier(out, hook, hook_timeout_s=args.hook_timeout, hook_on=hook_on,
                        summary_path=args.summary)
    notifier.log(None, "NOTIFIER", f"started (pid {os.getpid()}); hook: "
                 f"{shlex.join(hook) if hook else 'none'} on {', '.join(hook_on) or 'nothing'}")
    try:
        for raw in sys.stdin.buffer:
            notifier.feed_line(raw)
    finally:  # also on SIGTERM: summarise, then let the last hooks finish
        notifier.finish()
        notifier.hooks.close()
        notifier.log(None, "NOTIFIER", f"input closed; exiting ({notifier.hooks.calls} "
                     "hook calls)")
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
