"""dc magnetometry plans: ``chi_t`` (χ(T)), ``m_h`` (M(H) isotherms), ``mce_isotherms``.

Each public function validates every argument against the instrument limits *when called*,
before the RunEngine sees a message, and returns a plan (a generator of messages) that:
- puts sample metadata, ``plan_name``, ``plan_args`` and ``hints['dimensions']`` in the start
  document,
- places a checkpoint before every point (a suspended point is re-measured, not duplicated on
  disk as two different points),
- always ends in the safe state (field to zero, temperature held) through ``finalize_wrapper``,
- continues an interrupted run with ``resume_after``/``continues`` (:mod:`.resume`): only the
  points not yet measured, going straight to the next point's setpoint (a sweep's continuation
  arithmetic is in :mod:`.dc_sweep`).
"""

from __future__ import annotations

import numpy as np
import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp

from spinlight.instruments.errors import check_choice, check_range
from spinlight.instruments.mpms3 import (FIELD_APPROACH, FIELD_RANGE_OE, FIELD_RATE_OE_PER_S,
                                         MPMS3_MAGNET_MODE, TEMPERATURE_APPROACH, TEMPERATURE_RANGE_K,
                                         TEMPERATURE_RATE_K_PER_MIN, VSM_AVERAGING_S,
                                         VSM_LOG_INTERVAL_S)

from .checks import Checks
from .dc_sweep import MIN_SWEEP_K, sweep_continuation, sweep_points
from .dc_sweep import sweep_finished  # noqa: F401  (re-exported: spinlight.plans.dc API)
from .resume import blocks_left, resume_md, validate_resume
from .safety import mpms3_safe_state
from .sample import Sample, as_sample, finite_list

T_LO, T_HI = TEMPERATURE_RANGE_K
H_LO, H_HI = FIELD_RANGE_OE
#: Wall seconds between looks for a new sweep row. Rows come only while T moves, so a sweep
#: reads a row only once one is written; blocking in a trigger could wait for one that never
#: comes once the ramp has ended.
SWEEP_POLL_S = 0.02


def _configure(mpms3, vsm, *, temperature_rate, temperature_approach, field_rate, field_approach,
               magnet_mode, averaging_time_s):
    """Configuration signals (they land in the descriptors' configuration)."""
    yield from bps.mv(mpms3.temperature.rate_K_per_min, temperature_rate,
                      mpms3.temperature.approach, temperature_approach,
                      mpms3.field.rate_Oe_per_s, field_rate,
                      mpms3.field.approach, field_approach,
                      mpms3.field.magnet_mode, magnet_mode,
                      vsm.averaging_time_s, averaging_time_s)


def _validate_common(c: Checks, *, rate_K_per_min, approach, field_rate_Oe_per_s,
                     field_approach, magnet_mode, averaging_time_s) -> None:
    """Rates, approaches and averaging shared by every dc plan (keyword names = plan options)."""
    with c("rate_K_per_min"):
        check_range("rate_K_per_min", rate_K_per_min, *TEMPERATURE_RATE_K_PER_MIN, "K/min")
    with c("approach"):
        check_choice("approach", approach, set(TEMPERATURE_APPROACH))
    with c("field_rate_Oe_per_s"):
        check_range("field_rate_Oe_per_s", field_rate_Oe_per_s, *FIELD_RATE_OE_PER_S, "Oe/s")
    with c("field_approach"):
        check_choice("field_approach", field_approach, set(FIELD_APPROACH))
    with c("magnet_mode"):
        check_choice("magnet_mode", magnet_mode, set(MPMS3_MAGNET_MODE))
    with c("averaging_time_s"):
        check_range("averaging_time_s", averaging_time_s, *VSM_AVERAGING_S, "s")


def _start_md(plan_name, sample: Sample, plan_args: dict, dimension: str, num_points: int,
              md: dict | None, **extra) -> dict:
    out = {
        "plan_name": plan_name,
        "plan_args": plan_args,
        "measurement": plan_name,
        "instrument": "MPMS3",
        "sample": sample.to_md(),
        "detectors": ["vsm"],
        "motors": [dimension],
        "num_points": int(num_points),
        "hints": {"dimensions": [([dimension], "primary")]},
    }
    out.update(extra)
    out.update(md or {})
    return out


def _read_point(mpms3, vsm):
    yield from bps.checkpoint()
    yield from bps.trigger_and_read([vsm, mpms3])


def validate_chi_t(*, field_Oe, t_start_K, t_stop_K, mode, temperatures_K, n_points,
                   rate_K_per_min, log_interval_s, averaging_time_s, approach,
                   field_rate_Oe_per_s, magnet_mode, resume_after=0, continues=None,
                   resume_from_K=None) -> tuple[list[float], int]:
    """:func:`chi_t`'s argument checks, pure: ``(temperatures K, number of points)`` of the
    full plan.

    Settle mode gives every setpoint, sweep mode ``[t_start_K, t_stop_K]``. Raises
    :class:`~.checks.PlanArgumentError` listing every bad argument (option, message).
    """
    c = Checks()
    with c("mode"):
        check_choice("mode", mode, {"settle", "sweep"})
    with c("field_Oe"):
        check_range("field_Oe", field_Oe, H_LO, H_HI, "Oe")
    with c("t_start_K"):
        check_range("t_start_K", t_start_K, T_LO, T_HI, "K")
    with c("t_stop_K"):
        check_range("t_stop_K", t_stop_K, T_LO, T_HI, "K")
    _validate_common(c, rate_K_per_min=rate_K_per_min, approach=approach,
                     field_rate_Oe_per_s=field_rate_Oe_per_s, field_approach="linear",
                     magnet_mode=magnet_mode, averaging_time_s=averaging_time_s)
    temps, num_points = [], 0
    ends_ok = not c.failed("t_start_K", "t_stop_K")
    if mode == "settle":
        if temperatures_K is None:
            with c("n_points"):
                check_range("n_points", n_points, 2, 10000)
                if ends_ok:
                    temperatures_K = np.geomspace(t_start_K, t_stop_K, int(n_points))
        if temperatures_K is not None:
            with c("temperatures_K"):
                temps = finite_list("temperatures_K", temperatures_K, T_LO, T_HI, "K")
        num_points = len(temps)
    elif mode == "sweep":
        with c("log_interval_s"):
            check_range("log_interval_s", log_interval_s, *VSM_LOG_INTERVAL_S, "s")
        with c("t_stop_K"):
            if ends_ok and abs(t_stop_K - t_start_K) < MIN_SWEEP_K:
                raise ValueError(f"t_start_K={t_start_K} and t_stop_K={t_stop_K} must differ by "
                                 f"at least {MIN_SWEEP_K} K for a sweep")
        if not c.failed():
            temps = [float(t_start_K), float(t_stop_K)]
            num_points = sweep_points(t_start_K, t_stop_K, rate_K_per_min, log_interval_s)
    # a sweep's point count is nominal (rows come every ~log_interval_s): its continuation
    # is placed by the last logged temperature, resume_from_K, and resume_after is only recorded
    validate_resume(c, resume_after=resume_after, continues=continues,
                    num_points=None if mode == "sweep" and num_points else num_points)
    known = num_points > 0 and not c.failed("resume_after")   # else already reported
    continuing_sweep = known and mode == "sweep" and resume_after > 0
    with c("resume_from_K"):
        if continuing_sweep and resume_from_K is None:
            raise ValueError(f"resume_from_K is required to continue a sweep "
                             f"(resume_after={resume_after}): the temperature (K) of the last "
                             f"completed point, between t_start_K={t_start_K} and "
                             f"t_stop_K={t_stop_K}")
        if known and not continuing_sweep and resume_from_K is not None:
            raise ValueError(f"resume_from_K={resume_from_K!r} applies only to continuing a sweep "
                             "(mode='sweep' with resume_after > 0); leave it unset")
        if continuing_sweep and not c.failed():
            sweep_continuation(t_start_K=t_start_K, t_stop_K=t_stop_K,
                               rate_K_per_min=rate_K_per_min, log_interval_s=log_interval_s,
                               resume_from_K=resume_from_K)
    c.raise_if_any()
    return temps, num_points


# --------------------------------------------------------------------------------------------
def chi_t(mpms3, vsm, sample, *, field_Oe: float = 1000.0, t_start_K: float = 300.0,
          t_stop_K: float = 1.8, mode: str = "settle", temperatures_K=None, n_points: int = 40,
          rate_K_per_min: float = 2.0, log_interval_s: float = 10.0,
          averaging_time_s: float = 2.0, approach: str = "fast_settle",
          field_rate_Oe_per_s: float = 100.0, magnet_mode: str = "driven",
          resume_after: int = 0, continues: str | None = None,
          resume_from_K: float | None = None, md: dict | None = None):
    """Magnetisation vs temperature at a fixed field, for χ = M/H and χT.

    ``mode='settle'``: stabilise at each of ``temperatures_K`` (default ``n_points`` spaced
    geometrically from ``t_start_K`` to ``t_stop_K``) and measure. ``mode='sweep'``: ramp from
    ``t_start_K`` to ``t_stop_K`` at ``rate_K_per_min`` with continuous VSM every
    ``log_interval_s`` instrument seconds (MultiVu's sweep mode, ~9 s per point).

    Continuing an interrupted run (:mod:`.resume`): settle mode measures the setpoints after the
    first ``resume_after``; sweep mode needs ``resume_from_K``, the measured temperature (K) of
    the last completed point (its event's ``vsm_temperature``: the logged row's), and ramps at
    the same rate from one point's step past it to ``t_stop_K`` (:func:`sweep_continuation`);
    ``num_points`` is then the nominal count of that shorter sweep, and ``resume_after`` (any
    count >= 0: a sweep's count is nominal) is only recorded.
    """
    sample = as_sample(sample)
    temps, total = validate_chi_t(
        field_Oe=field_Oe, t_start_K=t_start_K, t_stop_K=t_stop_K, mode=mode,
        temperatures_K=temperatures_K, n_points=n_points, rate_K_per_min=rate_K_per_min,
        log_interval_s=log_interval_s, averaging_time_s=averaging_time_s, approach=approach,
        field_rate_Oe_per_s=field_rate_Oe_per_s, magnet_mode=magnet_mode,
        resume_after=resume_after, continues=continues, resume_from_K=resume_from_K)
    plan_args = {"field_Oe": field_Oe, "t_start_K": t_start_K, "t_stop_K": t_stop_K,
                 "mode": mode, "temperatures_K": [float(t) for t in temps],
                 "rate_K_per_min": rate_K_per_min, "log_interval_s": log_interval_s,
                 "averaging_time_s": averaging_time_s, "approach": approach,
                 "field_rate_Oe_per_s": field_rate_Oe_per_s, "magnet_mode": magnet_mode}
    extra = resume_md(resume_after, continues, total)
    num_points, sweep_from = total - resume_after, temps[0]
    if mode == "sweep" and resume_after:
        sweep_from, num_points = sweep_continuation(
            t_start_K=t_start_K, t_stop_K=t_stop_K, rate_K_per_min=rate_K_per_min,
            log_interval_s=log_interval_s, resume_from_K=resume_from_K)
        extra.update(resume_from_K=float(resume_from_K), sweep_from_K=sweep_from)
    start_md = _start_md("chi_t", sample, plan_args, "mpms3_temperature", num_points, md,
                         field_Oe=float(field_Oe), mode=mode, **extra)

    @bpp.run_decorator(md=start_md)
    def inner():
        yield from _configure(mpms3, vsm, temperature_rate=rate_K_per_min,
                              temperature_approach=approach, field_rate=field_rate_Oe_per_s,
                              field_approach="linear", magnet_mode=magnet_mode,
                              averaging_time_s=averaging_time_s)
        yield from bps.mv(mpms3.field, float(field_Oe))
        if mode == "settle":
            for t in temps[resume_after:]:
                yield from bps.checkpoint()
                yield from bps.mv(mpms3.temperature, t)
                yield from bps.trigger_and_read([vsm, mpms3])
            return
        yield from bps.mv(mpms3.temperature, sweep_from)
        vsm.follow_from_now()
        yield from bps.mv(vsm.continuous, float(log_interval_s))
        status = yield from bps.abs_set(mpms3.temperature, temps[1])
        while not status.done:
            if vsm.pending_rows():
                yield from _read_point(mpms3, vsm)
            else:
                yield from bps.sleep(SWEEP_POLL_S)
        yield from bps.mv(vsm.continuous, 0.0)
        while vsm.pending_rows():  # rows logged before logging stopped are data too
            yield from _read_point(mpms3, vsm)

    return bpp.finalize_wrapper(inner(), mpms3_safe_state(mpms3, vsm))


# --------------------------------------------------------------------------------------------
def full_loop(fields_Oe) -> list[float]:
    """0 → +Hmax → −Hmax → +Hmax from a list of non-negative fields (a hysteresis loop)."""
    up = sorted({abs(float(h)) for h in fields_Oe})
    down = [h for h in reversed(up)] + [-h for h in up if h > 0]
    back = [-h for h in reversed(up) if h > 0] + up
    return up + down[1:] + back[1:]


def validate_m_h(*, temperatures_K, fields_Oe, loop, field_rate_Oe_per_s, field_approach,
                 magnet_mode, rate_K_per_min, approach, averaging_time_s,
                 zero_field_between, resume_after=0,
                 continues=None) -> tuple[list[float], list[float]]:
    """:func:`m_h`'s argument checks, pure: ``(temperatures K, fields Oe)`` with the loop
    expanded; raises :class:`~.checks.PlanArgumentError` listing every bad argument."""
    c = Checks()
    temps, fields = [], []
    with c("temperatures_K"):
        temps = finite_list("temperatures_K", temperatures_K, T_LO, T_HI, "K")
    with c("fields_Oe"):
        fields = finite_list("fields_Oe", fields_Oe, H_LO, H_HI, "Oe")
    _validate_common(c, rate_K_per_min=rate_K_per_min, approach=approach,
                     field_rate_Oe_per_s=field_rate_Oe_per_s, field_approach=field_approach,
                     magnet_mode=magnet_mode, averaging_time_s=averaging_time_s)
    fields = full_loop(fields) if loop and fields else fields
    validate_resume(c, resume_after=resume_after, continues=continues,
                    num_points=len(temps) * len(fields))
    c.raise_if_any()
    return temps, fields


def m_h(mpms3, vsm, sample, *, temperatures_K, fields_Oe, loop: bool = False,
        field_rate_Oe_per_s: float = 100.0, field_approach: str = "linear",
        magnet_mode: str = "driven", rate_K_per_min: float = 5.0,
        approach: str = "fast_settle", averaging_time_s: float = 2.0,
        zero_field_between: bool = True, resume_after: int = 0,
        continues: str | None = None, md: dict | None = None, _plan_name: str = "m_h",
        _extra_md: dict | None = None):
    """M(H) isotherms: for each temperature, measure at every field of ``fields_Oe``.

    ``loop=True`` turns a non-negative field list into a full loop 0 → +H → −H → +H.
    With ``zero_field_between`` the field returns to zero before each temperature change.

    A continuation (:mod:`.resume`) entering an isotherm in the middle sets that isotherm's
    temperature and goes straight to the next field (no zero-field excursion: the temperature
    does not change within an isotherm). Magnetic history is not replayed: after an
    interruption the branch of a loop continues from wherever the safe state left the field.
    """
    sample = as_sample(sample)
    temps, fields = validate_m_h(
        temperatures_K=temperatures_K, fields_Oe=fields_Oe, loop=loop,
        field_rate_Oe_per_s=field_rate_Oe_per_s, field_approach=field_approach,
        magnet_mode=magnet_mode, rate_K_per_min=rate_K_per_min, approach=approach,
        averaging_time_s=averaging_time_s, zero_field_between=zero_field_between,
        resume_after=resume_after, continues=continues)
    total = len(temps) * len(fields)
    plan_args = {"temperatures_K": temps, "fields_Oe": fields, "loop": bool(loop),
                 "field_rate_Oe_per_s": field_rate_Oe_per_s, "field_approach": field_approach,
                 "magnet_mode": magnet_mode, "rate_K_per_min": rate_K_per_min,
                 "approach": approach, "averaging_time_s": averaging_time_s,
                 "zero_field_between": bool(zero_field_between)}
    start_md = _start_md(_plan_name, sample, plan_args, "mpms3_field", total - resume_after, md,
                         **(_extra_md or {}), **resume_md(resume_after, continues, total))

    @bpp.run_decorator(md=start_md)
    def inner():
        yield from _configure(mpms3, vsm, temperature_rate=rate_K_per_min,
                              temperature_approach=approach, field_rate=field_rate_Oe_per_s,
                              field_approach=field_approach, magnet_mode=magnet_mode,
                              averaging_time_s=averaging_time_s)
        for i, first in blocks_left([len(fields)] * len(temps), resume_after):
            yield from bps.checkpoint()
            if zero_field_between and first == 0:
                yield from bps.mv(mpms3.field, 0.0)
            yield from bps.mv(mpms3.temperature, temps[i])
            for h in fields[first:]:
                yield from bps.checkpoint()
                yield from bps.mv(mpms3.field, h)
                yield from bps.trigger_and_read([vsm, mpms3])

    return bpp.finalize_wrapper(inner(), mpms3_safe_state(mpms3, vsm))


def mce_field_grid(max_field_Oe: float = 50000.0, n_low: int = 6, step_Oe: float = 2500.0) -> list[float]:
    """Fields for the Maxwell relation: dense below 1 T where M(H) bends, then even steps."""
    check_range("max_field_Oe", max_field_Oe, 1000.0, H_HI, "Oe")
    low = list(np.linspace(0.0, min(10000.0, max_field_Oe), n_low))
    high = list(np.arange(low[-1] + step_Oe, max_field_Oe + 1e-6, step_Oe))
    return [float(h) for h in low + high]


def validate_mce_isotherms(*, temperatures_K, max_field_Oe, fields_Oe, resume_after=0,
                           continues=None, **m_h_settings) -> tuple[list[float], list[float]]:
    """:func:`mce_isotherms`' own checks, pure: ``(sorted temperatures K, fields Oe)``.

    ``m_h_settings`` (rates, approaches, magnet mode, averaging: the options the plan passes on
    to :func:`m_h`), when given, are checked as :func:`m_h` checks them, so one call covers every
    option of the plan. Raises :class:`~.checks.PlanArgumentError` listing every bad argument.
    """
    c = Checks()
    temps, fields = [], []
    with c("max_field_Oe" if fields_Oe is None else "fields_Oe"):
        if fields_Oe is None:
            fields = mce_field_grid(max_field_Oe)
        else:
            fields = finite_list("fields_Oe", fields_Oe, H_LO, H_HI, "Oe")
        for i, h in enumerate(fields):
            if h < 0:
                raise ValueError(f"fields_Oe[{i}]={h:g} Oe is negative; MCE isotherms need "
                                 f"fields in 0..{H_HI:g} Oe")
    with c("temperatures_K"):
        temps = sorted(finite_list("temperatures_K", temperatures_K, T_LO, T_HI, "K"))
        if len(temps) < 2:
            raise ValueError(f"temperatures_K={temperatures_K!r}: the Maxwell relation needs at "
                             f"least 2 isotherms ({T_LO}..{T_HI} K)")
    if m_h_settings:
        _validate_common(c, **m_h_settings)
    validate_resume(c, resume_after=resume_after, continues=continues,
                    num_points=len(temps) * len(fields))
    c.raise_if_any()
    return temps, fields


def mce_isotherms(mpms3, vsm, sample, *, temperatures_K=(1.8, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 15, 18, 21),
                  max_field_Oe: float = 50000.0, fields_Oe=None, resume_after: int = 0,
                  continues: str | None = None, md: dict | None = None, **kwargs):
    """The M(H) isotherm set for the magnetocaloric effect (Maxwell relation).

    Isotherms run from zero field up to ``max_field_Oe``, from the lowest temperature upwards,
    with the field back at zero between temperatures; the analysis groups them by setpoint.
    ``resume_after``/``continues`` continue an interrupted set as :func:`m_h` does.
    """
    temps, fields = validate_mce_isotherms(temperatures_K=temperatures_K,
                                           max_field_Oe=max_field_Oe, fields_Oe=fields_Oe,
                                           resume_after=resume_after, continues=continues)
    return m_h(mpms3, vsm, sample, temperatures_K=temps, fields_Oe=fields, loop=False,
               zero_field_between=True, resume_after=resume_after, continues=continues,
               md=md, _plan_name="mce_isotherms",
               _extra_md={"delta_b_T": [max(fields) / 1e4]}, **kwargs)
