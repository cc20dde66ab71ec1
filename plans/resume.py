"""Continuing an interrupted measurement after its first completed points.

A plan's *points* are the events of its data streams in the order the plan emits them
(``primary`` for the dc and photoluminescence plans; the ac streams ``ac_<system>`` counted
together). A *continuation* is the same plan called with the same options plus
``resume_after=N`` (the points the interrupted run stored) and ``continues=<its uid>``. It
measures exactly points ``N..`` of the full plan, in the same order and with the same per-point
metadata (setpoints, ac set index), and goes straight to point ``N``'s setpoint: the setpoints
of skipped points are never visited. Its start document carries ``continues``,
``resume_after``, ``num_points`` (the points it will measure) and ``num_points_total`` (the full
plan's); ``plan_args`` are the full plan's, so an analysis can merge the two runs.

Two kinds differ. ``chi_t`` in sweep mode logs points in time, not at setpoints: its
continuation is placed by ``resume_from_K``, the temperature of the last logged point, and ramps
from one point's step past it (``dc.sweep_continuation``). ``lifetime_decay`` and
``instrument_response`` are single-event runs: a continuation re-measures them whole, linked
by ``continues`` in its start documents (no ``resume_after``).
"""

from __future__ import annotations

import numbers


def check_resume_after(resume_after, num_points: int | None) -> int:
    """``resume_after`` as an int in ``0..num_points-1`` (a continuation measures at least one
    point), or any int >= 0 when ``num_points`` is None (a count that is only nominal, as a
    temperature sweep's); the error names it, the value and the range."""
    allowed = (f"0..{num_points - 1} (completed points of the plan's {num_points})"
               if num_points is not None else "0.. (completed points)")
    if isinstance(resume_after, bool) or not isinstance(resume_after, numbers.Integral):
        raise ValueError(f"resume_after={resume_after!r} must be a whole number of completed "
                         f"points; allowed range {allowed}")
    if resume_after < 0 or (num_points is not None and resume_after > num_points - 1):
        raise ValueError(f"resume_after={resume_after!r} is outside the allowed range {allowed}")
    return int(resume_after)


def check_continues(continues) -> str | None:
    """``continues``: None, or the (non-empty) uid of the interrupted run."""
    if continues is None:
        return None
    if not isinstance(continues, str) or not continues.strip():
        raise ValueError(f"continues={continues!r} must be the uid of the interrupted run "
                         "(a non-empty string) or None")
    return continues


def validate_resume(c, *, resume_after, continues, num_points: int | None) -> None:
    """Record problems of ``continues`` and ``resume_after`` in the :class:`~.checks.Checks`
    ``c``; ``num_points`` 0 means unknown (another option failed: ``resume_after`` is not
    checked), None unbounded (see :func:`check_resume_after`)."""
    with c("continues"):
        check_continues(continues)
    if num_points != 0:
        with c("resume_after"):
            check_resume_after(resume_after, num_points)


def resume_md(resume_after: int, continues: str | None, num_points_total: int) -> dict:
    """Start-document entries of a continuation (empty for an ordinary run)."""
    if not resume_after and continues is None:
        return {}
    return {"continues": continues, "resume_after": int(resume_after),
            "num_points_total": int(num_points_total)}


def blocks_left(block_sizes, resume_after: int) -> list[tuple[int, int]]:
    """``(block index, first point to measure in it)`` of every block that still has points,
    when blocks of ``block_sizes`` points run in order and ``resume_after`` points are done.

    A block is what shares one approach (an isotherm of ``m_h``, a (T, H) set of the ac
    plans): a partly measured block is entered at its first remaining point.
    """
    out, first = [], 0
    for i, n in enumerate(block_sizes):
        if first + n > resume_after:
            out.append((i, max(0, resume_after - first)))
        first += n
    return out
