"""One progress bar for a whole campaign: measurement k/N, points done/total, elapsed and
remaining *instrument* time.

Totals come from the rehearsal (:mod:`spinlight.campaign_estimate`): points = estimated events
of the measurements still to run; remaining = the estimates of the measurements not started +
what is left of the current one's (estimate − elapsed, never below 0). Elapsed is instrument
time (the simulated lab's virtual clock, or the wall clock on real instruments) from the
runner's ``now``. Without an estimate the bar counts points and elapsed time only. Like
:class:`spinlight.progress.ProgressCallback` (whose ``format_duration`` it uses) it never
raises into the RunEngine.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable

from .progress import format_duration

logger = logging.getLogger(__name__)


class CampaignProgress:
    """RunEngine callback ``(name, doc)`` plus :meth:`begin` / :meth:`end` per measurement.

    ``estimates``: ``{index: MeasurementEstimate}`` of the measurements to run (or None);
    ``now()``: instrument time (s); ``count``: measurements in the campaign."""

    def __init__(self, estimates: dict | None, count: int, now: Callable[[], float], *,
                 file=None):
        from tqdm import tqdm

        self.estimates, self.count, self.now = estimates, count, now
        self.done_s = 0.0
        self.current = None           # (index, t0, estimated seconds)
        self._expected = self._seen = 0   # points of the current measurement
        self.left = dict(estimates or {})
        total = sum(e.points for e in self.left.values()) if estimates else None
        self.bar = tqdm(total=total or None, unit="pt", file=file or sys.stderr,
                        dynamic_ncols=True, mininterval=0, leave=True,
                        bar_format="{desc}: {n_fmt}/{total_fmt} pts{postfix} |{bar}|" if total
                        else "{desc}: {n_fmt} pts{postfix}")

    def elapsed(self) -> float:
        return self.done_s + (self.now() - self.current[1] if self.current else 0.0)

    def remaining(self) -> float | None:
        if self.estimates is None:
            return None
        rest = sum(e.instrument_s for e in self.left.values())
        if self.current:
            rest += max(self.current[2] - (self.now() - self.current[1]), 0.0)
        return rest

    def postfix(self) -> str:
        text = f"instrument {format_duration(self.elapsed())}"
        remaining = self.remaining()
        return text + (f", remaining {format_duration(remaining)}" if remaining is not None else "")

    def begin(self, spec, t0: float) -> None:
        est = self.left.pop(spec.index, None)
        self.current = (spec.index, t0, est.instrument_s if est else 0.0)
        self._expected = est.points if est else 0
        self._seen = 0
        self.bar.set_description_str(f"[{spec.index + 1}/{self.count}] {spec.plan} {spec.sample}",
                                     refresh=False)
        self._refresh()

    def end(self, instrument_s: float) -> None:
        """The current measurement took ``instrument_s``; points it did not take (failure,
        abort) leave the total, so the bar stays true."""
        self.done_s += instrument_s
        if self.current and self.bar.total and self._seen < self._expected:
            self.bar.total -= self._expected - self._seen
        self.current = None
        self._refresh()

    def __call__(self, name: str, doc: dict) -> None:
        try:
            n = 1 if name == "event" else len(doc.get("seq_num", ())) if name == "event_page" \
                else 0
            if n:
                self._seen += n
                if self.bar.total is not None and self.bar.n + n > self.bar.total:
                    self.bar.total = self.bar.n + n     # more points than rehearsed
                self.bar.update(n)
                self._refresh()
        except Exception:  # noqa: BLE001 - a progress bar must never stop a measurement
            logger.exception("campaign progress bar error (ignored)")

    def _refresh(self) -> None:
        self.bar.set_postfix_str(self.postfix(), refresh=True)

    def write(self, text: str) -> None:
        """A line above the bar."""
        self.bar.write(text, file=self.bar.fp)

    def close(self) -> None:
        self.bar.close()
