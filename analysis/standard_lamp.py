"""The bench's calibrated standard lamp: its certificate of spectral irradiance, and
:class:`LampCertificate`, which reads a certificate (this one, or a file of another lamp) and
gives the certified photon irradiance at any wavelength inside its range.

Certificate format (plain text, as calibration labs issue them): ``#`` comment lines, of which
``# id: <certificate id>``, ``# distance_mm: <d>`` and ``# unit: mW m-2 nm-1`` are read; then
rows ``wavelength_nm  irradiance  [expanded uncertainty (k=2) in %]``.

The certificate below is ASSUMED (no lamp at hand): a 45 W quartz-tungsten-halogen lamp,
distribution temperature 3000 K, at 500 mm; values of a 3000 K grey body scaled to 12.00
mW m⁻² nm⁻¹ at its 966 nm maximum, 4 significant digits; expanded uncertainties (k = 2) typical
of lab calibrations: 3.0 % below 350 nm, 2.0 % to 400 nm, 1.5 % to 1100 nm, 2.5 % above. Between
rows the irradiance is interpolated in log (PCHIP of ln E; errors < 0.01 % for a smooth lamp).
A spinlight data file: stored as a Python string so that it installs with the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.interpolate import PchipInterpolator

from .column_text import read_xy_table

#: h·c (J nm): photons per joule at λ = λ / hc.
HC_J_NM = 1.98644586e-16

CERTIFICATE_ID = "SL-QTH-3000K-0427"

CERTIFICATE_TEXT = """\
# Certificate of spectral irradiance
# id: SL-QTH-3000K-0427
# lamp: 45 W quartz-tungsten-halogen, 6.50 A DC, distribution temperature 3000 K
# distance_mm: 500
# unit: mW m-2 nm-1
# columns: wavelength_nm  irradiance  expanded_uncertainty_k2_percent
   250   0.006855  3.0
   260    0.01178  3.0
   270    0.01932  3.0
   280    0.03038  3.0
   290    0.04601  3.0
   300    0.06740  3.0
   310    0.09582  3.0
   320     0.1326  3.0
   330     0.1790  3.0
   340     0.2364  3.0
   350     0.3061  2.0
   360      0.389  2.0
   370     0.4862  2.0
   380     0.5985  2.0
   390     0.7264  2.0
   400     0.8704  1.5
   420      1.207  1.5
   440      1.607  1.5
   460      2.067  1.5
   480      2.580  1.5
   500      3.138  1.5
   520      3.730  1.5
   540      4.346  1.5
   560      4.977  1.5
   580      5.611  1.5
   600      6.239  1.5
   620      6.854  1.5
   640      7.448  1.5
   660      8.015  1.5
   680      8.550  1.5
   700      9.050  1.5
   720      9.511  1.5
   740      9.932  1.5
   760      10.31  1.5
   780      10.65  1.5
   800      10.95  1.5
   820      11.20  1.5
   840      11.42  1.5
   860      11.60  1.5
   880      11.74  1.5
   900      11.85  1.5
   920      11.93  1.5
   940      11.98  1.5
   960      12.00  1.5
   980      11.99  1.5
  1000      11.97  1.5
  1020      11.92  1.5
  1040      11.85  1.5
  1060      11.76  1.5
  1080      11.66  1.5
  1100      11.54  1.5
  1120      11.41  2.5
  1140      11.28  2.5
  1160      11.13  2.5
  1180      10.97  2.5
  1200      10.81  2.5
  1220      10.64  2.5
  1240      10.46  2.5
  1260      10.28  2.5
  1280      10.10  2.5
  1300      9.915  2.5
  1320      9.728  2.5
  1340      9.541  2.5
  1360      9.353  2.5
  1380      9.165  2.5
  1400      8.978  2.5
  1420      8.791  2.5
  1440      8.606  2.5
  1460      8.422  2.5
  1480      8.239  2.5
  1500      8.059  2.5
  1520      7.881  2.5
  1540      7.706  2.5
  1560      7.533  2.5
  1580      7.363  2.5
  1600      7.195  2.5
  1620      7.031  2.5
  1640      6.869  2.5
  1660      6.711  2.5
  1680      6.556  2.5
  1700      6.403  2.5
  1720      6.254  2.5
  1740      6.108  2.5
  1760      5.965  2.5
  1780      5.826  2.5
  1800      5.689  2.5
  1820      5.556  2.5
  1840      5.425  2.5
  1860      5.298  2.5
  1880      5.173  2.5
  1900      5.052  2.5
  1920      4.933  2.5
  1940      4.818  2.5
  1960      4.705  2.5
  1980      4.595  2.5
  2000      4.488  2.5
  2020      4.383  2.5
  2040      4.281  2.5
  2060      4.181  2.5
  2080      4.084  2.5
  2100      3.990  2.5
  2120      3.898  2.5
  2140      3.808  2.5
  2160      3.720  2.5
  2180      3.635  2.5
  2200      3.552  2.5
  2220      3.471  2.5
  2240      3.392  2.5
  2260      3.315  2.5
  2280      3.240  2.5
  2300      3.167  2.5
  2320      3.096  2.5
  2340      3.026  2.5
  2360      2.959  2.5
  2380      2.893  2.5
  2400      2.828  2.5
  2420      2.766  2.5
  2440      2.705  2.5
  2460      2.646  2.5
  2480      2.588  2.5
  2500      2.531  2.5
"""


@dataclass(frozen=True)
class LampCertificate:
    """A standard lamp's certified spectral irradiance (``irradiance`` in ``unit``, at
    ``distance_mm``) on ``wavelength_nm`` (ascending), with the expanded (k = 2) relative
    uncertainty in % per row (0 when the certificate gives none)."""

    id: str
    wavelength_nm: np.ndarray
    irradiance: np.ndarray
    uncertainty_k2_percent: np.ndarray
    distance_mm: float | None = None
    unit: str = "mW m-2 nm-1"
    source: str = ""

    @classmethod
    def parse(cls, text: str, *, source: str = "") -> LampCertificate:
        """A certificate from its text (format in the module docstring)."""
        meta, tab = read_xy_table(text, where=f"certificate {source or '(text)'}",
                                  columns="wavelength_nm  irradiance  [uncertainty_%]")
        if tab.shape[0] < 2 or np.any(np.diff(tab[:, 0]) <= 0) or np.any(tab[:, 1] <= 0) \
                or not np.all(np.isfinite(tab)):
            raise ValueError(f"certificate {source or '(text)'} has {tab.shape[0]} rows; allowed: "
                             ">= 2 rows, wavelengths increasing, irradiance finite and > 0")
        dist = meta.get("distance_mm")
        return cls(meta.get("id", source or "unnamed"), tab[:, 0], tab[:, 1], tab[:, 2],
                   None if dist is None else float(dist), meta.get("unit", "mW m-2 nm-1"),
                   source)

    @classmethod
    def from_file(cls, path) -> LampCertificate:
        path = Path(path)
        return cls.parse(path.read_text(encoding="utf-8"), source=str(path))

    @property
    def range_nm(self) -> tuple[float, float]:
        return float(self.wavelength_nm[0]), float(self.wavelength_nm[-1])

    def _check(self, wavelength_nm) -> np.ndarray:
        lam = np.asarray(wavelength_nm, dtype=float)
        lo, hi = self.range_nm
        bad = ~((lam >= lo) & (lam <= hi))
        if np.any(bad):
            v = float(np.ravel(lam)[np.flatnonzero(np.ravel(bad))[0]])
            raise ValueError(f"wavelength_nm={v!r} is outside the certified range of standard "
                             f"lamp {self.id}; allowed range {lo:g}..{hi:g} nm")
        return lam

    def irradiance_at(self, wavelength_nm) -> np.ndarray:
        """Certified spectral irradiance (``unit``) at ``wavelength_nm`` (inside the range)."""
        lam = self._check(wavelength_nm)
        interp = PchipInterpolator(self.wavelength_nm, np.log(self.irradiance))
        return np.exp(interp(lam))

    def photon_irradiance(self, wavelength_nm) -> np.ndarray:
        """Certified photon irradiance, photons s⁻¹ per nm per (area unit of ``unit``) for an
        irradiance in mW: E·λ/(hc) × 1e-3 (a photon counter counts photons, not energy)."""
        lam = self._check(wavelength_nm)
        return self.irradiance_at(lam) * 1e-3 * lam / HC_J_NM

    def relative_uncertainty(self, wavelength_nm) -> np.ndarray:
        """Standard (k = 1) relative uncertainty of the certified values (fraction)."""
        lam = self._check(wavelength_nm)
        return np.interp(lam, self.wavelength_nm, self.uncertainty_k2_percent) / 200.0


def bench_certificate() -> LampCertificate:
    """The certificate of the bench's standard lamp (:data:`CERTIFICATE_ID`)."""
    return LampCertificate.parse(CERTIFICATE_TEXT, source="spinlight.analysis.standard_lamp")


__all__ = ["CERTIFICATE_ID", "CERTIFICATE_TEXT", "HC_J_NM", "LampCertificate", "bench_certificate"]
