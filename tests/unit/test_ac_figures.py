"""ac-susceptibility figures (spinlight.analysis.ac_figures) on a small synthetic data set:
generalized-Debye spectra at 2, 3 and 6 K (the 6 K one relaxes too fast for the window and is
discarded by the fit), and a sequential relaxation fit + Arrhenius fit on synthetic τ(H), τ(T)
of mCB-Yb (reference/science.md §1). The checks read the drawn artists back (by ``gid``) and
compare them with the inputs: number of series, coordinates, error-bar lengths, scales, alpha."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from spinlight.analysis import ac_models as am
from spinlight.analysis.ac_dataset import AcDatasetResult, fit_ac_dataset, spectra_from_arrays
from spinlight.analysis.ac_figures import (FADED_ALPHA, plot_ac_spectra, plot_cole_cole,
                                           plot_ln_tau_vs_inverse_t, plot_rate_vs_field,
                                           write_ac_figures)
from spinlight.analysis.arrhenius import arrhenius_fit
from spinlight.analysis.relaxation import log10_rate_err_from_sigma_ln_tau, sequential_fit

F_HZ = np.geomspace(0.1, 1000.0, 21)
# (T K, H Oe, τ s); τ = 1 µs puts the 6 K χ'' peak at 160 kHz, far outside 0.1–1000 Hz
SETPOINTS = [(2.0, 1000.0, 1e-2), (3.0, 2000.0, 1e-3), (6.0, 3000.0, 1e-6)]
YB = dict(B1=16085.0, B2=23.0, D2=42000.0, tau0=8.7e-8, U=18.4)
YB_TERMS = ("qtm", "direct_h2", "orbach")
H_SCAN_OE = np.arange(0.05, 1.0001, 0.05) * 1e4
T_SCAN_K = np.arange(1.8, 6.01, 0.2)
SIGMA_LN_TAU = 0.05


def png_ok(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def by_gid(ax, prefix: str) -> list:
    return [ln for ln in ax.lines if (ln.get_gid() or "").startswith(prefix)]


def faded(artist) -> bool:
    alpha = artist.get_alpha()
    assert alpha in (None, 1.0, FADED_ALPHA)
    return alpha == FADED_ALPHA


@pytest.fixture(scope="module")
def dataset() -> AcDatasetResult:
    rng = np.random.default_rng(11)
    cols = {k: [] for k in ("id", "f", "re", "im", "T", "H")}
    for i, (t, h, tau) in enumerate(SETPOINTS):
        re, im = am.GENERALIZED_DEBYE.chi_parts(F_HZ, np.array([math.log(tau), 0.5, 5.0, 0.15]))
        cols["id"] += [i] * F_HZ.size
        cols["f"] += list(F_HZ)
        cols["re"] += list(re * (1 + 0.01 * rng.standard_normal(F_HZ.size)))
        cols["im"] += list(im * (1 + 0.01 * rng.standard_normal(F_HZ.size)))
        cols["T"] += [t] * F_HZ.size
        cols["H"] += [h] * F_HZ.size
    spectra = spectra_from_arrays(cols["id"], cols["f"], cols["re"], cols["im"],
                                  temperature_K=cols["T"], field_Oe=cols["H"],
                                  chi_unit="cm3/mol")
    ds = fit_ac_dataset(spectra, model="generalized_debye")
    assert [r.discarded for r in ds.results] == [False, False, True]   # precondition
    return ds


def yb_rate(h_oe, t_k):
    h = np.asarray(h_oe, float) / 1e4
    return YB["B1"] / (1 + YB["B2"] * h ** 2) + YB["D2"] * h ** 2 * t_k + \
        np.exp(-YB["U"] / t_k) / YB["tau0"]


@pytest.fixture(scope="module")
def relax():
    rng = np.random.default_rng(5)
    tau_h = np.exp(rng.normal(0, SIGMA_LN_TAU, H_SCAN_OE.size)) / yb_rate(H_SCAN_OE, 2.0)
    tau_t = np.exp(rng.normal(0, SIGMA_LN_TAU, T_SCAN_K.size)) / yb_rate(3000.0, T_SCAN_K)
    err_h = log10_rate_err_from_sigma_ln_tau(np.full(H_SCAN_OE.size, SIGMA_LN_TAU))
    err_t = log10_rate_err_from_sigma_ln_tau(np.full(T_SCAN_K.size, SIGMA_LN_TAU))
    seq = sequential_fit((H_SCAN_OE, tau_h, err_h, 2.0), (T_SCAN_K, tau_t, err_t, 3000.0),
                         terms=YB_TERMS)
    arr = arrhenius_fit(T_SCAN_K, tau_t, log10_rate_err=err_t)
    return seq, arr


# ---------------------------------------------------------------------------- spectra
def test_spectra_draw_every_spectrum_and_fit_on_log_f_axes(dataset, tmp_path):
    fig = plot_ac_spectra(dataset, path=tmp_path / "spectra.png", title="synthetic")
    assert isinstance(fig, Figure) and png_ok(tmp_path / "spectra.png")
    panels = [a for a in fig.axes if a.get_xscale() == "log"]
    assert len(panels) == 2
    for ax, part in zip(panels, ("real", "imag")):
        data, fits = by_gid(ax, "data:"), by_gid(ax, "fit:")
        assert len(data) == len(fits) == len(dataset.spectra)
        for line, fit, spec, res in zip(data, fits, dataset.spectra, dataset.results):
            expected = spec.chi_real if part == "real" else spec.chi_imag
            np.testing.assert_array_equal(line.get_xdata(), spec.frequency_hz)
            np.testing.assert_array_equal(line.get_ydata(), expected)
            np.testing.assert_array_equal(
                fit.get_ydata(), res.curve.y_real if part == "real" else res.curve.y)
            assert line.get_linestyle() == "None" and line.get_marker() == "o"
            # discarded spectrum (6 K) faded, the others opaque
            assert faded(line) == faded(fit) == res.discarded
        assert "cm$^3$ mol$^{-1}$" in ax.get_ylabel()
    assert panels[-1].get_xlabel() == "f (Hz)"
    colorbar = [a for a in fig.axes if a not in panels]
    assert len(colorbar) == 1 and colorbar[0].get_ylabel() == "T (K)"
    assert {t.get_text() for t in panels[0].get_legend().get_texts()} == \
        {"data", "fit", "discarded"}


def test_spectra_colour_by_field_and_single_axes(dataset):
    fig = plot_ac_spectra(dataset, color_by="field")
    cbar = [a for a in fig.axes if a.get_xscale() != "log"][0]
    assert cbar.get_ylabel() == r"$\mu_0H$ (T)"
    assert cbar.get_ylim() == pytest.approx((0.1, 0.3))        # 1000–3000 Oe in tesla
    colours = [ln.get_color() for ln in by_gid(fig.axes[0], "data:")]
    assert len({tuple(c) for c in colours}) == 3
    ax = Figure().add_subplot()
    assert plot_ac_spectra(dataset, ax=ax) is ax.figure
    assert [list(ln.get_ydata()) for ln in by_gid(ax, "data:")] == \
        [list(s.chi_imag) for s in dataset.spectra]            # one Axes: χ'' only


def test_cole_cole_plots_imag_vs_real_with_arcs(dataset, tmp_path):
    fig = plot_cole_cole(dataset, path=tmp_path / "cc.png")
    assert png_ok(tmp_path / "cc.png")
    ax = fig.axes[0]
    data, fits = by_gid(ax, "data:"), by_gid(ax, "fit:")
    assert len(data) == len(fits) == 3
    for line, fit, spec, res in zip(data, fits, dataset.spectra, dataset.results):
        np.testing.assert_array_equal(line.get_xdata(), spec.chi_real)
        np.testing.assert_array_equal(line.get_ydata(), spec.chi_imag)
        np.testing.assert_array_equal(fit.get_xdata(), res.curve.y_real)
        assert faded(line) == res.discarded
    assert ax.get_xscale() == ax.get_yscale() == "linear"
    assert ax.get_aspect() == 1.0 and ax.get_ylim()[0] == 0
    assert ax.get_xlabel().startswith(r"$\chi'$") and ax.get_ylabel().startswith(r"$\chi''$")


# ---------------------------------------------------------------------------- τ figures
def bar_lengths(container: ErrorbarContainer, log: bool) -> np.ndarray:
    segs = container.lines[2][0].get_segments()
    ends = np.array([[s[0][1], s[1][1]] for s in segs])
    return np.log10(ends[:, 1] / ends[:, 0]) if log else ends[:, 1] - ends[:, 0]


def test_rate_vs_field_points_bars_and_terms(relax, tmp_path):
    seq, _ = relax
    fig = plot_rate_vs_field(seq, path=tmp_path / "rate.png")
    assert png_ok(tmp_path / "rate.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == r"$\mu_0H$ (T)"
    field = seq.field_result
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    np.testing.assert_allclose(bars.lines[0].get_xdata(), field.field_Oe / 1e4)
    np.testing.assert_allclose(bars.lines[0].get_ydata(), 1 / field.tau_s)
    np.testing.assert_allclose(bar_lengths(bars, log=True), 2 * field.log10_rate_err)
    terms = by_gid(ax, "term:")
    assert [t.get_gid() for t in terms] == \
        [f"term:{n}" for n in field.relaxation_model.terms] + ["term:total"]
    total = terms[-1]
    np.testing.assert_allclose(total.get_ydata(), field.rate(total.get_xdata() * 1e4, 2.0))
    assert ax.get_legend().get_texts()[0].get_text() == "data"
    assert ax.get_legend().get_title().get_text() == "T = 2 K"


def test_ln_tau_vs_inverse_t_terms_and_arrhenius_window(relax, tmp_path):
    seq, arr = relax
    fig = plot_ln_tau_vs_inverse_t(seq, arrhenius=arr, path=tmp_path / "lntau.png")
    assert png_ok(tmp_path / "lntau.png")
    ax = fig.axes[0]
    temp = seq.temperature_result
    assert ax.get_yscale() == ax.get_xscale() == "linear"
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    np.testing.assert_allclose(bars.lines[0].get_xdata(), 1 / temp.temperature_K)
    np.testing.assert_allclose(bars.lines[0].get_ydata(), np.log(temp.tau_s))
    np.testing.assert_allclose(bar_lengths(bars, log=False),
                               2 * math.log(10) * temp.log10_rate_err)
    terms = by_gid(ax, "term:")
    assert len(terms) == len(temp.relaxation_model.terms) + 1
    total = terms[-1]
    np.testing.assert_allclose(total.get_ydata(),
                               np.log(temp.tau(3000.0, 1 / total.get_xdata())), rtol=1e-12)
    (line,) = by_gid(ax, "arrhenius")
    used = 1 / arr.used_temperature_K
    assert line.get_xdata().min() == pytest.approx(used.min())
    assert line.get_xdata().max() == pytest.approx(used.max())
    assert f"{arr.U_K:.3g}" in line.get_label() and "cm$^{-1}$" in line.get_label()
    assert ax.get_xlabel() == r"$1/T$ (K$^{-1}$)"
    # Arrhenius alone: its own points, no mechanism terms
    ax2 = plot_ln_tau_vs_inverse_t(arrhenius=arr).axes[0]
    assert not by_gid(ax2, "term:") and len(by_gid(ax2, "arrhenius")) == 1


def test_rate_from_table_arrays_fades_discarded_rows_and_overlays_fit(relax):
    seq, _ = relax
    field = seq.field_result
    n = field.tau_s.size
    disc = np.zeros(n, bool)
    disc[-3:] = True
    table = {"H_mean_Oe": field.field_Oe, "T_mean_K": np.full(n, 2.0), "tau_s": field.tau_s,
             "log10_rate_err": field.log10_rate_err, "discarded": disc}
    ax = plot_rate_vs_field(table).axes[0]
    series = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [len(c.lines[0].get_xdata()) for c in series] == [n - 3, 3]
    assert [faded(c.lines[0]) for c in series] == [False, True]
    assert not by_gid(ax, "term:")                       # arrays alone: no model
    ax = plot_rate_vs_field(table, fit=seq).axes[0]
    assert len(by_gid(ax, "term:")) == len(field.relaxation_model.terms) + 1


def test_write_ac_figures_one_png_per_figure_and_skips_missing(dataset, relax, tmp_path):
    seq, arr = relax
    paths = write_ac_figures({"mCB-Yb": dataset, "none": None},
                             {"mCB-Yb": {"sequential": seq, "arrhenius": arr}, "none": None},
                             tmp_path / "figs")
    assert sorted(p.name for p in paths) == ["ac_spectra_mCB-Yb.png", "cole_cole_mCB-Yb.png",
                                             "ln_tau_vs_inv_T_mCB-Yb.png",
                                             "rate_vs_field_mCB-Yb.png"]
    assert all(png_ok(p) for p in paths)
    only_arr = write_ac_figures({}, {"x": arr}, tmp_path / "arr")
    assert [p.name for p in only_arr] == ["ln_tau_vs_inv_T_x.png"]


# ---------------------------------------------------------------------------- bad input
def test_bad_input_names_the_parameter(dataset, relax, tmp_path):
    seq, arr = relax
    with pytest.raises(TypeError, match="dataset=str"):
        plot_ac_spectra("spectra")
    with pytest.raises(ValueError, match="dataset has 0 spectra"):
        plot_cole_cole(AcDatasetResult([], [], [], "auto"))
    with pytest.raises(ValueError, match="color_by='pressure'.*allowed"):
        plot_ac_spectra(dataset, color_by="pressure")
    with pytest.raises(TypeError, match="ax="):
        plot_cole_cole(dataset, ax="axes")
    with pytest.raises(ValueError, match="no row with finite tau_s > 0 and field"):
        plot_rate_vs_field({"tau_s": [1e-3, 2e-3]})
    with pytest.raises(ValueError, match=r"result_or_arrays\['H_mean_Oe'\] has shape"):
        plot_rate_vs_field({"tau_s": [1e-3, 2e-3], "H_mean_Oe": [1e3, 2e3, 3e3]})
    with pytest.raises(ValueError, match="spans temperature .* allowed: a scan at one"):
        plot_rate_vs_field(seq.temperature_result)      # a T scan is not a field scan
    with pytest.raises(TypeError, match="fit=ArrheniusResult"):
        plot_rate_vs_field(seq, fit=arr)
    with pytest.raises(ValueError, match="result_or_arrays=None and arrhenius=None"):
        plot_ln_tau_vs_inverse_t()
    with pytest.raises(TypeError, match="arrhenius=dict"):
        plot_ln_tau_vs_inverse_t(seq, arrhenius={})
    with pytest.raises(TypeError, match="dataset_by_name=list"):
        write_ac_figures([], {}, tmp_path)
    with pytest.raises(ValueError, match=r"relaxation_by_name\['a'\] has keys"):
        write_ac_figures({}, {"a": {"global": seq}}, tmp_path)
