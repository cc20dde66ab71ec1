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


def pl_safe_state(fluorometer, laser=None):
    """Photoluminescence bench: laser soft-locked first (light off the sample), then the lamp
    and detector shutters closed. Each step runs even if an earlier one fails; the first
    failure is raised at the end."""
    errors = []
    steps = []
    if laser is not None:
        steps.append((laser.soft_lock, True))
    steps += [(fluorometer.lamp_shutter, "closed"), (fluorometer.detector_shutter, "closed")]
    for obj, value in steps:
        try:
            yield from bps.mv(obj, value)
        except Exception as exc:     # keep going: the other parts must still be made safe
            errors.append(exc)
    if errors:
        raise errors[0]
