"""Plain-text tables of 2 or 3 numbers a row (``x  y  [σ]``) with ``# key: value`` header
lines: the format of factory correction files and calibration certificates. One reader, so
both give the same errors and accept the same separators (blanks or commas)."""

from __future__ import annotations

import numpy as np


def read_xy_table(text: str, *, where: str, columns: str) -> tuple[dict[str, str], np.ndarray]:
    """(header, table): ``header`` maps the lower-cased keys of ``# key: value`` lines to their
    values (other ``#`` lines are comments); ``table`` has shape (rows, 3), the third column 0
    where a row has only 2 numbers. ``where`` names the source in errors, ``columns`` the
    expected row (e.g. ``'wavelength_nm  irradiance  [uncertainty_%]'``). ValueError for a row
    that is not 2 or 3 numbers (naming its line) or fewer than 2 rows."""
    header, rows = {}, []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                header[key.strip().lower()] = value.strip()
            continue
        if not line:
            continue
        try:
            values = [float(v) for v in line.replace(",", " ").split()]
        except ValueError:
            values = []
        if len(values) not in (2, 3):
            raise ValueError(f"{where} line {n}: {line!r}; allowed: '{columns}' (2 or 3 numbers)")
        rows.append(values + [0.0] * (3 - len(values)))
    if len(rows) < 2:
        raise ValueError(f"{where} has {len(rows)} data rows; allowed: at least 2")
    return header, np.asarray(rows, dtype=float)
