"""`spinlight replay RUN --sim`: a stored campaign run re-executed on simulators as a new run
linked by ``replay_of``; runs without campaign metadata replay from complete ``plan_args``."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from spinlight.campaign import load_campaign
from spinlight.campaign_run import CampaignRunner, _json_safe
from spinlight.catalog import open_catalog
from spinlight.cli import main
from spinlight.replay import ReplayError, replay_campaign_text, replay_source

CAMPAIGN = """
[campaign]
name = "to-replay"

[instruments]
mode = "sim"

[instruments.sim]
speed = 20000.0
seed = 4

[[samples]]
name = "mCB-Nd"
mass_mg = 20.0
molar_mass_g_per_mol = 2312.0
ions = { Nd = 3 }

[[measurements]]
plan = "m_h"
sample = "mCB-Nd"
temperatures_K = [2.0]
fields_Oe = [0.0, 2500.0, 5000.0]
"""


def test_replay_of_a_campaign_run_is_a_new_linked_run_with_the_same_points(tmp_path):
    path = tmp_path / "to-replay.toml"
    path.write_text(CAMPAIGN)
    result = CampaignRunner(load_campaign(path), progress=False, estimate=False).run()
    (uid,) = result.measurements[0].uids
    catalog_root = result.catalog
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["replay", uid[:8], "--data", catalog_root, "--sim", "--speed", "50000"])
    assert code == 0, out.getvalue()
    text = out.getvalue()
    (new,) = re.findall(r"^new run: (\S+)$", text, re.M)
    assert re.search(rf"^original\s+{uid[:8]}\s+m_h\s+3$", text, re.M)
    assert re.search(rf"^replay\s+{new[:8]}\s+m_h\s+3  same$", text, re.M)
    with open_catalog(catalog_root) as catalog:
        old, run = catalog.get_run(uid), catalog.get_run(new)
        start = run.metadata["start"]
        assert start["replay_of"] == uid and new != uid
        assert run.metadata["stop"]["exit_status"] == "success"
        assert catalog.num_events(run) == catalog.num_events(old) == 3
        assert start["plan_args"] == old.metadata["start"]["plan_args"]
        assert start["campaign"]["options"] == old.metadata["start"]["campaign"]["options"]
        assert start["sample"] == old.metadata["start"]["sample"]
        # the simulators of the original, recorded, and its seed reused by the replay
        assert old.metadata["start"]["campaign"]["sim"] == {"speed": 20000.0, "seed": 4,
                                                            "faults": 0}
        assert start["campaign"]["sim"] == {"speed": 50000.0, "seed": 4, "faults": 0}
        # same seed, same plan: the simulators draw the same noise, point for point
        assert list(catalog.read_primary(run)["vsm_moment"]) == \
            list(catalog.read_primary(old)["vsm_moment"])
        assert list(catalog.read_primary(run)["mpms3_field"]) == pytest.approx([0, 2500, 5000],
                                                                               abs=5.0)
        old_start = old.metadata["start"]
    # the same run without campaign metadata replays from its plan_args: same options
    plain = {k: v for k, v in old_start.items() if k != "campaign"}
    replay_file = tmp_path / "plain.toml"
    replay_file.write_text(replay_campaign_text(plain, catalog=tmp_path / "other"))
    spec = load_campaign(replay_file, sim=True).measurements[0]
    assert (spec.plan, spec.sample) == ("m_h", "mCB-Nd")
    assert _json_safe(spec.arguments()) == old_start["campaign"]["options"]

    # an unknown run reference and an unknown catalog are errors, exit status 2
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["replay", "zzzzzzzz", "--data", catalog_root, "--sim"]) == 2
        assert main(["replay", "1", "--data", str(tmp_path / "none"), "--sim"]) == 2
    assert "no run with uid starting 'zzzzzzzz'" in err.getvalue()
    assert "does not exist" in err.getvalue()


def test_runs_that_are_not_complete_plan_calls_are_refused_with_the_reason():
    with pytest.raises(ReplayError, match=r"plan_name='count' is not a campaign plan"):
        replay_source({"uid": "u1", "plan_name": "count", "plan_args": {}})
    with pytest.raises(ReplayError, match=r"unknown: fixed_nm; missing: fields_Oe"):
        replay_source({"uid": "u2", "plan_name": "m_h",
                       "plan_args": {"temperatures_K": [2.0], "fixed_nm": 500.0}})
    with pytest.raises(ReplayError, match=r"names no ac stations"):
        replay_source({"uid": "u3", "campaign": {"plan": "ac_frequency_sweep", "options": {}}})
    with pytest.raises(ReplayError, match=r"no complete sample"):
        replay_campaign_text({"uid": "u4", "plan_name": "m_h", "sample": {"name": "x"},
                              "plan_args": {"temperatures_K": [2.0], "fields_Oe": [0.0]}},
                             catalog="/tmp/c")
