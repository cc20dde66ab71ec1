"""Spectral correction of steady-state PL spectra: the emission response measured on a
calibrated standard lamp, and the reference-detector normalisation of excitation spectra.

* :class:`SpectralResponse` — relative sensitivity S(λ) (photon counts per photon, maximum 1)
  of emission monochromator + detector, with its standard uncertainty, on the wavelengths it
  was measured at. From a standard-lamp run (:func:`response_from_run`):
  S ∝ (measured − dark) / certified photon irradiance (the certificate's energy irradiance
  × λ/hc: the PMT counts photons). σ_S: Poisson counting of signal and dark (gate from
  ``plan_args``; without it the scatter of the fourth differences) ⊕ the certificate's k = 1
  uncertainty. Saved to / loaded from a text file (``wavelength_nm  S  [σ_S]``, ``#`` header
  with the provenance), so a factory correction file (two columns) loads too.
* Usable range: the contiguous run of measured wavelengths around the maximum where
  S ≥ :data:`MIN_RELATIVE_SENSITIVITY` and S ≥ :data:`MIN_SIGNIFICANCE` σ_S; elsewhere S ≈ 0
  (e.g. the NIR-PMT below ~910 nm) and dividing by it would only amplify noise.
* :func:`correct_spectrum` — net spectrum / S(λ) (linear interpolation of S and σ_S), errors
  propagated: σ_c² = (σ_y/S)² + (y σ_S/S²)². Refuses wavelengths outside the response's range
  or its usable range. The result is in cps "at the sensitivity of the response maximum".
* :func:`normalise_by_reference` — signal × mean(ref)/ref: the Xe lamp profile, the excitation
  bandpass and lamp drift cancel; the reference diode's own quantum efficiency (a gentle
  0.55–0.79 over 250–1000 nm) stays, as in instruments that report S/R.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import _validate as check
from .column_text import read_xy_table
from .pmt_linearity import saturation_from_start, true_count_rate, true_count_rate_slope
from .results import format_table, format_value, json_safe
from .spectrum_noise import count_noise
from .standard_lamp import LampCertificate, bench_certificate

MIN_RELATIVE_SENSITIVITY = 0.05    # below: ≈ 0 (noise × 20 or more)
MIN_SIGNIFICANCE = 3.0             # and S must exceed this many σ_S
RESPONSE_PLANS = ("emission_correction",)


@dataclass
class SpectralResponse:
    """Relative spectral sensitivity (maximum 1) on ascending ``wavelength_nm`` (nm) with its
    standard uncertainty; provenance in ``source`` (``"run"``, ``"file"``, ``"array"``),
    ``uid`` / ``file``, ``standard`` (lamp certificate id) and the emission settings it holds
    for (``emission_slit_um``, ``grating_g_per_mm``)."""

    wavelength_nm: np.ndarray
    sensitivity: np.ndarray
    sensitivity_err: np.ndarray | None = None
    kind: str = "emission"
    source: str = "array"
    uid: str | None = None
    file: str | None = None
    standard: str | None = None
    emission_slit_um: float | None = None
    grating_g_per_mm: int | None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self):
        x = check.array("wavelength_nm", self.wavelength_nm, min_length=2, positive_values=True)
        s = check.array("sensitivity", self.sensitivity, length=x.size)
        err = np.zeros(x.size) if self.sensitivity_err is None else \
            check.array("sensitivity_err", self.sensitivity_err, length=x.size)
        if np.any(np.diff(x) <= 0):
            i = int(np.flatnonzero(np.diff(x) <= 0)[0])
            raise ValueError(f"wavelength_nm[{i + 1}]={float(x[i + 1])!r} is not above "
                             f"wavelength_nm[{i}]={float(x[i])!r}; allowed: strictly ascending")
        if np.any(err < 0):
            raise ValueError(f"sensitivity_err has a negative value {float(err.min())!r}; "
                             "allowed range: >= 0")
        top = float(s.max())
        if top <= 0:
            raise ValueError(f"sensitivity has maximum {top!r}; allowed: some values > 0 "
                             "(a response the detector actually has)")
        self.wavelength_nm, self.sensitivity, self.sensitivity_err = x, s / top, err / top

    # -- ranges ---------------------------------------------------------------------------
    @property
    def range_nm(self) -> tuple[float, float]:
        return float(self.wavelength_nm[0]), float(self.wavelength_nm[-1])

    @property
    def usable_range_nm(self) -> tuple[float, float]:
        """(lo, hi) nm: the measured points around the maximum where S is clearly > 0."""
        s, e = self.sensitivity, self.sensitivity_err
        ok = (s >= MIN_RELATIVE_SENSITIVITY) & (s >= MIN_SIGNIFICANCE * e)
        lo = hi = int(np.argmax(s))
        while lo > 0 and ok[lo - 1]:
            lo -= 1
        while hi < s.size - 1 and ok[hi + 1]:
            hi += 1
        return float(self.wavelength_nm[lo]), float(self.wavelength_nm[hi])

    @property
    def label(self) -> str:
        """How the response is identified in results: run uid, file path or "array"."""
        return self.uid or self.file or self.source

    def at(self, wavelength_nm, *, parameter: str = "wavelength_nm") -> tuple[np.ndarray, np.ndarray]:
        """(S, σ_S) interpolated at ``wavelength_nm``; ValueError naming ``parameter``, the
        value and the allowed range where the response is not measured or ≈ 0."""
        x = check.array(parameter, wavelength_nm)
        usable = ("the usable range: relative sensitivity >= "
                  f"{MIN_RELATIVE_SENSITIVITY:g} and >= {MIN_SIGNIFICANCE:g} sigma, not ≈ 0")
        for (lo, hi), why, show_s in ((self.range_nm, "the spectral response's measured range",
                                       False), (self.usable_range_nm, usable, True)):
            bad = (x < lo - 1e-9) | (x > hi + 1e-9)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                s_here = float(np.interp(x[i], self.wavelength_nm, self.sensitivity))
                value = f" (relative sensitivity {s_here:.3g})" if show_s else ""
                raise ValueError(f"{parameter}[{i}]={float(x[i])!r} nm is out of range{value}; "
                                 f"allowed range {lo:g}..{hi:g} nm ({why}, response "
                                 f"{self.label})")
        return (np.interp(x, self.wavelength_nm, self.sensitivity),
                np.interp(x, self.wavelength_nm, self.sensitivity_err))

    # -- output ---------------------------------------------------------------------------
    def scalars(self) -> dict:
        lo, hi = self.usable_range_nm
        return json_safe({"kind": self.kind, "source": self.source, "uid": self.uid or "",
                          "file": self.file or "", "standard": self.standard or "",
                          "n_points": int(self.wavelength_nm.size),
                          "range_lo_nm": self.range_nm[0], "range_hi_nm": self.range_nm[1],
                          "usable_lo_nm": lo, "usable_hi_nm": hi,
                          "max_sensitivity_nm": float(self.wavelength_nm[np.argmax(self.sensitivity)]),
                          "emission_slit_um": self.emission_slit_um,
                          "grating_g_per_mm": self.grating_g_per_mm, **self.extras})

    def to_dict(self) -> dict:
        return json_safe({**self.scalars(), "wavelength_nm": self.wavelength_nm,
                          "sensitivity": self.sensitivity, "sensitivity_err": self.sensitivity_err})

    def report(self) -> str:
        lo, hi = self.usable_range_nm
        rows = [("kind", self.kind), ("source", f"{self.source} {self.label}".strip()),
                ("standard", self.standard or "-"),
                ("range_nm", f"{self.range_nm[0]:g}..{self.range_nm[1]:g} ({self.wavelength_nm.size} points)"),
                ("usable_nm", f"{lo:g}..{hi:g}"),
                ("max at", f"{self.wavelength_nm[np.argmax(self.sensitivity)]:g} nm")]
        for nm in np.linspace(lo, hi, 5):
            s, e = self.at([nm])
            rows.append((f"S({nm:.0f} nm)", format_value(float(s[0]), float(e[0]))))
        return format_table("Spectral response", rows)

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.report()

    def to_file(self, path) -> Path:
        """Write ``wavelength_nm  S  σ_S`` with a ``#`` provenance header; returns the path."""
        path = Path(path)
        head = [f"# spinlight spectral response ({self.kind}); relative sensitivity, max 1",
                *(f"# {k}: {v}" for k, v in (("source", self.source), ("uid", self.uid),
                                             ("standard", self.standard),
                                             ("emission_slit_um", self.emission_slit_um),
                                             ("grating_g_per_mm", self.grating_g_per_mm))
                  if v is not None),
                "# columns: wavelength_nm  relative_sensitivity  standard_uncertainty"]
        rows = [f"{x:.4f}  {s:.8g}  {e:.4g}" for x, s, e in
                zip(self.wavelength_nm, self.sensitivity, self.sensitivity_err)]
        path.write_text("\n".join(head + rows) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_file(cls, path, *, kind: str = "emission") -> SpectralResponse:
        """A response from a text file of 2 (factory file) or 3 columns, ``#`` comments;
        header keys written by :meth:`to_file` are read back."""
        path = Path(path)
        meta, tab = read_xy_table(path.read_text(encoding="utf-8"), where=str(path),
                                  columns="wavelength_nm  sensitivity  [uncertainty]")
        opt = lambda k, f: f(meta[k]) if meta.get(k) else None   # noqa: E731
        return cls(tab[:, 0], tab[:, 1], tab[:, 2], kind=kind, source="file", file=str(path),
                   uid=opt("uid", str), standard=opt("standard", str),
                   emission_slit_um=opt("emission_slit_um", float),
                   grating_g_per_mm=opt("grating_g_per_mm", lambda v: int(float(v))))


# -- applying it ----------------------------------------------------------------------------
def correct_spectrum(wavelength_nm, signal_cps, response: SpectralResponse, *,
                     signal_err_cps=None) -> tuple[np.ndarray, np.ndarray]:
    """(corrected, σ) = net signal (cps, dark subtracted) / S(λ), with propagated errors.
    ``signal_err_cps``: σ of each signal point (None: 0). Refuses wavelengths outside the
    response's measured or usable range (ValueError naming them and the allowed range)."""
    if not isinstance(response, SpectralResponse):
        raise TypeError(f"response={type(response).__name__}; allowed: SpectralResponse "
                        "(response_from_run or SpectralResponse.from_file)")
    x = check.array("wavelength_nm", wavelength_nm)
    y = check.array("signal_cps", signal_cps, length=x.size)
    sy = np.zeros(x.size) if signal_err_cps is None else \
        check.array("signal_err_cps", signal_err_cps, length=x.size)
    s, ss = response.at(x)
    corrected = y / s
    return corrected, np.sqrt((sy / s) ** 2 + (corrected * ss / s) ** 2)


def normalise_by_reference(signal_cps, reference_nA, *, signal_err_cps=None
                           ) -> tuple[np.ndarray, np.ndarray, float]:
    """(signal × mean(ref)/ref, σ likewise, mean ref nA): the reference-normalised spectrum,
    in cps at the mean reference current. Refuses a reference ≤ 0 (lamp shutter closed)."""
    y = check.array("signal_cps", signal_cps)
    ref = check.array("reference_nA", reference_nA, length=y.size)
    if np.any(ref <= 0):
        i = int(np.flatnonzero(ref <= 0)[0])
        raise ValueError(f"reference_nA[{i}]={float(ref[i])!r} nA is out of range; allowed "
                         "range: > 0 nA (the lamp shutter was closed, or no lamp light)")
    sy = np.zeros(y.size) if signal_err_cps is None else \
        check.array("signal_err_cps", signal_err_cps, length=y.size)
    scale = float(ref.mean()) / ref
    return y * scale, sy * scale, float(ref.mean())


# -- from a standard-lamp run -----------------------------------------------------------------
def _key(start: Mapping, columns: Mapping, role: str) -> np.ndarray:
    sec = start.get("spectrum") or {}
    key = sec.get(role)
    if key not in columns:
        raise ValueError(f"start['spectrum'][{role!r}]={key!r} is not a data key of the run; "
                         f"allowed: one of {sorted(columns)}")
    return np.asarray(columns[key], dtype=float)


def response_from_run(start: Mapping, columns: Mapping[str, Any], *,
                      certificate: LampCertificate | None = None) -> SpectralResponse:
    """The :class:`SpectralResponse` of an ``emission_correction`` run (start document and
    primary columns), against ``certificate`` (default: the bench's standard lamp)."""
    meta = start.get("spectral_response")
    if not isinstance(meta, Mapping):
        raise ValueError(f"start['spectral_response']={meta!r}; allowed: the metadata dict of an "
                         "emission_correction run (a standard-lamp scan)")
    cert = certificate or bench_certificate()
    if meta.get("standard") != cert.id:
        raise ValueError(f"standard={meta.get('standard')!r} (the lamp in the run) is not the "
                         f"certificate's lamp; allowed: {cert.id!r}, or pass its certificate")
    x = _key(start, columns, "wavelength_key")
    rate = _key(start, columns, "signal_key")
    if x.size != rate.size or x.size < 2:
        raise ValueError(f"the run has {x.size} wavelengths and {rate.size} count rates; "
                         "allowed: equal numbers, at least 2")
    order = np.argsort(x, kind="stable")
    x, rate = x[order], rate[order]
    dark = float((start.get("spectrum") or {}).get("dark_cps") or 0.0)
    gate = (start.get("plan_args") or {}).get("gate_s")
    saturation = saturation_from_start(start)
    measured, slope = rate, 1.0
    if saturation is not None:                 # counting losses, as in the spectra
        slope = true_count_rate_slope(measured, saturation)
        rate, dark = true_count_rate(measured, saturation), float(true_count_rate(dark, saturation))
    net = rate - dark
    if gate:                                   # Poisson σ of the measured counts, through dR/dm
        net_err = np.sqrt(np.clip(measured, 0, None) / gate * slope ** 2 + max(dark, 0.0) / gate)
        how = f"Poisson counts in {float(gate):g} s gates"
    else:
        net_err = count_noise(net)[1]          # the same noise model as the spectra
        how = "noise from the fourth differences (no gate_s in plan_args)"
    photons = cert.photon_irradiance(x)
    s = net / photons
    err = np.hypot(net_err / photons, s * cert.relative_uncertainty(x))
    grooves = meta.get("grating_g_per_mm")
    slit = meta.get("emission_slit_um")
    return SpectralResponse(x, s, err, kind=str(meta.get("kind", "emission")), source="run",
                            uid=start.get("uid"), standard=cert.id,
                            emission_slit_um=None if slit is None else float(slit),
                            grating_g_per_mm=None if grooves is None else int(grooves),
                            extras={"dark_cps": dark, "uncertainty": how + " (+) certificate",
                                    "saturation_count_rate_cps": saturation})


__all__ = ["MIN_RELATIVE_SENSITIVITY", "MIN_SIGNIFICANCE", "RESPONSE_PLANS", "SpectralResponse",
           "correct_spectrum", "normalise_by_reference", "response_from_run"]
