"""Sample metadata carried in every start document (validated before anything moves)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from spinlight.instruments.errors import check_range


@dataclass(frozen=True)
class Sample:
    """What was measured: enough to turn emu into emu/mol per formula unit.

    ``ions`` maps a magnetic ion to its count per formula unit (``{"Nd": 1.32, "Yb": 1.68}``);
    ``diamagnetic_emu_per_mol_Oe`` is the (negative) core diamagnetism to subtract.
    """

    name: str
    mass_mg: float
    molar_mass_g_per_mol: float
    formula: str = ""
    ions: Mapping[str, float] = field(default_factory=dict)
    diamagnetic_emu_per_mol_Oe: float = 0.0
    holder: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"sample name={self.name!r} must be a non-empty string")
        check_range("mass_mg", self.mass_mg, 0.001, 5000.0, "mg")
        check_range("molar_mass_g_per_mol", self.molar_mass_g_per_mol, 1.0, 1.0e6, "g/mol")
        check_range("diamagnetic_emu_per_mol_Oe", self.diamagnetic_emu_per_mol_Oe, -1.0, 0.0,
                    "emu/mol/Oe")
        for ion, count in dict(self.ions).items():
            check_range(f"ions[{ion!r}]", count, 1e-6, 1000.0, "per formula unit")

    @property
    def ions_per_formula_unit(self) -> float:
        return float(sum(dict(self.ions).values()))

    def to_md(self) -> dict:
        """The ``sample`` entry of a start document (JSON-safe)."""
        return {
            "name": self.name,
            "formula": self.formula,
            "mass_mg": float(self.mass_mg),
            "molar_mass_g_per_mol": float(self.molar_mass_g_per_mol),
            "ions": {k: float(v) for k, v in dict(self.ions).items()},
            "ions_per_formula_unit": self.ions_per_formula_unit,
            "diamagnetic_emu_per_mol_Oe": float(self.diamagnetic_emu_per_mol_Oe),
            "holder": self.holder,
        }

    @classmethod
    def from_md(cls, md: Mapping) -> "Sample":
        return cls(name=md["name"], mass_mg=md["mass_mg"],
                   molar_mass_g_per_mol=md["molar_mass_g_per_mol"],
                   formula=md.get("formula", ""), ions=dict(md.get("ions", {})),
                   diamagnetic_emu_per_mol_Oe=md.get("diamagnetic_emu_per_mol_Oe", 0.0),
                   holder=md.get("holder", ""))


def as_sample(sample) -> Sample:
    """A :class:`Sample` from a Sample or a dict of sample metadata (as in a start document)."""
    if isinstance(sample, Sample):
        return sample
    if isinstance(sample, Mapping):
        return Sample.from_md(sample)
    raise ValueError(f"sample={sample!r} must be a spinlight Sample or a dict of sample metadata")


def finite_list(parameter: str, values, low: float, high: float, unit: str) -> list[float]:
    """Validate a non-empty list of numbers, each inside ``low..high``."""
    try:
        items = [float(v) for v in values]
    except TypeError:
        raise ValueError(f"{parameter}={values!r} must be a list of numbers ({low}..{high} {unit})") from None
    if not items:
        raise ValueError(f"{parameter} is empty; give at least one value in {low}..{high} {unit}")
    for i, v in enumerate(items):
        if not math.isfinite(v):
            raise ValueError(f"{parameter}[{i}]={v!r} is not finite; allowed range {low}..{high} {unit}")
        check_range(f"{parameter}[{i}]", v, low, high, unit)
    return items
