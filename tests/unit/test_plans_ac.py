"""ac plans without hardware: frequency sharing between instruments, validation at call time."""

from types import SimpleNamespace

import pytest

from spinlight.plans import Sample
from spinlight.plans.ac import AcStation, ac_field_scan, ac_temperature_scan, assign_frequencies


def station(name, f_range, t_range=(1.8, 400.0), rate=(0.01, 20.0), field_rate=(0.1, 700.0)):
    system = SimpleNamespace(name=name)
    det = SimpleNamespace(name=f"{name}_ac")
    return AcStation(system, det, f_range, (0.1, 10.0), t_range, (-70000.0, 70000.0), (0.5, 600.0),
                     (1, 1000), rate, field_rate)


MPMS3 = station("mpms3", (0.1, 1000.0))
PPMS = station("ppms", (10.0, 10000.0), t_range=(1.9, 350.0), field_rate=(10.5, 196.0))
SAMPLE = Sample(name="s", mass_mg=10, molar_mass_g_per_mol=500)


def test_each_frequency_goes_to_the_first_station_covering_it():
    freqs = [0.1, 1, 10, 100, 1000, 2000, 10000]
    assert assign_frequencies([MPMS3, PPMS], freqs) == {"mpms3": [0.1, 1, 10, 100, 1000],
                                                         "ppms": [2000, 10000]}
    # preference follows the order given
    assert assign_frequencies([PPMS, MPMS3], freqs) == {"ppms": [10, 100, 1000, 2000, 10000],
                                                         "mpms3": [0.1, 1]}
    assert assign_frequencies([MPMS3, PPMS], [1, 2]) == {"mpms3": [1.0, 2.0]}


def test_a_frequency_in_a_gap_names_it_and_every_range():
    low = station("a", (0.1, 10.0))
    high = station("b", (100.0, 1000.0))
    with pytest.raises(ValueError, match=r"frequencies_Hz\[1\]=50 Hz is covered by no instrument "
                                         r"\(a 0.1-10 Hz, b 100-1000 Hz\)"):
        assign_frequencies([low, high], [1, 50, 500])


def test_validation_per_station_happens_at_call_time():
    # devices are never touched: the errors come from the calls
    with pytest.raises(ValueError, match=r"temperatures_K\[0\] \(on ppms\)=1.8 K is outside"):
        ac_temperature_scan([MPMS3, PPMS], SAMPLE, temperatures_K=[1.8, 2.0], field_Oe=1000,
                            frequencies_Hz=[1, 5000])
    # the MPMS3 alone may go to 1.8 K
    ac_temperature_scan([MPMS3, PPMS], SAMPLE, temperatures_K=[1.8, 2.0], field_Oe=1000,
                        frequencies_Hz=[1, 100])
    with pytest.raises(ValueError, match=r"field_rate_Oe_per_s \(on ppms\)=300"):
        ac_field_scan([MPMS3, PPMS], SAMPLE, temperature_K=2.0, fields_Oe=[0, 1000],
                      frequencies_Hz=[1, 5000], field_rate_Oe_per_s=300)
    with pytest.raises(ValueError, match="cycles"):
        ac_field_scan([MPMS3], SAMPLE, temperature_K=2.0, fields_Oe=[0], frequencies_Hz=[1],
                      cycles=0)
    with pytest.raises(ValueError, match="duplicate"):
        ac_field_scan([MPMS3, MPMS3], SAMPLE, temperature_K=2.0, fields_Oe=[0], frequencies_Hz=[1])
    with pytest.raises(ValueError, match="sample"):
        ac_field_scan([MPMS3], "not a sample", temperature_K=2.0, fields_Oe=[0], frequencies_Hz=[1])
