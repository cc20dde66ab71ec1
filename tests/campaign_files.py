"""Test helper: pieces of campaign files (TOML text) and writing them. Imported by tests as
``from campaign_files import ...`` (``tests/`` is on ``sys.path`` because of its
``conftest.py``)."""

from __future__ import annotations

import pathlib

# the simulator presets used by the campaign tests: molar mass (g/mol) and the rare-earth ion
_PRESETS = {"mCB-Nd": (2312.0, "Nd"), "mCB-Yb": (2428.0, "Yb")}


def sample_toml(name: str = "mCB-Nd", mass_mg: float = 20.0) -> str:
    """A ``[[samples]]`` entry for a simulator preset (3 ions per molecule)."""
    molar_mass, ion = _PRESETS[name]
    return (f'\n[[samples]]\nname = "{name}"\nmass_mg = {mass_mg}\n'
            f"molar_mass_g_per_mol = {molar_mass}\nions = {{ {ion} = 3 }}\n")


def measurement_toml(plan: str, options: str = "", *, sample: str = "mCB-Nd",
                     stations: list[str] | None = None) -> str:
    """A ``[[measurements]]`` entry; ``options`` are its further TOML lines."""
    st = f"stations = {stations!r}\n".replace("'", '"') if stations else ""
    body = f"{st}{options}\n" if st or options else ""
    return f'\n[[measurements]]\nplan = "{plan}"\nsample = "{sample}"\n{body}'


def small_m_h_toml(sample: str) -> str:
    """A three-point M(H) at 2 K (0, 2500, 5000 Oe): the shortest real measurement."""
    return measurement_toml("m_h", "temperatures_K = [2.0]\nfields_Oe = [0.0, 2500.0, 5000.0]",
                            sample=sample)


def write_toml(folder: pathlib.Path, name: str, text: str) -> pathlib.Path:
    """``text`` written to ``folder/name``; returns the path."""
    path = folder / name
    path.write_text(text)
    return path
