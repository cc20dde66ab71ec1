"""Safe state: what every plan leaves behind on success, failure and abort."""

from __future__ import annotations

import bluesky.plan_stubs as bps


def qd_safe_state(system):
    """A Quantum Design system (MPMS3 or PPMS): hold the temperature where it is and ramp the
    field to zero (in the magnet mode the plan configured: driven, or persistent on a PPMS)."""
    if system.temperature.moving:
        yield from bps.stop(system.temperature)  # the device re-targets its current value
    yield from bps.mv(system.field, 0.0)


def mpms3_safe_state(mpms3, vsm=None):
    """Stop continuous VSM logging, then :func:`qd_safe_state`."""
    if vsm is not None and vsm.continuous.get() > 0:
        yield from bps.mv(vsm.continuous, 0)
    yield from qd_safe_state(mpms3)
