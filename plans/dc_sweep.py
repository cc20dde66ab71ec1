"""Temperature-sweep arithmetic of ``chi_t``'s sweep mode (MultiVu logs one VSM row every
``log_interval_s`` of a ramp at ``rate_K_per_min``): the nominal point count of a sweep, where
an interrupted sweep continues (:func:`sweep_continuation`) and whether there is anything left
to continue (:func:`sweep_finished`, used by the campaign resume). Pure functions, K and s.
"""

from __future__ import annotations

from spinlight.instruments.errors import check_range

MIN_SWEEP_K = 0.1            # shortest temperature sweep (K)


def sweep_points(t_from_K, t_to_K, rate_K_per_min, log_interval_s) -> int:
    """Points a sweep logs from ``t_from_K`` to ``t_to_K``: one every ``log_interval_s`` of a
    ramp at ``rate_K_per_min``, the first at ``t_from_K``."""
    return int(abs(t_to_K - t_from_K) / rate_K_per_min * 60.0 / log_interval_s) + 1


def sweep_finished(*, t_start_K, t_stop_K, rate_K_per_min, log_interval_s,
                   resume_from_K) -> bool:
    """True when a sweep whose last stored point was logged at ``resume_from_K`` K has no
    continuation left (less than one point's step + :data:`MIN_SWEEP_K` before ``t_stop_K``):
    it holds every point it could have."""
    step = rate_K_per_min * log_interval_s / 60.0
    sign = 1.0 if t_stop_K > t_start_K else -1.0
    return sign * (t_stop_K - float(resume_from_K)) < step + MIN_SWEEP_K


def sweep_continuation(*, t_start_K, t_stop_K, rate_K_per_min, log_interval_s,
                       resume_from_K) -> tuple[float, int]:
    """``(start K, points)`` of a sweep continued after a point logged at ``resume_from_K`` K.

    The continuation ramps from the next point's nominal temperature, one log interval of ramp
    (``rate_K_per_min * log_interval_s / 60`` K) past ``resume_from_K`` towards ``t_stop_K``,
    so no temperature is logged twice; at least :data:`MIN_SWEEP_K` must be left to sweep.
    """
    step = rate_K_per_min * log_interval_s / 60.0
    sign = 1.0 if t_stop_K > t_start_K else -1.0
    if abs(t_stop_K - t_start_K) < step + MIN_SWEEP_K:
        raise ValueError(f"resume_from_K={resume_from_K!r} K: a {abs(t_stop_K - t_start_K):g} K "
                         f"sweep is shorter than one point's step ({step:.4g} K) + {MIN_SWEEP_K} K "
                         "and cannot be continued; measure it again (resume_after=0)")
    last = round(t_stop_K - sign * (step + MIN_SWEEP_K), 6)
    check_range("resume_from_K", resume_from_K, min(t_start_K, last), max(t_start_K, last),
                f"K (from t_start_K to one point's step {step:.4g} K + {MIN_SWEEP_K} K before "
                "t_stop_K)")
    t_from = float(resume_from_K) + sign * step
    return t_from, sweep_points(t_from, t_stop_K, rate_K_per_min, log_interval_s)
