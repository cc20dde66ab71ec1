"""Shared pieces of the Quantum Design MultiVu ``.dat`` format.

Used by the reader (:mod:`spinlight.instruments.qd_dat`), the writer
(:mod:`.qd_dat_writer`) and the follower (:mod:`.qd_dat_follower`): the MPMS3 column layout,
time-base conversions, MultiVu-style number formatting and an incremental line parser that
both ``read_dat`` and ``DatFollower`` feed, so the two can never disagree about a file.

Format facts (see shared/reference/instruments.md §2.4):
- ``[Header]`` then keyword lines (``TITLE``, ``FILEOPENTIME``, ``BYAPP``, ``INFO`` ...), then
  ``[Data]``, the column header row and comma-separated rows; empty fields = not measured.
- MPMS3 ``Time Stamp (sec)`` / ``FILEOPENTIME``: seconds since 1899-12-30 00:00 *local* time
  (OLE date). MPMS-XL ``Time`` and MultiPyVu-written files: Unix seconds.
"""

from __future__ import annotations

import csv
import math
import re
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Iterable
from zoneinfo import ZoneInfo

import numpy as np

__all__ = [
    "DatFormatError",
    "MPMS3_COLUMNS",
    "MPMS3_FIELDGROUPS",
    "MPMS3_AC_COLUMNS",
    "PPMS_ACMS_COLUMNS",
    "OLE_EPOCH",
    "ole_to_unix",
    "unix_to_ole",
    "ole_to_datetime",
    "format_value",
    "quote_text",
    "time_base_of",
]


class DatFormatError(ValueError):
    """A malformed ``.dat`` file; the message names the file and (when known) the line."""

    def __init__(self, path: str | Path, lineno: int | None, message: str):
        self.path = str(path)
        self.lineno = lineno
        self.detail = message
        where = f"{self.path}, line {lineno}" if lineno is not None else self.path
        super().__init__(f"{where}: {message}")


# Header row of a real MPMS3 file (MultiVu 2.3.4, copied from mpms3_dc_m_vs_t_ErBAT.dat).
MPMS3_COLUMNS: tuple[str, ...] = (
    "Comment", "Time Stamp (sec)", "Temperature (K)", "Magnetic Field (Oe)", "Moment (emu)",
    "M. Std. Err. (emu)", "Transport Action", "Averaging Time (sec)", "Frequency (Hz)",
    "Peak Amplitude (mm)", "Center Position (mm)", "Lockin Signal' (V)", "Lockin Signal (V)",
    "Range", "M. Quad. Signal (emu)", "AC Moment (emu)", "AC M. Std Err. (emu)",
    "AC Phase (deg)", "AC Phase Std. Err. (deg)", "AC Susceptibility (emu/Oe)",
    "AC Suscept. Std Err. (emu/Oe)", "AC X' (emu/Oe)", "AC X' Std Err. (emu/Oe)",
    "AC X'' (emu/Oe)", "AC X'' Std Err. (emu/Oe)", "AC Drive (Oe)", "AC Frequency (Hz)",
    "AC Averaging Time (sec)", "AC Cycles", "AC Range", "AC Measure Type", "AC Signal' (V)",
    "AC Signal'' (V)", "AC Trim Coil Ratio", "AC Trim Coil Phase", "Min. Temperature (K)",
    "Max. Temperature (K)", "Min. Field (Oe)", "Max. Field (Oe)", "Mass (grams)",
    "Motor Lag (deg)", "Pressure (Torr)", "Measure Count", "Measurement Number",
    "SQUID Status (code)", "Motor Status (code)", "Measure Status (code)",
    "Motor Current (amps)", "Motor Temp. (C)", "Temp. Status (code)", "Field Status (code)",
    "Chamber Status (code)", "Chamber Temp (K)", "Redirection State", "Evercool Status",
    "Average Temp (K)", "Rotation Angle (deg)", "Rotator state", "DC Moment Fixed Ctr (emu)",
    "DC Moment Err Fixed Ctr (emu)", "DC Moment Free Ctr (emu)", "DC Moment Err Free Ctr (emu)",
    "DC Fixed Fit", "DC Free Fit", "DC Calculated Center (mm)", "DC Calculated Center Err (mm)",
    "DC Scan Length (mm)", "DC Scan Time (s)", "DC Number of Points", "DC Squid Drift",
    "DC Min V (V)", "DC Max V (V)", "DC Scans per Measure",
    *(f"Map {i:02d}" for i in range(1, 17)),
)

# FIELDGROUP lines of the real MPMS3 files, verbatim (MultiVu's own numbering).
MPMS3_FIELDGROUPS: tuple[str, ...] = (
    "FIELDGROUP, VSM,2,3,4,5,6,8,9,10,11,14,15",
    "FIELDGROUP, DC, 2,3,4,14,56,57,58,59,60,61,62,63,64,65,66,67,68,69",
    "FIELDGROUP, AC, 2,3,4,11,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30",
)

# The AC option's columns of the MPMS3 layout (an ac row fills these; the VSM ones stay empty).
MPMS3_AC_COLUMNS: tuple[str, ...] = tuple(c for c in MPMS3_COLUMNS if c.startswith("AC "))

# PPMS ACMS layout written by spinlight's simulator. [inferred] No verbatim ACMS header was
# found (instruments.md §2.4): the order Comment, Time Stamp, Temperature, Magnetic Field,
# Frequency, Amplitude, M-DC, M-Std.Dev. (of M-DC), M', M'' follows public ACMS loaders; the
# error, averaging, cycle and status columns are spinlight's. Moment-type values in emu
# (divide by Amplitude for emu/Oe); every name resolves through qd_dat.AC_ALIASES.
PPMS_ACMS_COLUMNS: tuple[str, ...] = (
    "Comment", "Time Stamp (sec)", "Temperature (K)", "Magnetic Field (Oe)", "Frequency (Hz)",
    "Amplitude (Oe)", "M-DC (emu)", "M-Std.Dev. (emu)", "M' (emu)", "M'' (emu)",
    "M' Std Err. (emu)", "M'' Std Err. (emu)", "Averaging Time (sec)", "Number of Cycles",
    "Min. Temperature (K)", "Max. Temperature (K)", "Measurement Number",
    "Temp. Status (code)", "Field Status (code)", "Chamber Status (code)",
)

# --------------------------------------------------------------------------------------------
# time bases

OLE_EPOCH = datetime(1899, 12, 30)
# OLE seconds for 1979-12-30 (2.52e9) equal Unix seconds for 2049: a clean split between bases.
_OLE_UNIX_SPLIT = 2.5e9


def _tz(tz: tzinfo | str | None) -> tzinfo | None:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _scalar_or_array(func, values, tz):
    zone = _tz(tz)
    if np.ndim(values) == 0:
        return func(float(values), zone)
    arr = np.asarray(values, dtype=float)
    return np.array([func(v, zone) for v in arr.ravel()], dtype=float).reshape(arr.shape)


def ole_to_datetime(seconds: float) -> datetime:
    """Naive wall-clock datetime of OLE seconds (as MultiVu displays it)."""
    return OLE_EPOCH + timedelta(seconds=float(seconds))


def _ole_to_unix1(s: float, zone: tzinfo | None) -> float:
    if not math.isfinite(s):
        return math.nan
    whole = math.floor(s)
    naive = OLE_EPOCH + timedelta(seconds=whole)
    # naive.timestamp() interprets the wall clock as this machine's local time (like MultiVu)
    base = naive.replace(tzinfo=zone).timestamp() if zone is not None else naive.timestamp()
    return base + (s - whole)


def _unix_to_ole1(t: float, zone: tzinfo | None) -> float:
    if not math.isfinite(t):
        return math.nan
    whole = math.floor(t)
    if zone is None:
        wall = datetime.fromtimestamp(whole)
    else:
        wall = datetime.fromtimestamp(whole, zone).replace(tzinfo=None)
    delta = wall - OLE_EPOCH
    return delta.days * 86400.0 + delta.seconds + (t - whole)


def ole_to_unix(seconds, tz: tzinfo | str | None = None):
    """OLE seconds (since 1899-12-30 00:00 wall clock in ``tz``) -> Unix seconds.

    ``tz=None`` means this machine's local time zone, which is what MultiVu uses on the
    instrument PC; pass a zone name (``"Europe/Berlin"``) or tzinfo for files from elsewhere.
    Scalars give floats, sequences give numpy arrays; NaN stays NaN.
    """
    return _scalar_or_array(_ole_to_unix1, seconds, tz)


def unix_to_ole(t, tz: tzinfo | str | None = None):
    """Unix seconds -> OLE seconds (wall clock in ``tz``, default local). Inverse of ole_to_unix."""
    return _scalar_or_array(_unix_to_ole1, t, tz)


def time_base_of(value: float | None, flavor: str) -> str:
    """``"ole"`` or ``"unix"`` for a file: by magnitude of a time value, else by flavor."""
    if value is not None and math.isfinite(value) and value > 1e8:
        return "ole" if value > _OLE_UNIX_SPLIT else "unix"
    return "ole" if flavor in ("MPMS3", "PPMS") else "unix"


# --------------------------------------------------------------------------------------------
# number / text formatting (writer side)

_EXP_RE = re.compile(r"E([+-])0*(\d+)$")


def format_value(value: Any) -> str:
    """Format one field as MultiVu does: floats with up to 15 significant digits, ``E``
    exponent without ``+`` or leading zeros (``5.90135797363434E-5``); None/NaN -> empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return quote_text(value)
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if math.isnan(v):
        return ""
    if math.isinf(v):
        return "INF" if v > 0 else "-INF"
    text = f"{v:.15G}"
    m = _EXP_RE.search(text)
    if m:
        sign = "-" if m.group(1) == "-" else ""
        text = f"{text[:m.start()]}E{sign}{m.group(2)}"
    return text


def quote_text(text: str) -> str:
    """A text field; quoted (CSV style) when it holds a comma, quote or edge spaces.
    Line breaks become spaces: one row must stay one line."""
    text = str(text).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    if any(c in text for c in ',"') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


# --------------------------------------------------------------------------------------------
# incremental parser

_MULTI_KEYS = {"DATATYPE", "STARTUPAXIS", "FIELDGROUP", "PLOT_APPEARANCE"}
_UPPER_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
COMMENT_COLUMNS = ("Comment",)
TIME_COLUMNS = ("Time Stamp (sec)", "Time")


def split_csv(line: str) -> list[str]:
    """One CSV line -> fields; quotes only count at a field start (``m" (emu)`` stays as is)."""
    return next(csv.reader([line], skipinitialspace=False, strict=False), [])


def _parse_info(rest: str, fields: list[str]) -> tuple[str, str]:
    """INFO line -> (KEY, value). MPMS3: ``INFO,<value>,<KEY>`` (value may contain commas);
    MPMS-XL: ``INFO, KEY, value`` (space after the comma) or ``INFO, KEY: value``."""
    if not fields:
        return "", ""
    last = fields[-1].strip()
    if not rest[:1].isspace() and len(fields) >= 2 and _UPPER_KEY.match(last):
        return last, ",".join(fields[:-1]).strip()
    key = fields[0].strip()
    value = ",".join(fields[1:]).strip()
    if len(fields) == 1 and ":" in key:
        key, _, value = key.partition(":")
    return key.rstrip(":").strip(), value.strip()


def detect_flavor(header: dict, comment_lines: Iterable[str], columns: Iterable[str]) -> str:
    """MPMS3 / MPMS-XL / PPMS / MultiPyVu from the header (columns as the last resort)."""
    byapp = str(header.get("BYAPP", "")).lower()
    appname = str(header.get("APPNAME", "")).lower()
    notes = " ".join(comment_lines).lower()
    if "multivudatafile" in byapp:
        return "MultiPyVu"
    if "mpms3" in notes or "mpms3" in appname or "mpms3" in byapp or byapp.startswith("squid"):
        return "MPMS3"
    if any(k in s for s in (notes, appname, byapp)
           for k in ("ppms", "acms", "dynacool", "versalab")) or byapp.startswith("vsm"):
        return "PPMS"
    if "mpms" in byapp or "mpms" in appname:
        return "MPMS-XL"
    cols = set(columns)
    if "DC Moment Free Ctr (emu)" in cols or "Moment (emu)" in cols and "Time Stamp (sec)" in cols:
        return "MPMS3"
    if "Long Moment (emu)" in cols:
        return "MPMS-XL"
    return "unknown"


class DatParser:
    """Line-by-line state machine for a ``.dat`` file.

    ``feed(line, lineno)`` takes one complete line (without its line break) and returns
    ``None`` (header / blank line), ``("row", dict)`` or ``("comment", (time_raw, text))``.
    Raises :class:`DatFormatError` naming the file and line for malformed input.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.state = "start"          # start -> header -> columns -> data
        self.header: dict[str, Any] = {}
        self.info: dict[str, str] = {}
        self.header_comments: list[str] = []
        self.columns: list[str] = []
        self.comment_index: int | None = None
        self.time_index: int | None = None
        self.file_open_time_raw: float | None = None

    @property
    def in_data(self) -> bool:
        return self.state == "data"

    def error(self, lineno: int | None, message: str) -> DatFormatError:
        return DatFormatError(self.path, lineno, message)

    def feed(self, line: str, lineno: int):
        line = line.rstrip("\r\n")
        if self.state == "data":
            return self._data(line, lineno) if line.strip() else None
        stripped = line.strip()
        if not stripped:
            return None
        if self.state == "start":
            if stripped.lower() == "[header]":
                self.state = "header"
                return None
            if stripped.lower() == "[data]":
                self.state = "columns"
                return None
            raise self.error(lineno, f"not a MultiVu .dat file: expected '[Header]', got {stripped[:40]!r}")
        if self.state == "header":
            if stripped.lower() == "[data]":
                self.state = "columns"
            elif stripped.startswith(";"):
                self.header_comments.append(stripped[1:].strip())
            else:
                self._header_line(line)
            return None
        # state == "columns": the column header row
        names = [c.strip() for c in split_csv(line)]
        while names and not names[-1]:
            names.pop()                   # MPMS-XL rows end with a comma
        if not names or any(not n for n in names):
            raise self.error(lineno, f"bad column header row {stripped[:60]!r}")
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise self.error(lineno, f"duplicate column names {sorted(dup)}")
        self.columns = names
        self.comment_index = next((names.index(c) for c in COMMENT_COLUMNS if c in names), None)
        self.time_index = next((names.index(c) for c in TIME_COLUMNS if c in names), None)
        self.state = "data"
        return None

    def _header_line(self, line: str) -> None:
        key, _, rest = line.partition(",")
        key = key.strip().upper()
        fields = split_csv(rest) if rest else []
        if key == "INFO":
            k, v = _parse_info(rest, fields)
            if k:
                self.info[k] = v
                if k not in ("TITLE", "BYAPP", "FILEOPENTIME"):   # never shadow keyword lines
                    self.header[k] = v
        elif key in _MULTI_KEYS:
            self.header.setdefault(key, []).append([f.strip() for f in fields])
        elif key == "FILEOPENTIME":
            self.header[key] = rest.strip()
            m = _NUMBER.search(rest)
            self.file_open_time_raw = float(m.group()) if m else None
        elif key == "BYAPP":
            self.header[key] = ",".join(f.strip() for f in fields)
        elif key:
            self.header[key] = rest.strip() if key != "TITLE" else ",".join(fields).strip()

    def _data(self, line: str, lineno: int):
        fields = split_csv(line)
        ncol = len(self.columns)
        if len(fields) > ncol:
            if any(f.strip() for f in fields[ncol:]):
                raise self.error(lineno, f"{len(fields)} fields but only {ncol} columns")
            fields = fields[:ncol]
        row: dict[str, Any] = {}
        filled = 0
        for i, name in enumerate(self.columns):
            raw = fields[i].strip() if i < len(fields) else ""
            if i == self.comment_index:
                row[name] = raw if raw else None
                continue
            if not raw:
                row[name] = None
                continue
            try:
                row[name] = float(raw)
            except ValueError:
                row[name] = raw           # text in a data column: kept, column() reports it
            if i != self.time_index:
                filled += 1
        ci = self.comment_index
        if ci is not None and row[self.columns[ci]] is not None and filled == 0:
            t = row[self.columns[self.time_index]] if self.time_index is not None else None
            return "comment", (t if isinstance(t, float) else None, row[self.columns[ci]])
        return "row", row
