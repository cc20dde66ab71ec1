"""PL figures (spinlight.analysis.pl_figures): spectra panels with peaks and bands, decays on a
log axis with fit, IRF and residuals, and write_pl_figures. Data: mCB-Nd spectra and a
simulated 134 ns decay (spinlight.simulators.samples), fitted by the real analysis."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from spinlight.analysis.pl_figures import plot_decay, plot_spectra, write_pl_figures
from spinlight.analysis.pl_run import DecayData, SpectrumData, SpectrumRunAnalysis, analyze_decay
from spinlight.analysis.pl_spectra import analyze_spectrum
from spinlight.analysis.results import format_value
from spinlight.simulators.samples import NirPmt, get_luminescence, sample_histogram

EDGES = np.arange(513) * 4.0


@pytest.fixture(scope="module")
def spectra():
    model, rng = get_luminescence("mCB-Nd"), np.random.default_rng(0)
    em_x = np.arange(950.0, 1400.1, 2.0)
    em = rng.poisson(model.emission_spectrum(em_x, excitation_nm=375.0) * 1e11 + 2e3)
    ex_x = np.arange(250.0, 900.1, 2.0)
    s = model.excitation_spectrum(ex_x, emission_nm=1060.0)
    ex = rng.poisson(s / s.max() * 1e4 + 2e3)
    emission = SpectrumRunAnalysis(SpectrumData(em_x, em, "emission", 2e3, 375.0,
                                                sample_name="mCB-Nd"),
                                   analyze_spectrum(em_x, em, dark_cps=2e3))
    return emission, analyze_spectrum(ex_x, ex, dark_cps=2e3, scan="excitation")


@pytest.fixture(scope="module")
def decay():
    rng, irf = np.random.default_rng(1), NirPmt().irf()
    exp = get_luminescence("mCB-Nd").expected_histogram(
        EDGES, emission_nm=1060.0, excitation_nm=375.0, repetition_rate_hz=2e5,
        photons_per_pulse=0.01, irf=irf, dark_count_rate_cps=1e3, pulse_time_ns=30.0)
    counts = sample_histogram(exp * 2e5 / exp.sum(), rng)
    irf_counts = sample_histogram(2e4 * irf.shape(EDGES, t0_ns=30.0) + 0.2, rng)
    data = DecayData(EDGES[:-1], counts, "sample", repetition_rate_hz=2e5, emission_nm=1060.0)
    return analyze_decay(data, (EDGES[:-1], irf_counts), profile=False)


def by_gid(ax, prefix):
    return [a for a in ax.get_children() if (a.get_gid() or "").startswith(prefix)]


def test_spectra_figure_has_an_excitation_and_an_emission_panel(spectra):
    emission, excitation = spectra
    fig = plot_spectra([emission, excitation], labels=["em", "ex"])
    assert isinstance(fig, Figure)
    ex_ax, em_ax = fig.axes
    assert "excitation" in ex_ax.get_xlabel() and "emission" in em_ax.get_xlabel()
    (line,) = by_gid(em_ax, "spectrum:em")
    assert np.allclose(line.get_ydata(), emission.result.net_cps)
    peaks = sorted(float(m.get_xdata()[0]) for m in by_gid(em_ax, "peak:em"))
    assert peaks == pytest.approx(sorted(emission.result.peak_positions_nm))
    assert len(by_gid(em_ax, "band:em")) == len(emission.result.bands) == 2
    assert len(by_gid(ex_ax, "peak:ex")) == len(excitation.peaks) >= 6
    labels = [t.get_text() for t in em_ax.texts]
    assert "1060" in labels and "1334" in labels
    assert "375 nm" in em_ax.get_legend().get_texts()[0].get_text()


def test_normalised_spectra_peak_at_one(spectra):
    emission, _ = spectra
    fig = plot_spectra(emission, normalise=True)
    (ax,) = fig.axes
    (line,) = by_gid(ax, "spectrum:mCB-Nd")
    assert max(m.get_ydata()[0] for m in by_gid(ax, "peak:mCB-Nd")) == pytest.approx(1.0)
    assert ax.get_ylabel() == "normalised intensity" and line.get_ydata().max() < 1.2


def test_decay_figure_log_axis_fit_irf_and_residuals(decay, tmp_path):
    fit = decay.fit
    fig = plot_decay(decay.decay.time_ns, decay.decay.counts, fit, decay.irf_counts,
                     path=tmp_path / "d.png", title="mCB-Nd")
    top, bottom = fig.axes
    assert top.get_yscale() == "log" and bottom.get_yscale() == "linear"
    (fit_line,) = by_gid(top, "fit")
    assert np.allclose(fit_line.get_ydata(), fit.best_fit)
    assert f"{format_value(fit.taus_ns[0], fit.tau_errs_ns[0])} ns" in fit_line.get_label()
    assert fit.taus_ns[0] == pytest.approx(134.0, rel=0.05)
    (irf_line,) = by_gid(top, "irf")
    assert np.nanmax(irf_line.get_ydata()) == pytest.approx(decay.decay.counts.max())
    (res,) = by_gid(bottom, "residuals")
    assert np.array_equal(res.get_ydata(), fit.residuals)
    assert "deviance" in bottom.get_ylabel()
    assert (tmp_path / "d.png").stat().st_size > 10_000


def test_decay_without_fit_is_one_panel_and_bad_inputs_raise(decay):
    t, y = decay.decay.time_ns, decay.decay.counts
    assert len(plot_decay(t, y).axes) == 1
    with pytest.raises(ValueError, match="counts has 10 values; allowed: exactly 512"):
        plot_decay(t, y[:10])
    with pytest.raises(TypeError, match="fit=dict"):
        plot_decay(t, y, {"tau1": 1.0})
    with pytest.raises(ValueError, match="fit has 512 channels; allowed: 100"):
        plot_decay(t[:100], y[:100], decay.fit)
    with pytest.raises(TypeError, match=r"spectra\[0\]=int"):
        plot_spectra([3])
    with pytest.raises(ValueError, match="labels has 2 entries; allowed: exactly 1"):
        plot_spectra([analyze_spectrum(np.arange(5.0) + 1, np.ones(5))], labels=["a", "b"])


def test_write_pl_figures_writes_one_png_per_entry(spectra, decay, tmp_path):
    emission, excitation = spectra
    paths = write_pl_figures(tmp_path / "out", spectra={"mCB-Nd": [excitation, emission],
                                                       "none": None},
                             decays={"mCB-Nd 1060 nm": decay,
                                     "tuple": (decay.decay.time_ns, decay.decay.counts, decay.fit)})
    assert [p.name for p in paths] == ["pl_spectra_mCB-Nd.png", "decay_mCB-Nd_1060_nm.png",
                                       "decay_tuple.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    with pytest.raises(TypeError, match=r"decays\['x'\]=str"):
        write_pl_figures(tmp_path, decays={"x": "nope"})
    with pytest.raises(TypeError, match="spectra=list"):
        write_pl_figures(tmp_path, spectra=[emission])
