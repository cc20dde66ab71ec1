"""Spectral correction (analysis): the standard-lamp certificate, a response computed from a
standard-lamp run, its recovery and use on a Poisson-noisy spectrum, reference normalisation,
response files, and bad input refused with parameter, value and allowed range."""

from __future__ import annotations

import numpy as np
import pytest

from spinlight.analysis.pl_spectra import analyze_spectrum
from spinlight.analysis.spectral_correction import (SpectralResponse, correct_spectrum,
                                                    normalise_by_reference, response_from_run)
from spinlight.analysis.standard_lamp import (CERTIFICATE_ID, CERTIFICATE_TEXT, HC_J_NM,
                                              LampCertificate, bench_certificate)
from spinlight.plans.pl_checks import STANDARD_LAMP_RANGE_NM
from spinlight.plans.pl_correction import STANDARD_LAMP

C2_NM_K = 1.4388e7
GATE_S, DARK_CPS = 1.0, 5.0e3
WL = np.arange(850.0, 1400.1, 2.0)


def true_response(lam):
    """A detector that rises from 900 to 1050 nm (like the NIR-PMT), flat, then falls."""
    return np.clip((lam - 900.0) / 150.0, 0.0, 1.0) * np.clip((1450.0 - lam) / 150.0, 0.0, 1.0)


def gauss(lam, centre, fwhm):
    return np.exp(-4.0 * np.log(2.0) * ((lam - centre) / fwhm) ** 2)


def lamp_run(rng, *, scale=6.0e4, standard=CERTIFICATE_ID, gate_s=GATE_S):
    """Start document and columns of a standard-lamp scan by a detector ``true_response``."""
    cert = bench_certificate()
    photons = cert.photon_irradiance(WL)
    expected = scale * true_response(WL) * photons / photons.max() + DARK_CPS
    rate = rng.poisson(expected * gate_s) / gate_s
    start = {"uid": "lamp-run-1", "plan_name": "emission_correction",
             "plan_args": {"gate_s": gate_s},
             "spectrum": {"scan": "emission", "wavelength_key": "em", "signal_key": "cps",
                          "dark_cps": DARK_CPS},
             "spectral_response": {"kind": "emission", "source": "standard_lamp",
                                   "standard": standard, "emission_slit_um": 1000.0,
                                   "grating_g_per_mm": 600}}
    return start, {"em": WL[::-1].tolist(), "cps": rate[::-1].tolist()}   # scanned downwards


def test_the_certificate_is_a_3000_k_grey_body_in_energy_units():
    cert = bench_certificate()
    assert cert.id == CERTIFICATE_ID == STANDARD_LAMP and cert.distance_mm == 500.0
    assert cert.range_nm == STANDARD_LAMP_RANGE_NM            # the plans check against it
    lam = np.arange(300.0, 2400.0, 7.3)                       # between the certificate rows
    planck_energy = lam ** -5.0 / np.expm1(C2_NM_K / (lam * 3000.0))
    ratio = cert.irradiance_at(lam) / planck_energy
    assert np.ptp(ratio) / ratio.mean() < 2e-3              # 4 significant digits per row
    # photons: E λ / hc (mW → W); the photon spectrum peaks ~25 % further red than the energy one
    assert cert.photon_irradiance(1000.0) == pytest.approx(cert.irradiance_at(1000.0) * 1e-3
                                                           * 1000.0 / HC_J_NM)
    fine = np.arange(500.0, 2000.0, 1.0)
    assert abs(fine[np.argmax(cert.irradiance_at(fine))] - 966.0) < 10.0   # flat top, 4 digits
    assert abs(fine[np.argmax(cert.photon_irradiance(fine))] - 1223.0) < 6.0
    assert cert.relative_uncertainty(1000.0) == pytest.approx(0.0075)
    with pytest.raises(ValueError, match=r"wavelength_nm=200.0 is outside the certified range "
                                         r"of standard lamp SL-QTH-3000K-0427; allowed range "
                                         r"250..2500 nm"):
        cert.photon_irradiance([300.0, 200.0])
    with pytest.raises(ValueError, match=r"line 3: '900 abc'; allowed"):
        LampCertificate.parse("# id: x\n800 1.0\n900 abc\n")


def test_response_from_a_lamp_run_recovers_the_detector_with_honest_errors():
    rng = np.random.default_rng(3)
    start, columns = lamp_run(rng)
    resp = response_from_run(start, columns)
    assert resp.uid == "lamp-run-1" and resp.standard == CERTIFICATE_ID and resp.source == "run"
    assert resp.emission_slit_um == 1000.0 and resp.grating_g_per_mm == 600
    assert np.all(np.diff(resp.wavelength_nm) > 0) and resp.sensitivity.max() == 1.0
    lo, hi = resp.usable_range_nm
    assert 906.0 <= lo <= 916.0 and hi == 1400.0        # S >= 0.05 from 907.5 nm
    # σ_S = counting ⊕ certificate (0.75 % at k = 1 here)
    rel = resp.sensitivity_err / resp.sensitivity
    assert np.all(rel[resp.sensitivity > 0.5] >= 0.0075)
    # against a certificate without uncertainties, σ_S is the counting alone: the pulls of
    # the recovered shape (normalised by its noisy maximum: one scale factor) are ~N(0, 1)
    bare = LampCertificate.parse("\n".join(" ".join(line.split()[:2]) if line[:1] != "#" else line
                                          for line in CERTIFICATE_TEXT.splitlines()))
    resp = response_from_run(start, columns, certificate=bare)
    inside = (resp.wavelength_nm >= 960.0) & (resp.wavelength_nm <= 1380.0)
    truth = true_response(resp.wavelength_nm[inside])
    k = np.sum(resp.sensitivity[inside] * truth) / np.sum(truth ** 2)
    pulls = (resp.sensitivity[inside] - k * truth) / resp.sensitivity_err[inside]
    assert abs(k - 1.0) < 0.03 and 0.75 < pulls.std() < 1.25 and abs(pulls.mean()) < 0.3
    assert "usable_nm" in resp.report() and f"{lo:g}..1400" in resp.report()


def test_a_known_response_applied_to_a_known_spectrum_is_recovered():
    """Counts = Poisson((E(λ)·S(λ) + dark)·gate); dividing by the measured S gives back E:
    shape within the propagated errors, peaks where E has them (the uncorrected ones are not)."""
    rng = np.random.default_rng(7)
    resp = response_from_run(*lamp_run(rng))
    true = 4.0e4 * (gauss(WL, 960.0, 30.0) + 0.6 * gauss(WL, 1250.0, 40.0))
    seen = true * true_response(WL)
    rate = rng.poisson((seen + DARK_CPS) * GATE_S) / GATE_S
    r = analyze_spectrum(WL, rate, dark_cps=DARK_CPS, response=resp)
    assert r.correction["kind"] == "emission_response" and r.correction["uid"] == "lamp-run-1"
    assert r.wavelength_nm[0] == resp.usable_range_nm[0]                     # restricted
    # E recovered up to one scale factor (the response is relative), within its errors
    corrected, err = correct_spectrum(r.wavelength_nm, rate[np.isin(WL, r.wavelength_nm)]
                                      - DARK_CPS, resp,
                                      signal_err_cps=np.sqrt(rate[np.isin(WL, r.wavelength_nm)]
                                                             / GATE_S))
    np.testing.assert_allclose(corrected, r.net_cps)
    e = true[np.isin(WL, r.wavelength_nm)]
    use = e > 0.05 * e.max()
    scale = np.sum(corrected[use] * e[use] / err[use] ** 2) / np.sum(e[use] ** 2 / err[use] ** 2)
    chi2 = np.mean(((corrected[use] - scale * e[use]) / err[use]) ** 2)
    assert chi2 < 2.0
    assert [round(p.position_nm) for p in r.peaks] == [pytest.approx(960, abs=2),
                                                       pytest.approx(1250, abs=2)]
    raw = r.uncorrected
    assert raw.correction is None and raw.wavelength_nm[0] == 850.0
    # uncorrected, the detector's rise makes the 1250 nm band the highest
    assert raw.main_peak.position_nm == pytest.approx(1250.0, abs=2.0)
    s = r.scalars()
    assert s["corrected"] is True and s["correction_uid"] == "lamp-run-1"
    assert s["main_peak_nm"] == pytest.approx(960.0, abs=2.0)
    assert s["uncorrected_main_peak_nm"] == raw.main_peak.position_nm
    d = r.to_dict()
    assert d["uncorrected_peak_positions_nm"] == [p.position_nm for p in raw.peaks]


def test_reference_normalisation_removes_the_lamp_profile():
    lam = np.arange(250.0, 600.1, 2.0)
    lamp = gauss(lam, 480.0, 300.0) / (1.0 + np.exp(-(lam - 300.0) / 15.0))  # Xe-like, UV edge
    band = gauss(lam, 300.0, 60.0) + 0.3 * gauss(lam, 520.0, 15.0)
    rng = np.random.default_rng(5)
    rate = rng.poisson((8.0e4 * band * lamp + DARK_CPS) * GATE_S) / GATE_S
    ref = 50.0 * lamp * (1.0 + 0.002 * rng.standard_normal(lam.size))
    r = analyze_spectrum(lam[::-1], rate[::-1], dark_cps=DARK_CPS, scan="excitation",
                         reference_nA=ref[::-1])                    # order kept together
    assert r.correction["kind"] == "reference"
    assert r.correction["reference_mean_nA"] == pytest.approx(ref.mean())
    assert r.main_peak.position_nm == pytest.approx(300.0, abs=2.0)
    assert any(abs(p.position_nm - 520.0) < 2.0 for p in r.peaks)
    assert r.uncorrected.main_peak.position_nm > 312.0              # the lamp pulls it red
    y, err, mean = normalise_by_reference([10.0, 20.0], [1.0, 3.0], signal_err_cps=[1.0, 1.0])
    assert y.tolist() == [20.0, pytest.approx(40.0 / 3.0)] and err[0] == 2.0 and mean == 2.0


def test_response_files_round_trip_and_a_factory_file_loads(tmp_path):
    resp = response_from_run(*lamp_run(np.random.default_rng(1)))
    path = resp.to_file(tmp_path / "response.txt")
    back = SpectralResponse.from_file(path)
    np.testing.assert_allclose(back.wavelength_nm, resp.wavelength_nm)
    np.testing.assert_allclose(back.sensitivity, resp.sensitivity, rtol=1e-7)
    np.testing.assert_allclose(back.sensitivity_err, resp.sensitivity_err, rtol=1e-3)
    assert (back.uid, back.standard, back.emission_slit_um, back.grating_g_per_mm) == \
        ("lamp-run-1", CERTIFICATE_ID, 1000.0, 600)
    assert back.usable_range_nm == resp.usable_range_nm and back.file == str(path)
    factory = tmp_path / "factory.cor"
    factory.write_text("# factory emission correction\n900, 0.0\n950 2.0\n1000 4.0\n1050 4.0\n")
    f = SpectralResponse.from_file(factory)
    assert f.sensitivity.tolist() == [0.0, 0.5, 1.0, 1.0] and f.uid is None
    assert f.usable_range_nm == (950.0, 1050.0) and f.label == str(factory)
    y, _ = correct_spectrum([975.0, 1000.0], [75.0, 100.0], f)
    assert y.tolist() == [100.0, 100.0]


@pytest.mark.parametrize("call, match", [
    (lambda f: correct_spectrum([940.0, 1000.0], [1.0, 1.0], f),
     r"wavelength_nm\[0\]=940.0 nm is out of range \(relative sensitivity 0.4\); allowed "
     r"range 950..1050 nm \(the usable range"),
    (lambda f: correct_spectrum([1000.0, 1060.0], [1.0, 1.0], f),
     r"wavelength_nm\[1\]=1060.0 nm is out of range; allowed range 900..1050 nm \(the spectral "
     r"response's measured range"),
    (lambda f: correct_spectrum([905.0], [1.0], f),
     r"wavelength_nm\[0\]=905.0 nm is out of range \(relative sensitivity 0.05\); allowed "
     r"range 950..1050 nm \(the usable range: relative sensitivity >= 0.05 and >= 3 sigma, "
     r"not ≈ 0"),
    (lambda f: correct_spectrum([1000.0], [1.0, 2.0], f), r"signal_cps has 2 values; allowed: exactly 1"),
    (lambda f: correct_spectrum([1000.0], [1.0], "response.txt"), r"response=str; allowed: SpectralResponse"),
    (lambda f: SpectralResponse([900.0, 950.0], [0.0, 0.0]), r"sensitivity has maximum 0.0; allowed"),
    (lambda f: SpectralResponse([950.0, 900.0], [1.0, 1.0]), r"wavelength_nm\[1\]=900.0 is not above"),
    (lambda f: normalise_by_reference([1.0, 2.0], [3.0, 0.0]),
     r"reference_nA\[1\]=0.0 nA is out of range; allowed range: > 0 nA"),
    (lambda f: analyze_spectrum(np.arange(800.0, 900.0, 10.0), np.ones(10), response=f),
     r"wavelength_nm covers 800..890 nm, 0 points inside the response's usable range "
     r"950..1050 nm; allowed: at least 5"),
])
def test_bad_input_names_parameter_value_and_range(tmp_path, call, match):
    factory = tmp_path / "factory.cor"
    factory.write_text("900 0.0\n950 2.0\n1000 4.0\n1050 4.0\n")
    with pytest.raises((ValueError, TypeError), match=match):
        call(SpectralResponse.from_file(factory))


def test_a_lamp_run_of_another_lamp_or_without_metadata_is_refused():
    start, columns = lamp_run(np.random.default_rng(2), standard="OTHER-LAMP")
    with pytest.raises(ValueError, match=r"standard='OTHER-LAMP' \(the lamp in the run\) is not "
                                         r"the certificate's lamp; allowed: 'SL-QTH-3000K-0427'"):
        response_from_run(start, columns)
    other = LampCertificate.parse(CERTIFICATE_TEXT.replace(CERTIFICATE_ID, "OTHER-LAMP"))
    assert response_from_run(start, columns, certificate=other).standard == "OTHER-LAMP"
    with pytest.raises(ValueError, match=r"start\['spectral_response'\]=None"):
        response_from_run({"spectrum": start["spectrum"]}, columns)
    with pytest.raises(ValueError, match=r"start\['spectrum'\]\['signal_key'\]='cps' is not a "
                                         r"data key"):
        response_from_run(lamp_run(np.random.default_rng(2))[0], {"em": columns["em"]})


def feed(router, start_md, rows, exit_status="success"):
    """Send one raw run (start, primary descriptor, events, stop) through ``router``."""
    from event_model import compose_run
    bundle = compose_run(metadata=start_md)
    router("start", bundle.start_doc)
    keys = {k: {"dtype": "number", "shape": [], "source": "test"} for k in rows[0]}
    desc = bundle.compose_descriptor(name="primary", data_keys=keys)
    router("descriptor", desc.descriptor_doc)
    for i, row in enumerate(rows, 1):
        router("event", desc.compose_event(data=row, timestamps={k: 0.0 for k in row}, seq_num=i))
    router("stop", bundle.compose_stop(exit_status=exit_status))
    return bundle.start_doc["uid"]


def test_the_router_applies_a_given_response_file_and_says_so(tmp_path):
    from spinlight.analysis.pl_streaming import make_pl_analysis_router

    path = response_from_run(*lamp_run(np.random.default_rng(4))).to_file(tmp_path / "r.txt")
    derived = []
    router = make_pl_analysis_router(lambda n, d: derived.append((n, d)), spectral_response=path)
    rng = np.random.default_rng(8)
    seen = 4.0e4 * gauss(WL, 960.0, 30.0) * true_response(WL)
    rate = rng.poisson((seen + DARK_CPS) * GATE_S) / GATE_S
    spectrum = {"scan": "emission", "wavelength_key": "em", "signal_key": "cps",
                "reference_key": "ref", "fixed_nm": 330.0, "dark_cps": DARK_CPS}
    md = {"plan_name": "emission_spectrum", "sample": {"name": "X"}, "spectrum": spectrum,
          "plan_args": {"emission_slit_um": 500.0}}
    rows = [{"em": float(x), "cps": float(y), "ref": 50.0} for x, y in zip(WL, rate)]
    raw_uid = feed(router, md, rows)
    # a scan wholly below the usable range: analysed uncorrected, and the reason is stored
    low = [row for row in rows if row["em"] < 900.0]
    low_uid = feed(router, md, low)
    starts = {d["derived_from"]: d for n, d in derived if n == "start"}
    got = starts[raw_uid]
    assert got["correction"] == "emission_response" and got["correction_file"] == str(path)
    assert got["correction_uid"] == "lamp-run-1"                    # the file's provenance
    res = got["results"]
    assert res["main_peak_nm"] == pytest.approx(960.0, abs=2.0)
    assert res["uncorrected_main_peak_nm"] - res["main_peak_nm"] > 1.5   # σ²·S'/S ≈ 2.7 nm
    assert res["correction_applied"]["note"] == ("response measured with emission_slit_um=1000, "
                                                 "spectrum with 500")
    bad = starts[low_uid]
    assert bad["correction"] == "none" and "usable range" in bad["results"]["correction_refused"]
    # a lamp scan cut short is stored but not applied; a completed one replaces the file
    lamp_md, lamp_cols = lamp_run(np.random.default_rng(9))
    lamp_md = {k: v for k, v in lamp_md.items() if k != "uid"}
    lamp_rows = [{"em": x, "cps": y} for x, y in zip(lamp_cols["em"], lamp_cols["cps"])]
    aborted = feed(router, lamp_md, lamp_rows, exit_status="abort")
    after_abort = feed(router, md, rows)
    completed = feed(router, lamp_md, lamp_rows)
    after_lamp = feed(router, md, rows)
    starts = {d["derived_from"]: d for n, d in derived if n == "start"}
    assert starts[aborted]["plan_name"] == "spectral_response_analysis"
    assert starts[after_abort]["correction_uid"] == "lamp-run-1"
    assert starts[after_lamp]["correction_uid"] == completed != "lamp-run-1"
    assert starts[after_lamp]["correction_file"] is None


def test_a_corrected_spectrum_is_plotted_with_its_uncorrected_scan():
    from spinlight.analysis.pl_figures import plot_spectra

    resp = response_from_run(*lamp_run(np.random.default_rng(6)))
    rate = 4.0e4 * gauss(WL, 960.0, 30.0) * true_response(WL) + DARK_CPS
    r = analyze_spectrum(WL, rate + np.random.default_rng(6).normal(0, 100, WL.size),
                         dark_cps=DARK_CPS, response=resp)
    fig = plot_spectra(r, labels=["X"])
    gids = {line.get_gid(): line for line in fig.axes[0].get_lines()}
    assert "uncorrected:X" in gids and "spectrum:X" in gids
    assert gids["uncorrected:X"].get_xdata()[0] == 850.0               # the whole raw scan
    assert gids["spectrum:X"].get_xdata()[0] == r.wavelength_nm[0] > 900.0
    assert "emission response corrected" in gids["spectrum:X"].get_label()
    plain = plot_spectra(r.uncorrected, labels=["X"])
    assert "uncorrected:X" not in {line.get_gid() for line in plain.axes[0].get_lines()}
