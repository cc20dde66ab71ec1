"""The fault kinds of :mod:`.faults`: their parameters, validation, and the cryostat hook.

Kept apart from the injector so the instrument simulators import only this (the table of
what each kind does, as a client sees it, is in :mod:`.faults`).
"""

from __future__ import annotations

from typing import Mapping

from .dynamics import LimitError

# -- what each kind takes ----------------------------------------------------------------------
#: kind -> (needs a duration, {param: (low, high, default) or tuple of choices (first = default)})
KINDS: dict[str, tuple[bool, dict]] = {
    "helium_low": (True, {"percent": (0.0, 100.0, None), "refill_percent": (0.0, 100.0, 80.0)}),
    "temperature_excursion": (True, {"delta_K": (-100.0, 100.0, None)}),
    "quench": (False, {"state": ("quench", "current_error")}),
    "laser_interlock": (True, {}),
    "disconnect": (True, {}),
    "garbled": (False, {"count": (1, 10000, 1)}),
    "timeout": (False, {"count": (1, 10000, 1)}),
}
PHYSICAL_KINDS = ("helium_low", "temperature_excursion", "quench")
WIRE_KINDS = ("disconnect", "garbled", "timeout")
MAX_DURATION_S = 30 * 86400.0
MAX_RATE_PER_H = 3600.0


def number(name: str, value, low: float, high: float, unit: str = "") -> float:
    """``value`` as a float within ``low..high``, else a LimitError naming ``name``."""
    allowed = f"{low:g}..{high:g} {unit}".rstrip()
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise LimitError(name, value, allowed) from None
    if isinstance(value, bool) or not low <= v <= high:
        raise LimitError(name, value, allowed)
    return v


def check_fault(kind: str, duration_s, params: Mapping) -> tuple[float, dict]:
    """Validate one fault's kind, duration (s) and params; returns them normalised (defaults
    filled). Errors name the parameter, the value and what is allowed."""
    if kind not in KINDS:
        raise LimitError("kind", kind, f"one of {sorted(KINDS)}")
    timed, spec = KINDS[kind]
    if timed:
        d = number("duration_s", duration_s, 0.0, MAX_DURATION_S, "s")
        if d <= 0:
            raise LimitError("duration_s", duration_s, f"> 0 s for {kind}")
    elif duration_s not in (0, 0.0, None):
        raise LimitError("duration_s", duration_s, f"0 for {kind} (it has no duration)")
    else:
        d = 0.0
    if not isinstance(params, Mapping):
        raise LimitError("params", params, "a mapping of parameter names to values")
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise LimitError(f"{kind} param", unknown[0], f"one of {sorted(spec)}")
    out = {}
    for name, rule in spec.items():
        value = params.get(name)
        if isinstance(rule[0], str):                          # a choice, first is default
            out[name] = rule[0] if value is None else value
            if out[name] not in rule:
                raise LimitError(name, value, f"one of {list(rule)}")
            continue
        low, high, default = rule
        if value is None:
            if default is None:
                raise LimitError(name, None, f"{low:g}..{high:g} (required for {kind})")
            value = default
        out[name] = number(name, value, low, high)
        if name == "count":
            if out[name] != int(out[name]):
                raise LimitError(name, value, f"a whole number {low}..{high}")
            out[name] = int(out[name])
    if kind == "temperature_excursion" and out["delta_K"] == 0:
        raise LimitError("delta_K", params.get("delta_K"), "non-zero, -100..100 K")
    return d, out


class CryostatFaults:
    """``inject_fault`` for a QD simulator with ``clock``, ``lock``, ``temperature``,
    ``magnet`` (and ``helium`` when ``"helium_low"`` is in its :attr:`FAULT_KINDS`)."""

    FAULT_KINDS: tuple = ("temperature_excursion", "quench")
    #: quench ``state`` param -> the front end's magnet state code.
    QUENCH_CODES: dict = {}

    def inject_fault(self, kind: str, *, at: float | None = None, duration_s: float = 0.0,
                     **params) -> float:
        """Schedule a physical fault at instrument time ``at`` (Unix s; default and minimum:
        now) for ``duration_s``; returns the time used. See :mod:`.faults` for the kinds."""
        if kind not in self.FAULT_KINDS:
            raise LimitError("kind", kind, f"one of {list(self.FAULT_KINDS)} on this instrument")
        d, p = check_fault(kind, duration_s, params)
        with self.lock:
            now = self.clock.now()
            t = now if at is None else max(float(at), now)   # never rewrite the past
            if kind == "temperature_excursion":
                self.temperature.add_excursion(t, t + d, p["delta_K"])
            elif kind == "quench":
                self.magnet.quench(t, self.QUENCH_CODES[p["state"]])
            else:
                self.helium.schedule(t, p["percent"])
                self.helium.schedule(t + d, p["refill_percent"])
        self.clock.notify()
        return t
