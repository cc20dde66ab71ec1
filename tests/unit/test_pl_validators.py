"""The photoluminescence plans' pure validators (``spinlight.plans.pl_checks``): every kind of bad
value is refused naming parameter, value and range, all at once; the defaults pass; the
connected limits are the ones used; and a plan on a connected simulated PL bench refuses bad
options with exactly the problems its validator reports before anything is connected (what
``spinlight check`` shows)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from spinlight.demo_pl import connect_pl
from spinlight.instruments.laser import LIFETIME_PERIODS
from spinlight.plans import Sample
from spinlight.plans import pl_checks as checks
from spinlight.plans.checks import PlanArgumentError
from spinlight.plans.lifetime import instrument_response, lifetime_decay
from spinlight.plans.pl import emission_spectrum, excitation_spectrum
from spinlight.simulators.lab import SimulatedLab
from spinlight.simulators.samples.decay_physics import NirPmt

SAMPLE = Sample(name="mCB-Nd", mass_mg=5.0, molar_mass_g_per_mol=2589.0, ions={"Nd": 3})

#: plan -> (its validator, the plan's required options, and the bench devices it takes)
PLANS = {
    "emission_spectrum": (emission_spectrum, checks.validate_emission_spectrum,
                          dict(excitation_nm=330.0, start_nm=1020.0, stop_nm=1100.0, step_nm=4.0),
                          ("fl",)),
    "excitation_spectrum": (excitation_spectrum, checks.validate_excitation_spectrum,
                            dict(emission_nm=1060.0, start_nm=280.0, stop_nm=600.0, step_nm=10.0),
                            ("fl",)),
    "instrument_response": (instrument_response, checks.validate_instrument_response,
                            dict(expected_lifetime_ns=134.0), ("fl", "laser", "tcspc")),
    "lifetime_decay": (lifetime_decay, checks.validate_lifetime_decay,
                       dict(emission_nm=1060.0, expected_lifetime_ns=134.0),
                       ("fl", "laser", "tcspc")),
}


def options(plan_name: str, **bad) -> dict:
    """Every keyword option of the plan: its own defaults (read from its signature, so they
    cannot drift), the required ones from :data:`PLANS`, then ``bad``."""
    plan, _, required, _ = PLANS[plan_name]
    defaults = {p.name: p.default for p in inspect.signature(plan).parameters.values()
                if p.kind is p.KEYWORD_ONLY and p.default is not p.empty
                and p.name not in ("laser", "md")}
    return {**defaults, **required, **bad}


def problems(plan_name: str, **bad) -> list[tuple[str, str]]:
    """The validator's problems (widest-bench limits) for the plan's options with ``bad``."""
    with pytest.raises(PlanArgumentError) as err:
        PLANS[plan_name][1](**options(plan_name, **bad))
    return err.value.problems


# (plan, bad options, [(option, fragments of its message)]): every kind of bad value
BAD = [
    ("emission_spectrum", dict(excitation_nm=1200.0),
     [("excitation_nm", ["excitation_nm=1200.0 nm (Xe lamp)", "range 230.0..1000.0"])]),
    ("emission_spectrum", dict(excitation_nm="uv"),
     [("excitation_nm", ["excitation_nm='uv' is not a number", "230.0..1000.0"])]),
    ("emission_spectrum", dict(start_nm=-5.0, stop_nm=3000.0),
     [("start_nm", ["start_nm=-5.0 nm (emission monochromator)", "0.0..2800.0"]),
      ("stop_nm", ["stop_nm=3000.0 nm", "0.0..2800.0"])]),
    ("emission_spectrum", dict(step_nm=0.001),
     [("step_nm", ["step_nm=0.001 nm gives 80001 points", "at most 20001", "step >= 0.004 nm"])]),
    ("emission_spectrum", dict(step_nm=0.0), [("step_nm", ["step_nm=0.0 nm", "0.001..2800.0"])]),
    ("emission_spectrum", dict(gate_s=0.0, excitation_slit_um=5.0, emission_slit_um=4000.0),
     [("gate_s", ["gate_s=0.0 s", "0.001..100.0 s"]),
      ("excitation_slit_um", ["excitation_slit_um=5.0 um", "10.0..3000.0 um"]),
      ("emission_slit_um", ["emission_slit_um=4000.0 um", "10.0..3000.0 um"])]),
    ("emission_spectrum", dict(resume_after=21),
     [("resume_after", ["resume_after=21", "allowed range 0..20"])]),
    ("emission_spectrum", dict(resume_after=1.5, continues=""),
     [("continues", ["continues=''", "uid of the interrupted run"]),
      ("resume_after", ["resume_after=1.5 must be a whole number", "0..20"])]),
    ("excitation_spectrum", dict(emission_nm=3000.0),
     [("emission_nm", ["emission_nm=3000.0 nm (emission monochromator)", "0.0..2800.0"])]),
    ("excitation_spectrum", dict(start_nm=200.0, step_nm=-1.0),
     [("start_nm", ["start_nm=200.0 nm (Xe lamp and excitation monochromator)",
                    "230.0..1000.0"])]),
    ("excitation_spectrum", dict(step_nm=-1.0), [("step_nm", ["step_nm=-1.0 nm", "0.001..770.0"])]),
    ("instrument_response", dict(peak_counts=10.0, channels=1000),
     [("peak_counts", ["peak_counts=10.0 counts", "100.0..100000000.0"]),
      ("channels", ["channels=1000 is not allowed", "1024, 2048, 4096"])]),
    ("instrument_response", dict(repetition_rate_hz=5e6),
     [("repetition_rate_hz", ["repetition_rate_hz=5000000.0 Hz is outside the allowed range "
                              "1..1493000 Hz (the laser's limits, and 5 x the longest expected "
                              "lifetime 134 ns per period)"])]),
    ("instrument_response", dict(expected_lifetime_ns=[134.0, -1.0]),
     [("expected_lifetime_ns", ["expected_lifetime_ns[1]=-1.0 ns", "0.01..1000000.0 ns"])]),
    ("instrument_response", dict(max_acquisition_s=0.0, preview_s=100.0, intensity_permille=0,
                                 continues=5),
     [("max_acquisition_s", ["max_acquisition_s=0.0 s", "0.01..360000.0 s"]),
      ("preview_s", ["preview_s=100.0 s", "0.01..60.0 s"]),
      ("intensity_permille", ["intensity_permille=0 per mille", "1..1000"]),
      ("continues", ["continues=5 must be the uid"])]),
    ("lifetime_decay", dict(emission_nm=3000.0, n_exp=4, irf=""),
     [("emission_nm", ["emission_nm=3000.0 nm (emission monochromator)", "0.0..2800.0"]),
      ("n_exp", ["n_exp=4 is not allowed; choose one of [1, 2, 3]"]),
      ("irf", ["irf=''", "'measure', an IRF run uid or None"])]),
    ("lifetime_decay", dict(irf=7), [("irf", ["irf=7 must be 'measure'"])]),
    ("lifetime_decay", dict(expected_lifetime_ns=608.0, repetition_rate_hz=5e6,
                            max_count_fraction=0.2, emission_slit_um=1.0),
     [("max_count_fraction", ["max_count_fraction=0.2", "0.0001..0.05"]),
      ("emission_slit_um", ["emission_slit_um=1.0 um", "10.0..3000.0"]),
      ("repetition_rate_hz", ["repetition_rate_hz=5000000.0 Hz", "range 1..328900 Hz ("])]),
    # the emission monochromator reaches 600 nm, the NIR-PMT does not respond there
    ("lifetime_decay", dict(emission_nm=600.0),
     [("emission_nm", ["emission_nm=600.0 nm is outside the allowed ranges 300..450, 950..1700 "
                       "nm (detector sensitive ranges)"])]),
    ("lifetime_decay", dict(n_exp=1.5),
     [("n_exp", ["n_exp=1.5 is not allowed; choose one of [1, 2, 3]"])]),
    ("lifetime_decay", dict(n_exp=True), [("n_exp", ["n_exp=True is not allowed"])]),
    ("lifetime_decay", dict(expected_lifetime_ns=2.0e6),
     [("expected_lifetime_ns", ["expected_lifetime_ns[0]=2000000.0 ns", "0.01..1000000.0"])]),
]


@pytest.mark.parametrize("plan_name, bad, expected", BAD,
                         ids=[f"{p}-{'+'.join(b)}" for p, b, _ in BAD])
def test_each_bad_value_is_refused_naming_parameter_value_and_range(plan_name, bad, expected):
    got = problems(plan_name, **bad)
    assert [o for o, _ in got] == [o for o, _ in expected]        # all of them, nothing else
    for (_, message), (option, fragments) in zip(got, expected):
        for fragment in fragments:
            assert fragment in message, f"{fragment!r} not in {option}: {message!r}"


def test_several_bad_values_are_reported_together_in_one_error():
    with pytest.raises(PlanArgumentError) as err:
        checks.validate_lifetime_decay(**options("lifetime_decay", emission_nm=-1.0,
                                                 peak_counts=1e9, channels=3, n_exp=0,
                                                 continues=""))
    assert [o for o, _ in err.value.problems] == ["emission_nm", "n_exp", "peak_counts",
                                                  "channels", "continues"]
    assert str(err.value) == "; ".join(m for _, m in err.value.problems)
    assert "peak_counts=1000000000.0 counts is outside" in str(err.value)


@pytest.mark.parametrize("plan_name", list(PLANS))
def test_the_plan_defaults_are_accepted(plan_name):
    assert PLANS[plan_name][1](**options(plan_name))


def test_validators_return_what_the_plans_use():
    em = checks.validate_emission_spectrum(**options("emission_spectrum", start_nm=1100.0,
                                                     stop_nm=1020.0, step_nm=40.0))
    assert em == [1100.0, 1060.0, 1020.0]                         # descending scans too
    ex = checks.validate_excitation_spectrum(**options("excitation_spectrum"))
    assert ex[0] == 280.0 and ex[-1] == 600.0 and len(ex) == 33
    irf = checks.validate_instrument_response(**options("instrument_response"))
    s = irf.settings
    assert irf.n_exp == 1 and irf.expected_lifetime_ns == [134.0]
    assert s.repetition_rate_hz <= 1e9 / (LIFETIME_PERIODS * 134.0)       # 5 lifetimes per period
    assert s.window_ns >= 1e9 / s.repetition_rate_hz and s.channels == 4096
    assert irf.options == {"peak_counts": 1e4, "max_acquisition_s": 600.0,
                           "max_count_fraction": 0.05, "preview_s": 0.2,
                           "emission_slit_um": 500.0, "intensity_permille": 100}
    decay = checks.validate_lifetime_decay(**options("lifetime_decay",
                                                     expected_lifetime_ns=[134.0, 608.0]))
    assert decay.n_exp == 2 and decay.settings.longest_lifetime_ns == 608.0
    assert checks.validate_lifetime_decay(**options("lifetime_decay", n_exp=1)).n_exp == 1


def test_given_instrument_limits_replace_the_widest_benchs():
    # a 1200 g/mm excitation grating whose range ends at 700 nm, inside the lamp's
    with pytest.raises(PlanArgumentError, match=r"stop_nm=800.0 nm .*230.0\.\.700\.0"):
        checks.validate_excitation_spectrum(**options("excitation_spectrum", stop_nm=800.0),
                                            excitation_range_nm=(0.0, 700.0))
    with pytest.raises(PlanArgumentError, match=r"excitation_nm=900.0 nm \(excitation mono"):
        checks.validate_emission_spectrum(**options("emission_spectrum", excitation_nm=900.0),
                                          excitation_range_nm=(0.0, 700.0))
    # a slower laser: 1 MHz is too fast for 134 ns at 10 lifetimes per period
    rate = options("instrument_response", repetition_rate_hz=1e6)
    assert checks.validate_instrument_response(**rate).settings.repetition_rate_hz == 1_000_000
    with pytest.raises(PlanArgumentError, match=r"repetition_rate_hz=1000000.0 Hz.*10 x"):
        checks.validate_instrument_response(**rate, lifetime_periods=10.0)
    # too few binning steps: a 1 ms period cannot fit 1024 channels
    with pytest.raises(PlanArgumentError) as err:
        checks.validate_lifetime_decay(**options("lifetime_decay", expected_lifetime_ns=1.0e5,
                                                 channels=1024), binsteps=4)
    assert err.value.problems[0][0] == "expected_lifetime_ns"
    assert "does not fit 1024 channels at the coarsest binning" in err.value.problems[0][1]
    # the IRF is measured at the laser wavelength: the emission monochromator must reach it
    with pytest.raises(PlanArgumentError, match=r"laser wavelength_nm=3000.0 nm"):
        checks.validate_instrument_response(**options("instrument_response"),
                                            laser_wavelength_nm=3000.0)
    with pytest.raises(PlanArgumentError) as err:
        checks.validate_lifetime_decay(**options("lifetime_decay"), laser_wavelength_nm=3000.0)
    assert [o for o, _ in err.value.problems] == ["laser_wavelength_nm"]
    assert checks.validate_lifetime_decay(**options("lifetime_decay", irf=None),
                                          laser_wavelength_nm=3000.0)   # no IRF measured


# ----------------------------------------------------------- plan and validator agree
@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    with SimulatedLab(speed=20000, seed=3, sample="mCB-Nd",
                      data_dir=tmp_path_factory.mktemp("sim")) as lab:
        fl, tcspc, laser = connect_pl(lab.endpoints["pl"])
        try:
            yield {"fl": fl, "laser": laser, "tcspc": tcspc, "lab": lab}
        finally:
            for dev in (fl, tcspc, laser):
                dev.close()


def call_plan(bench, plan_name: str, **bad):
    plan, _, _, devices = PLANS[plan_name]
    return plan(*(bench[d] for d in devices), SAMPLE, **options(plan_name, **bad))


def test_the_connected_bench_lies_inside_the_widest_bench(bench):
    spectra = checks.spectrum_limits(bench["fl"])
    decay = checks.decay_limits(bench["fl"], bench["laser"], bench["tcspc"])
    for lo, hi in (spectra["excitation_range_nm"], spectra["emission_range_nm"],
                   decay["emission_range_nm"]):
        assert checks.MONO_RANGE_NM[0] <= lo < hi <= checks.MONO_RANGE_NM[1]
    lo, hi = decay["laser_limits_hz"]
    assert checks.LASER_RANGE_HZ[0] <= lo < hi <= checks.LASER_RANGE_HZ[1]
    assert decay["base_resolution_ps"] >= checks.HARP_BASE_RESOLUTION_PS
    assert decay["laser_wavelength_nm"] == pytest.approx(375.0, abs=10.0)
    assert decay["lifetime_periods"] == LIFETIME_PERIODS
    # the detector ranges the plans check: where the simulated NIR-PMT responds, 600 nm not
    assert decay["detector_ranges_nm"] == checks.NIR_PMT_RANGES_NM
    pmt = NirPmt()
    for lo, hi in decay["detector_ranges_nm"]:
        assert np.all(pmt.quantum_efficiency(np.linspace(lo, hi, 50)[:-1]) > 0)
    assert pmt.quantum_efficiency(600.0) == 0


@pytest.mark.parametrize("plan_name, bad, expected", BAD,
                         ids=[f"{p}-{'+'.join(b)}" for p, b, _ in BAD])
def test_the_plan_on_a_connected_bench_refuses_with_its_validators_problems(bench, plan_name, bad,
                                                                          expected):
    pl = bench["lab"].pl
    before = (pl.emission.wavelength_nm, pl.excitation.wavelength_nm, pl.housing.holder)
    with pytest.raises(PlanArgumentError) as err:
        call_plan(bench, plan_name, **bad)
    assert err.value.problems == problems(plan_name, **bad)      # what `spinlight check` says
    assert str(err.value) == "; ".join(m for _, m in err.value.problems)
    assert (pl.emission.wavelength_nm, pl.excitation.wavelength_nm, pl.housing.holder) == before
    assert pl.laser.snapshot().soft_locked


@pytest.mark.parametrize("plan_name", list(PLANS))
def test_the_plan_accepts_its_defaults_on_the_connected_bench(bench, plan_name):
    assert inspect.isgenerator(call_plan(bench, plan_name))     # made, not run


def test_the_plan_checks_against_the_connected_laser(bench):
    laser = bench["laser"]
    bad = dict(expected_lifetime_ns=134.0, repetition_rate_hz=1e6)
    assert call_plan(bench, "lifetime_decay", **bad)          # 1 MHz: 7.5 lifetimes per period
    laser.lifetime_periods.put(10.0)
    try:
        with pytest.raises(PlanArgumentError) as plan_err:
            call_plan(bench, "lifetime_decay", **bad)
    finally:
        laser.lifetime_periods.put(LIFETIME_PERIODS)
    with pytest.raises(PlanArgumentError) as err:
        checks.validate_lifetime_decay(**options("lifetime_decay", **bad), lifetime_periods=10.0)
    assert plan_err.value.problems == err.value.problems
    assert "10 x the longest expected lifetime 134 ns" in str(plan_err.value)


def test_the_plan_checks_against_the_connected_grating(bench):
    fl = bench["fl"]
    longer = dict(stop_nm=1500.0)
    assert checks.validate_emission_spectrum(**options("emission_spectrum", **longer))
    fl.emission.driver.select_grating(2)                    # 1200 g/mm: 0..1400 nm
    try:
        with pytest.raises(PlanArgumentError) as plan_err:
            call_plan(bench, "emission_spectrum", **longer)
        limits = checks.spectrum_limits(fl)
    finally:
        fl.emission.driver.select_grating(1)
    assert limits["emission_range_nm"] == (0.0, 1400.0)
    with pytest.raises(PlanArgumentError) as err:
        checks.validate_emission_spectrum(**options("emission_spectrum", **longer), **limits)
    assert plan_err.value.problems == err.value.problems == [
        ("stop_nm", "stop_nm=1500.0 nm (emission monochromator) is outside the allowed range "
                    "0.0..1400.0 nm (emission monochromator)")]
