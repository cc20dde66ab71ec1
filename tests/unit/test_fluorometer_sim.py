"""Housing simulator: protocol, timing on the virtual clock, and the photon-counter physics
(lamp and laser through the monochromators, sample / scatterer / empty, PMT QE, dark counts,
saturation and overload)."""

import numpy as np
import pytest

from spinlight.simulators.acton import ActonSimulator
from spinlight.simulators.clock import VirtualClock
from spinlight.simulators.fluorometer_sim import (HOLDER_MOVE_S, REFERENCE_NOISE_FRACTION,
                                                  SHUTTER_MOVE_S, HousingSimulator, bandpass_nm,
                                                  reference_responsivity_a_per_w, slit_function,
                                                  standard_lamp_flux, xe_lamp_flux)
from spinlight.simulators.laser_sim import LaserState
from spinlight.simulators.pl_bench import EMISSION_GRATINGS, EXCITATION_GRATINGS, PLBench
from spinlight.simulators.tcspc_light import total_rate
from spinlight.simulators.samples import get_luminescence
from spinlight.simulators.samples.decay_physics import NirPmt

_PMT = NirPmt()
D0 = _PMT.dark_count_rate_cps            # NIR-PMT dark rate (cps)
DARK = D0 / (1.0 + D0 / _PMT.saturation_count_rate_cps)   # as counted (saturation included)


@pytest.fixture
def clock():
    c = VirtualClock(speed=1e5, freeze_when_idle=True)
    yield c
    c.stop()


def make(clock, sample="mCB-Nd", seed=0, laser=None):
    ex = ActonSimulator(clock, gratings=EXCITATION_GRATINGS, seed=1)
    em = ActonSimulator(clock, gratings=EMISSION_GRATINGS, seed=2)
    h = HousingSimulator(clock, excitation=ex, emission=em, model=get_luminescence(sample),
                         laser=laser, seed=seed)
    return h, ex, em


def mono(m, nm=None, slit_um=None):
    send = lambda b: None   # noqa: E731
    if nm is not None:
        m.handle(f"{nm} goto", send)
    if slit_um is not None:
        for s in ("side-ent-slit", "front-exit-slit"):
            m.handle(f"{s} {slit_um} microns", send)


def setup(h, ex, em, *, ex_nm=300.0, em_nm=1060.0, slit_um=1000, holder="SAMPLE",
          lamp="OPEN", detector="OPEN", gate=1.0):
    mono(ex, ex_nm, slit_um)
    mono(em, em_nm, slit_um)
    for cmd in (f"HOLDER {holder}", f"SHUTTER LAMP {lamp}", f"SHUTTER DETECTOR {detector}",
                f"GATE {gate}"):
        assert h.reply(cmd) == "OK"


def count(h):
    counts, flags = h.reply("COUNT?").split(",")
    return int(counts), int(flags)


def test_protocol_replies_and_errors(clock):
    h, _, _ = make(clock)
    assert h.reply("*IDN?") == f"spinlight,FT300-HOUSING,{h.serial_number},1.0"
    assert (h.reply("SHUTTER? LAMP"), h.reply("shutter? detector")) == ("CLOSED", "CLOSED")
    assert (h.reply("HOLDER?"), h.reply("GATE?"), h.reply("HV?")) == ("SAMPLE", "0.100", "ON")
    assert h.reply("GATE 2.5") == "OK" and h.reply("GATE?") == "2.500"
    assert h.reply("GATE 200") == "ERR GATE 200 s is outside the allowed range 0.001..100 s"
    assert h.reply("GATE soon") == "ERR GATE 'SOON' is not a number; allowed range 0.001..100 s"
    assert h.reply("HOLDER CUVETTE") == ("ERR HOLDER position 'CUVETTE' is not allowed; choose one "
                                         "of SAMPLE, SCATTERER, EMPTY, LAMP")
    assert h.reply("SHUTTER LAMP AJAR") == ("ERR SHUTTER state 'AJAR' is not allowed; choose one "
                                            "of OPEN, CLOSE")
    assert h.reply("SHUTTER LAMP").startswith("ERR SHUTTER takes 2 arguments")
    assert h.reply("HV MAYBE").startswith("ERR HV 'MAYBE' is not allowed; choose one of ON, OFF")
    assert h.reply("LASER ON").startswith("ERR unknown command 'LASER'; allowed: *IDN?, SHUTTER")
    assert h.reply("COUNT? NOW").startswith("ERR COUNT? takes 0 argument(s)")
    assert h.reply("GATE?") == "2.500"                      # errors changed nothing


def test_actions_take_instrument_time(clock):
    h, _, _ = make(clock)
    t0 = clock.now()
    assert h.reply("SHUTTER LAMP OPEN") == "OK"
    assert clock.now() - t0 == pytest.approx(SHUTTER_MOVE_S, abs=1e-6)
    t0 = clock.now()
    assert h.reply("HOLDER SCATTERER") == "OK" and h.holder == "SCATTERER"
    assert clock.now() - t0 == pytest.approx(HOLDER_MOVE_S, abs=1e-6)
    h.reply("GATE 3")
    t0 = clock.now()
    h.reply("COUNT?")
    assert clock.now() - t0 == pytest.approx(3.0, abs=1e-6)


def test_lamp_and_bandpass():
    lam = np.array([200.0, 230.0, 300.0, 600.0, 900.0, 1000.0])
    flux = xe_lamp_flux(lam)
    assert flux[0] < 1e-3 * flux.max() and np.all(flux[1:] > 0)      # UV cut-off of the window
    assert xe_lamp_flux(0.0) == 0.0
    assert slit_function([0.0, 2.7, 5.4, 6.0], 5.4).tolist() == [1.0, 0.5, 0.0, 0.0]


def test_bandpass_from_slit_and_grating(clock):
    _, ex, em = make(clock)
    mono(ex, slit_um=1000)
    mono(em, slit_um=2000)
    assert bandpass_nm(ex) == pytest.approx(5.4)          # 1200 g/mm, 150 mm
    assert bandpass_nm(em) == pytest.approx(21.6)         # 600 g/mm


def test_counts_scale_with_gate_and_are_reproducible(clock):
    h, ex, em = make(clock)
    setup(h, ex, em, gate=0.1)
    short, flags = count(h)
    h.reply("GATE 1")
    long, _ = count(h)
    rate, overload = h.count_rate_cps()
    assert flags == 0 and not overload and rate > 5 * DARK                 # Nd 1060 nm band
    assert abs(short - 0.1 * rate) < 5 * np.sqrt(0.1 * rate)
    assert abs(long - rate) < 5 * np.sqrt(rate)
    h2, ex2, em2 = make(clock)                                             # same seed
    setup(h2, ex2, em2, gate=0.1)
    assert count(h2)[0] == short


def test_detector_shutter_closed_gives_dark_counts_only(clock):
    h, ex, em = make(clock)
    setup(h, ex, em, detector="CLOSE", gate=10.0)
    counts, flags = count(h)
    assert flags == 2
    assert abs(counts - 10 * DARK) < 5 * np.sqrt(10 * DARK)
    h.reply("SHUTTER LAMP CLOSE")                                          # and no lamp: same
    h.reply("SHUTTER DETECTOR OPEN")
    counts, flags = count(h)
    assert flags == 0 and abs(counts - 10 * DARK) < 5 * np.sqrt(10 * DARK)


def test_overload_trips_the_high_voltage(clock):
    h, ex, em = make(clock)
    setup(h, ex, em, ex_nm=1000.0, em_nm=1000.0, holder="SCATTERER")     # NIR scatter at QE 1 %
    assert h.signal_rate_cps() > 1e6
    counts, flags = count(h)
    assert flags == 1 and h.reply("HV?") == "OFF"
    assert count(h) == (0, 4)                                              # HV off: nothing
    h.reply("HOLDER EMPTY")
    assert h.reply("HV ON") == "OK"
    counts, flags = count(h)
    assert flags == 0 and abs(counts - DARK) < 5 * np.sqrt(DARK)


def test_880_nm_band_is_invisible_and_nd_peaks_near_1060(clock):
    h, ex, em = make(clock)
    setup(h, ex, em, em_nm=880.0, gate=10.0)
    assert h.optics.lamp_rate_cps("SAMPLE") == 0.0          # the band is there, QE is 0
    assert get_luminescence("mCB-Nd").emission_spectrum(880.0, excitation_nm=300.0) > 0
    counts, _ = count(h)
    assert abs(counts - 10 * DARK) < 5 * np.sqrt(10 * DARK)
    wl = np.arange(1000.0, 1101.0, 2.0)
    rates = []
    for nm in wl:
        mono(em, nm)
        rates.append(h.optics.lamp_rate_cps("SAMPLE"))
    assert abs(wl[int(np.argmax(rates))] - 1060.0) <= 4.0
    assert max(rates) > 5 * DARK and min(rates) < 0.02 * max(rates)


def test_scatterer_only_near_the_excitation_wavelength(clock):
    laser = LaserState()
    h, ex, em = make(clock, laser=laser)
    setup(h, ex, em, ex_nm=375.0, em_nm=375.0, holder="SCATTERER")
    at_line = h.optics.lamp_rate_cps("SCATTERER")
    assert at_line > 1e4
    assert h.optics.photons_per_pulse("SCATTERER", 375.0) == pytest.approx(0.375)
    for nm in (355.0, 392.0, 600.0, 1060.0):                 # beyond 5.4 + 10.8 nm: nothing
        mono(em, nm)
        assert h.optics.lamp_rate_cps("SCATTERER") == 0.0
        assert h.optics.photons_per_pulse("SCATTERER", 375.0) == 0.0
    mono(em, 380.0)                                          # on the slope of the slit function
    assert 0 < h.optics.lamp_rate_cps("SCATTERER") < at_line
    h.reply("HOLDER EMPTY")
    mono(em, 375.0)
    assert h.signal_rate_cps() == 0.0


def test_laser_excites_the_sample_when_it_emits(clock):
    laser = LaserState(repetition_rate_hz=1e6, intensity_permille=1000)
    h, ex, em = make(clock, laser=laser)
    setup(h, ex, em, lamp="CLOSE")
    assert h.signal_rate_cps() == 0.0                         # locked: no light
    laser.update(soft_locked=False)
    mu = h.optics.photons_per_pulse("SAMPLE", 375.0)
    assert 0.05 < mu < 0.2
    assert h.signal_rate_cps() == pytest.approx(mu * 1e6)


def test_tcspc_light_follows_holder_shutters_and_high_voltage(clock):
    bench = PLBench(clock, get_luminescence("mCB-Nd"), seed=0)     # servers not started
    h, light = bench.housing, bench.light
    setup(h, bench.excitation, bench.emission, lamp="CLOSE")
    snap = bench.laser.update(soft_locked=False, intensity_permille=200, repetition_rate_hz=1e6)
    mu = h.optics.photons_per_pulse("SAMPLE", 375.0)
    sample = total_rate(light, snap)
    assert sample == pytest.approx(0.2 * mu * 1e6 + D0, rel=0.02)      # pile-up: ~1 % lost
    h.reply("SHUTTER LAMP OPEN")                                        # lamp: flat background
    assert total_rate(light, snap) == pytest.approx(sample + h.optics.lamp_rate_cps("SAMPLE"),
                                                    rel=0.02)
    h.reply("SHUTTER DETECTOR CLOSE")
    assert total_rate(light, snap) == pytest.approx(D0, rel=0.01)      # dark only
    h.reply("SHUTTER DETECTOR OPEN")
    h.reply("HOLDER EMPTY")
    assert total_rate(light, snap) == pytest.approx(D0 + h.optics.lamp_rate_cps("EMPTY"), rel=0.01)
    h.reply("HV OFF")
    assert total_rate(light, snap) == 0.0


def ref(h):
    return float(h.reply("REF?"))


def test_ref_and_holder_lamp_on_the_wire(clock):
    h, ex, em = make(clock)
    assert h.reply("REF?") == "0.0000"                       # lamp shutter closed: no current
    assert h.reply("REF? NOW").startswith("ERR REF? takes 0 argument(s)")
    t0 = clock.now()
    assert h.reply("HOLDER LAMP") == "OK" and h.reply("HOLDER?") == "LAMP"
    assert clock.now() - t0 == pytest.approx(HOLDER_MOVE_S, abs=1e-6)
    setup(h, ex, em, ex_nm=600.0, slit_um=500, holder="LAMP")
    t0 = clock.now()
    text = h.reply("REF?")
    assert clock.now() == t0                                 # read at once
    assert text.count(".") == 1 and len(text.split(".")[1]) == 4 and 20.0 < float(text) < 100.0


def test_reference_current_follows_lamp_times_bandpass(clock):
    h, ex, em = make(clock)
    setup(h, ex, em, ex_nm=600.0, slit_um=500)
    expect = h.optics.reference_current_na()
    # 5 % of the beam, L(600 nm) × 2.7 nm photons/s × hc/λ × 0.38 A/W (the table value)
    assert expect == pytest.approx(0.05 * xe_lamp_flux(600.0) * 2.7 * 1.98644586e-16 / 600.0
                                   * 0.38 * 1e9, rel=1e-6)
    n = 400
    a = np.array([ref(h) for _ in range(n)])
    assert a.mean() == pytest.approx(expect, rel=4 * REFERENCE_NOISE_FRACTION / np.sqrt(n))
    assert a.std() == pytest.approx(REFERENCE_NOISE_FRACTION * expect, rel=0.15)   # small noise
    mono(ex, slit_um=1000)                                   # bandpass doubles: current doubles
    assert h.optics.reference_current_na() == pytest.approx(2 * expect, rel=1e-9)
    ratios = []
    for nm in (250.0, 330.0, 450.0, 800.0, 950.0):           # ∝ lamp(λ) × R(λ) / λ
        mono(ex, nm)
        ratios.append(h.optics.reference_current_na()
                      / (xe_lamp_flux(nm) * reference_responsivity_a_per_w(nm) / nm))
    assert np.allclose(ratios, ratios[0], rtol=1e-9)
    h.reply("SHUTTER LAMP CLOSE")
    assert ref(h) == 0.0 and h.optics.reference_current_na() > 0
    h1, ex1, em1 = make(clock, seed=7)                        # same seed: same readings
    h2, ex2, em2 = make(clock, seed=7)
    for hh, e1, e2 in ((h1, ex1, em1), (h2, ex2, em2)):
        setup(hh, e1, e2, ex_nm=450.0)
    assert [ref(h1) for _ in range(3)] == [ref(h2) for _ in range(3)]


def test_standard_lamp_in_the_holder_is_a_3000_k_grey_body_seen_through_the_pmt(clock):
    h, ex, em = make(clock)
    setup(h, ex, em, em_nm=1200.0, holder="LAMP", lamp="CLOSE", gate=1.0)
    rate = h.signal_rate_cps()
    assert rate == pytest.approx(h.optics.standard_lamp_rate_cps()) and 3e4 < rate < 1e5
    counts, flags = count(h)
    counted = h.count_rate_cps()[0]                          # lamp + dark, PMT saturation
    assert counted > rate and flags == 0 and abs(counts - counted) < 5 * np.sqrt(counted)
    h.reply("SHUTTER LAMP OPEN")                             # the Xe beam adds nothing here
    assert h.signal_rate_cps() == pytest.approx(rate)
    mono(em, 700.0)                                          # QE 0 at 700 nm
    assert h.signal_rate_cps() == 0.0
    # photon Planck at 3000 K: maximum near 3670 µm K / 3000 K ≈ 1223 nm
    lam = np.arange(400.0, 2500.0, 1.0)
    assert abs(lam[np.argmax(standard_lamp_flux(lam))] - 1223.0) < 3.0
    h.reply("SHUTTER DETECTOR CLOSE")
    assert h.signal_rate_cps() == 0.0
