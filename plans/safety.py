"""Safe state: what every plan leaves behind on success, failure and abort."""

from __future__ import annotations

import bluesky.plan_stubs as bps


def mpms3_safe_state(mpms3, vsm=None):
    """Stop continuous logging, hold the temperature where it is, ramp the field to zero."""
    if vsm is not None and vsm.continuous.get() > 0:
        yield from bps.mv(vsm.continuous, 0)
    if mpms3.temperature.moving:
        yield from bps.stop(mpms3.temperature)  # the device re-targets its current value
    yield from bps.mv(mpms3.field, 0.0)

