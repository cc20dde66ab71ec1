"""PicoQuant unified histogram files (PHU): write TCSPC decays that PicoQuant software and
``ptufile`` read (instruments.md §3.3).

Layout: magic ``PQHISTO\\0``, an 8-byte version, tag records (``char ident[32]``, ``int32 idx``
(−1: not an array), ``uint32 type``, 8-byte value; strings follow their record, the value being
their padded byte count) up to ``Header_End``, then each curve's uint32 counts at its
``HistResDscr_DataOffset``. Every record starts on a multiple of 8 bytes (ptufile checks this).

Units in the file (PicoQuant's): resolutions in s, ``MeasDesc_Offset``/``HistResDscr_MDescOffset``
in ns, ``MeasDesc_AcquisitionTime``/``HistResDscr_MDescStopAfter`` in whole ms, rates in Hz
(whole counts/s), times as TDateTime (days since 1899-12-30, local time).
"""

from __future__ import annotations

import math
import os
import struct
import uuid
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import picoquant_defs as hh
from .clib import check_int
from .errors import check_choice, check_range
from .tcspc import TCSPCResult

__all__ = ["PHU_MAGIC", "PHU_VERSION", "PhuCurve", "write_phu"]

PHU_MAGIC = b"PQHISTO\0"
#: What PicoQuant's TimeHarp 260 software writes (ptufile's test file Decay_Coumarin_6.phu).
PHU_VERSION = b"1.1.00\0\0"
MAX_BINS = hh.HH_MAXHISTLEN          # 65536: the longest Harp histogram
MAX_COUNT = 2**32 - 1                # uint32 bins
_TY_BOOL8, _TY_INT8, _TY_FLOAT8 = 0x00000008, 0x10000008, 0x20000008
_TY_TDATETIME, _TY_ANSISTRING, _TY_EMPTY8 = 0x21000008, 0x4001FFFF, 0xFFFF0008
_MODE_HISTOGRAM, _SUBMODE_INTEGRATING = 0, 1
_OLE_EPOCH = datetime(1899, 12, 30)
try:
    _VERSION = version("spinlight")
except PackageNotFoundError:          # running from a source tree that is not installed
    _VERSION = "unknown"


@dataclass(frozen=True)
class PhuCurve:
    """One histogram to store: ``counts[k]`` photons in channel k, which covers
    ``offset_ns + [k, k + 1) · resolution_ps/1000`` ns after the (divided) sync.
    ``resolution_ps`` = hardware base resolution × 2**``binning``; ``acquisition_time_s`` is
    stored in whole ms; ``count_rate_cps`` is the detector input rate; ``label``,
    ``emission_nm`` and ``excitation_nm`` go into spinlight tags (``SpinLight_*``)."""

    counts: np.ndarray
    resolution_ps: float
    sync_rate_hz: float
    acquisition_time_s: float
    offset_ns: int = 0
    binning: int = 0
    sync_divider: int = 1
    count_rate_cps: float = 0.0
    label: str = ""
    emission_nm: float | None = None
    excitation_nm: float | None = None

    @classmethod
    def from_result(cls, result: TCSPCResult, **metadata) -> "PhuCurve":
        """The curve of a :class:`~.tcspc.TCSPCResult` (binning and sync divider from its
        ``settings``, offset from ``time_ns[0]``); ``metadata``: label, emission_nm, ..."""
        s = result.settings
        offset = s.get("offset_ns", result.time_ns[0] if np.size(result.time_ns) else 0)
        return cls(counts=result.counts, resolution_ps=result.resolution_ps,
                   sync_rate_hz=result.sync_rate_hz, acquisition_time_s=result.acquisition_time_s,
                   offset_ns=offset, binning=s.get("binning", 0),
                   sync_divider=s.get("sync_divider", 1), count_rate_cps=result.count_rate_cps,
                   **metadata)


def _checked_counts(i: int, counts) -> np.ndarray:
    name = f"curves[{i}].counts"
    a = np.asarray(counts)
    if a.ndim != 1 or not 1 <= a.size <= MAX_BINS:
        raise ValueError(f"{name} must be 1-D with 1..{MAX_BINS} bins, got shape {a.shape}")
    if a.dtype.kind not in "uif":
        raise ValueError(f"{name} has dtype {a.dtype}; allowed: whole counts 0..{MAX_COUNT}")
    bad = ~np.isfinite(a) | (a < 0) | (a > MAX_COUNT) | (a != np.floor(a)) if a.dtype.kind == "f" \
        else (a < 0) | (a > MAX_COUNT)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{k}]={a[k].item()!r} is outside the allowed range: whole counts "
                         f"0..{MAX_COUNT} (uint32)")
    return a.astype("<u4")


def _checked_curve(i: int, c: PhuCurve) -> dict[str, Any]:
    """Validated per-curve values in file units."""
    p = f"curves[{i}]."
    res_s = check_range(p + "resolution_ps", c.resolution_ps, 1e-3, 1e9, "ps") * 1e-12
    binning = check_int(p + "binning", c.binning, 0, hh.HH_BINSTEPSMAX - 1)
    out = {
        "counts": _checked_counts(i, c.counts),
        "resolution_s": res_s,
        "base_resolution_s": res_s / 2**binning,
        "binning_factor": 2**binning,
        "sync_rate": round(check_range(p + "sync_rate_hz", c.sync_rate_hz, 0.0, 1e10, "Hz")),
        "stop_after_ms": round(1000 * check_range(p + "acquisition_time_s", c.acquisition_time_s,
                                                  0.0, hh.HH_ACQTMAX / 1000, "s")),
        "offset_ns": check_int(p + "offset_ns", c.offset_ns, -hh.HH_OFFSETMAX, hh.HH_OFFSETMAX,
                               "ns"),
        "sync_divider": int(check_choice(p + "sync_divider", c.sync_divider,
                                         hh.HH_SYNC_DIVIDERS)),
        "input_rate": round(check_range(p + "count_rate_cps", c.count_rate_cps, 0.0, 1e10, "cps")),
        "label": _checked_text(p + "label", c.label),
    }
    for key in ("emission_nm", "excitation_nm"):
        v = getattr(c, key)
        out[key] = math.nan if v is None else check_range(p + key, v, 100.0, 10000.0, "nm")
    return out


def _checked_text(name: str, text) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name}={text!r} must be a str")
    try:
        text.encode("cp1252")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name}={text!r} has a character outside Windows-1252 "
                         f"({text[exc.start]!r}); PHU AnsiString tags allow only that set") from None
    return text


def _tag(ident: str, value: Any, idx: int = -1) -> bytes:
    """One tag record (plus its padded string data)."""
    head = struct.pack("<32si", ident.encode("ascii"), idx)
    if value is None:
        return head + struct.pack("<Iq", _TY_EMPTY8, 0)
    if isinstance(value, bool):
        return head + struct.pack("<Iq", _TY_BOOL8, int(value))
    if isinstance(value, (int, np.integer)):
        return head + struct.pack("<Iq", _TY_INT8, int(value))
    if isinstance(value, (float, np.floating)):
        return head + struct.pack("<Id", _TY_FLOAT8, float(value))
    if isinstance(value, datetime):
        days = (value.replace(tzinfo=None) - _OLE_EPOCH).total_seconds() / 86400.0
        return head + struct.pack("<Id", _TY_TDATETIME, days)
    if isinstance(value, str):
        data = value.encode("cp1252") + b"\0"
        data += b"\0" * (-len(data) % 8)        # keep the next record 8-byte aligned
        return head + struct.pack("<Iq", _TY_ANSISTRING, len(data)) + data
    raise TypeError(f"tag {ident!r}: value {value!r} of type {type(value).__name__} is not "
                    "allowed; use bool, int, float, str, datetime, None or a list of these")


def _records(curves: list[dict], comment: str, sample: str | None,
             extra: Mapping) -> list[tuple[str, Any, int]]:
    """(ident, value, idx) of every tag; ``HistResDscr_DataOffset`` values are placeholders."""
    c0 = curves[0]   # the MeasDesc_* (current-settings) tags describe the first curve
    recs = [("File_GUID", f"{{{uuid.uuid4()}}}", -1), ("File_CreatingTime", datetime.now(), -1),
            ("File_Comment", comment, -1), ("CreatorSW_Name", "spinlight", -1),
            ("CreatorSW_Version", _VERSION, -1),
            ("Measurement_Mode", _MODE_HISTOGRAM, -1),
            ("Measurement_SubMode", _SUBMODE_INTEGRATING, -1),
            ("MeasDesc_BinningFactor", c0["binning_factor"], -1),
            ("MeasDesc_Offset", c0["offset_ns"], -1),
            ("MeasDesc_AcquisitionTime", c0["stop_after_ms"], -1),
            ("MeasDesc_Resolution", c0["resolution_s"], -1),
            ("HWSync_Divider", c0["sync_divider"], -1),
            ("HistoResult_NumberOfCurves", len(curves), -1), ("HistoResult_BitsPerBin", 32, -1)]
    if sample is not None:
        recs.append(("SpinLight_Sample", sample, -1))
    for key, value in extra.items():
        if isinstance(value, (list, tuple)):
            recs += [(key, v, i) for i, v in enumerate(value)]
        else:
            recs.append((key, value, -1))
    # spinlight's own per-curve tags only when some curve has a value (an indexed tag must be
    # complete: readers expect idx 0..n-1)
    own = [(ident, key) for ident, key in _OWN_CURVE_TAGS
           if any(c[key] != "" and not (isinstance(c[key], float) and math.isnan(c[key]))
                  for c in curves)]
    for i, c in enumerate(curves):
        recs += [(f"HistResDscr_{k}", v, i) for k, v in (
            ("CurveIndex", i), ("HWSyncDivider", c["sync_divider"]),
            ("HWBaseResolution", c["base_resolution_s"]),
            ("MDescBinningFactor", c["binning_factor"]), ("MDescResolution", c["resolution_s"]),
            ("MDescOffset", c["offset_ns"]),   # name [MEM] from PicoHarp 3 PHU files
            ("MDescStopAfter", c["stop_after_ms"]), ("SyncRate", c["sync_rate"]),
            ("InputRate", c["input_rate"]),
            ("IntegralCount", int(c["counts"].sum(dtype=np.uint64))),
            ("HistogramBins", int(c["counts"].size)), ("DataOffset", 0))]
        recs += [(ident, c[key], i) for ident, key in own]
    return recs + [("Header_End", None, -1)]


_OWN_CURVE_TAGS = (("SpinLight_CurveLabel", "label"), ("SpinLight_Emission_nm", "emission_nm"),
                   ("SpinLight_Excitation_nm", "excitation_nm"))


def _checked_tags(tags: Mapping | None) -> dict:
    out = {}
    for key, value in (tags or {}).items():
        if not (isinstance(key, str) and key.isascii() and 1 <= len(key) <= 31
                and key.isprintable()):
            raise ValueError(f"tags key {key!r} is not allowed; allowed: 1..31 printable ASCII "
                             "characters")
        if key in _RESERVED or key.startswith("HistResDscr_"):
            raise ValueError(f"tags[{key!r}] is written by write_phu itself; allowed: any other "
                             "tag name")
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, str):
                _checked_text(f"tags[{key!r}]", v)
            try:
                _tag(key, v)
            except struct.error:
                raise ValueError(f"tags[{key!r}]={v!r} is outside the allowed range "
                                 f"{-2**63}..{2**63 - 1} (Int8)") from None
        out[key] = value
    return out


#: Tag names only write_phu sets (the user's ``tags`` may not replace them).
_RESERVED = {r[0] for r in _records([_checked_curve(0, PhuCurve(np.zeros(1), 1.0, 0.0, 0.0))],
                                    "", "", {})} | {ident for ident, _ in _OWN_CURVE_TAGS}


def write_phu(path: str | os.PathLike, curves, *, comment: str = "", sample: str | None = None,
              tags: Mapping[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write ``curves`` (a :class:`~.tcspc.TCSPCResult`, a :class:`PhuCurve`, or a sequence of
    them, e.g. decay and IRF) to the PHU file ``path`` and return its path.

    ``comment`` -> ``File_Comment``; ``sample`` (a name) -> ``SpinLight_Sample``; ``tags``:
    extra global tags (bool/int/float/str/datetime/None, or a list of them for an indexed tag),
    never one this function writes. An existing file is kept unless ``overwrite``. Everything is
    validated before the file is opened; errors name the parameter, the value and the range.
    """
    items = [curves] if isinstance(curves, (TCSPCResult, PhuCurve)) else curves
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)) or not items:
        raise ValueError(f"curves={curves!r} must be a TCSPCResult, a PhuCurve or a non-empty "
                         "sequence of them")
    checked = []
    for i, c in enumerate(items):
        if isinstance(c, TCSPCResult):
            c = PhuCurve.from_result(c)
        if not isinstance(c, PhuCurve):
            raise TypeError(f"curves[{i}] is a {type(c).__name__}; allowed: TCSPCResult, PhuCurve")
        checked.append(_checked_curve(i, c))
    comment = _checked_text("comment", comment)
    sample = None if sample is None else _checked_text("sample", sample)
    extra = _checked_tags(tags)
    recs = _records(checked, comment, sample, extra)
    # the header size does not depend on the offset values: measure it, then fill them in
    start = len(PHU_MAGIC) + len(PHU_VERSION) + sum(len(_tag(*r)) for r in recs)
    sizes = [c["counts"].nbytes for c in checked]
    offsets = [start + sum(sizes[:i]) for i in range(len(checked))]
    header = b"".join(_tag(k, offsets[i] if k == "HistResDscr_DataOffset" else v, i)
                      for k, v, i in recs)
    blob = PHU_MAGIC + PHU_VERSION + header + b"".join(c["counts"].tobytes() for c in checked)
    out = Path(path)
    try:
        with open(out, "wb" if overwrite else "xb") as fh:
            fh.write(blob)
    except FileExistsError:
        raise FileExistsError(f"path={str(out)!r} exists; pass overwrite=True to replace it") from None
    return out
