"""An interrupted M(H) run on the simulated MPMS3 (real drivers, MultiPyVu over loopback, Tiled
catalog) is completed by a continuation: together the two stored runs hold every point of the
full plan exactly once, and the continuation never drove to a skipped setpoint."""

from __future__ import annotations

import numpy as np
import pytest
import bluesky.preprocessors as bpp
from bluesky.utils import Msg, RunEngineInterrupted, single_gen

from spinlight.engine import make_run_engine
from spinlight.instruments.mpms3_device import connect_mpms3
from spinlight.plans import Sample, m_h
from spinlight.simulators.lab import SimulatedLab

SAMPLE = Sample(name="mCB-Nd", mass_mg=20.0, molar_mass_g_per_mol=2361.0)
TEMPS, FIELDS = [2.0, 4.0], [0.0, 1000.0, 2000.0, 3000.0]
FULL = [(t, h) for t in TEMPS for h in FIELDS]


def pause_after(plan, k: int):
    """``plan`` with a pause requested after its k-th event (a deferred pause: the RunEngine
    stops at the checkpoint before the next point, as when an operator pauses)."""
    saved = 0

    def after_save(msg):
        nonlocal saved
        if msg.command != "save":
            return None, None
        saved += 1
        return single_gen(msg), (single_gen(Msg("pause", defer=True)) if saved == k else None)

    return bpp.plan_mutator(plan, after_save)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """The simulated MPMS3 and one RunEngine storing into a catalog (made once: slow)."""
    tmp = tmp_path_factory.mktemp("continuation")
    with SimulatedLab(speed=20000, seed=3, sample="mCB-Nd", mass_mg=20.0,
                      data_dir=tmp / "sim") as lab:
        ep = lab.endpoints["mpms3"]
        mpms3, vsm = connect_mpms3(ep["host"], ep["port"])
        RE, catalog = make_run_engine(tmp / "catalog", progress=False, context_managers=[])
        try:
            yield RE, catalog, mpms3, vsm
        finally:
            catalog.close()
            mpms3.close()


@pytest.mark.parametrize("k", [3, 4])     # inside the first isotherm / at the second's start
def test_stopped_m_h_is_completed_by_its_continuation(rig, k):
    RE, catalog, mpms3, vsm = rig
    opened = []
    token = RE.subscribe(lambda name, doc: opened.append(doc["uid"]), "start")
    with pytest.raises(RunEngineInterrupted):
        RE(pause_after(m_h(mpms3, vsm, SAMPLE, temperatures_K=TEMPS, fields_Oe=FIELDS,
                           field_rate_Oe_per_s=300), k))
    RE.unsubscribe(token)
    assert RE.state == "paused"
    RE.abort("operator stop")
    (first,) = opened
    assert catalog.run_status(catalog.get_run(first)) == "abort"
    done = catalog.read_primary(catalog.get_run(first))
    n = len(done["vsm_moment"])                 # what the runner counts in the catalog
    assert n == k

    sets = []
    RE.msg_hook = lambda msg: sets.append((msg.obj.name, msg.args[0])) \
        if msg.command == "set" and msg.obj.name in ("mpms3_field", "mpms3_temperature") else None
    try:
        (uid,) = RE(m_h(mpms3, vsm, SAMPLE, temperatures_K=TEMPS, fields_Oe=FIELDS,
                        field_rate_Oe_per_s=300, resume_after=n, continues=first))
    finally:
        RE.msg_hook = None
    run = catalog.get_run(uid)
    start = catalog.start_doc(run)
    assert start["continues"] == first and start["resume_after"] == k
    assert start["num_points"] == len(FULL) - k and start["num_points_total"] == len(FULL)
    assert catalog.run_status(run) == "success"
    rest = catalog.read_primary(run)

    def points(data):
        return list(zip(data["mpms3_temperature_setpoint"].tolist(),
                        data["mpms3_field_setpoint"].tolist()))

    both = points(done) + points(rest)
    assert both == FULL and len(set(both)) == len(FULL)       # every point once, in order
    # measured where it was meant to be, and real moments
    np.testing.assert_allclose(rest["vsm_field"], [h for _, h in FULL[k:]], atol=2.0)
    assert np.all(np.isfinite(rest["vsm_moment"]))
    # the continuation's moves, in order: straight to its first point (zero field first only
    # when that point starts an isotherm), then as the full plan from there, then the safe
    # state; the skipped points' setpoints (the first k of 2 K) are never driven to
    expected, current = [], None
    for j, (t, h) in enumerate(FULL[k:]):
        if t != current:
            if j > 0 or k % len(FIELDS) == 0:
                expected.append(("mpms3_field", 0.0))
            expected.append(("mpms3_temperature", t))
            current = t
        expected.append(("mpms3_field", h))
    assert sets == expected + [("mpms3_field", 0.0)]
