"""Campaign files: every bad input is reported at once, with file, line, key, value and range;
the example campaigns load; validation is the plans' own."""

import pathlib
import textwrap

import pytest

from campaign_files import measurement_toml, sample_toml, write_toml
from spinlight.campaign import CampaignError, load_campaign
from spinlight.campaign_lines import KeyLines
from spinlight.campaign_schema import REGISTRY
from spinlight.cli import main
from spinlight.plans import Sample
from spinlight.plans.checks import PlanArgumentError
from spinlight.plans.dc import chi_t

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"

SIM = """
[instruments]
mode = "sim"
"""
SAMPLE = sample_toml("mCB-Nd")
CHI_T = measurement_toml("chi_t")
REAL_MPMS3 = """
[instruments.mpms3]
host = "192.168.1.20"
dat_folder = "data"
"""


def ac(plan, options, stations=None):
    """A [[measurements]] entry of mCB-Nd."""
    return measurement_toml(plan, options, stations=stations)


# (id, campaign text, key of the problem, text of the line it must point to, fragments)
CASES = [
    ("unknown top-level key", SIM + SAMPLE + CHI_T + '[campaing]\nname = "x"\n',
     "campaing", "[campaing]", ["unknown key 'campaing' in the campaign file",
                                "did you mean 'campaign'?"]),
    ("unknown option, did you mean", SIM + SAMPLE + CHI_T + "temperature_K = [2.0, 3.0]\n",
     "measurements[0].temperature_K", "temperature_K = [2.0, 3.0]",
     ["unknown key 'temperature_K' in plan chi_t", "did you mean 'temperatures_K'?",
      "allowed: approach, averaging_time_s"]),
    ("missing sample mass", SIM + SAMPLE.replace("mass_mg = 20.0\n", "") + CHI_T,
     "samples[0].mass_mg", "[[samples]]", ["mass_mg is missing from [[samples]] (required"]),
    ("sample mass out of range (Sample's own check)", SIM + SAMPLE.replace("20.0", "-5.0") + CHI_T,
     "samples[0].mass_mg", "mass_mg = -5.0", ["mass_mg=-5.0 mg is outside the allowed range 0.001..5000.0 mg"]),
    ("temperature below the MPMS3 limit", SIM + SAMPLE + ac("m_h", "temperatures_K = [1.5, 2.0]\nfields_Oe = [0, 1000]"),
     "measurements[0].temperatures_K", "temperatures_K = [1.5, 2.0]",
     ["temperatures_K[0]=1.5 K is outside the allowed range 1.8..400.0 K"]),
    ("temperature below the PPMS limit", SIM + SAMPLE + ac(
        "ac_temperature_scan", "temperatures_K = [1.8, 2.0]\nfield_Oe = 1000.0\nfrequencies_Hz = [1.0, 5000.0]"),
     "measurements[0].temperatures_K", "temperatures_K = [1.8, 2.0]",
     ["temperatures_K[0] (on ppms)=1.8 K is outside the allowed range 1.9..350.0 K"]),
    ("field rate too high", SIM + SAMPLE + ac("m_h", "temperatures_K = [2.0]\nfields_Oe = [0, 1000]\n"
                                                     "field_rate_Oe_per_s = 1000.0"),
     "measurements[0].field_rate_Oe_per_s", "field_rate_Oe_per_s = 1000.0",
     ["field_rate_Oe_per_s=1000.0 Oe/s is outside the allowed range 0.1..700.0 Oe/s"]),
    ("ac frequency outside both instruments", SIM + SAMPLE + ac(
        "ac_frequency_sweep", "temperature_K = 2.0\nfield_Oe = 1000.0\nfrequencies_Hz = [1.0, 20000.0]"),
     "measurements[0].frequencies_Hz", "frequencies_Hz = [1.0, 20000.0]",
     ["frequencies_Hz[1]=20000.0 Hz is outside the allowed range 0.1..10000.0 Hz"]),
    ("ac frequency below the only station's range", SIM + SAMPLE + ac(
        "ac_frequency_sweep", "temperature_K = 2.0\nfield_Oe = 1000.0\nfrequencies_Hz = [1.0]", ["ppms"]),
     "measurements[0].frequencies_Hz", "frequencies_Hz = [1.0]",
     ["frequencies_Hz[0]=1.0 Hz is outside the allowed range 10.0..10000.0 Hz"]),
    ("unknown sample", SIM + SAMPLE + CHI_T.replace('"mCB-Nd"', '"mCB-Ng"'),
     "measurements[0].sample", 'sample = "mCB-Ng"',
     ["sample='mCB-Ng' is not defined in [[samples]]", "did you mean 'mCB-Nd'?"]),
    ("instrument not configured", REAL_MPMS3 + SAMPLE + CHI_T + ac(
        "emission_spectrum", "excitation_nm = 300.0\nstart_nm = 900.0\nstop_nm = 1000.0\nstep_nm = 5.0"),
     "measurements[1].plan", 'plan = "emission_spectrum"',
     ["needs instrument 'fluorometer', which is not configured"]),
    ("wrong type", SIM + SAMPLE + CHI_T + 'field_Oe = "1000"\n', "measurements[0].field_Oe",
     'field_Oe = "1000"', ["field_Oe='1000' must be a number (finite), got str"]),
    ("negative step (plan's own check)", SIM + SAMPLE + ac(
        "emission_spectrum", "excitation_nm = 300.0\nstart_nm = 900.0\nstop_nm = 1000.0\nstep_nm = -2.0"),
     "measurements[0].step_nm", "step_nm = -2.0", ["step_nm=-2.0 nm is outside the allowed range 0.001.."]),
    ("negative step in a range table", SIM + SAMPLE + ac(
        "m_h", "temperatures_K = [2.0]\nfields_Oe = { start = 0, stop = 1000, step = -100 }"),
     "measurements[0].fields_Oe.step", "fields_Oe = { start", ["step=-100 must be a number > 0"]),
    ("unknown plan", SIM + SAMPLE + CHI_T.replace('"chi_t"', '"chit"'), "measurements[0].plan",
     'plan = "chit"', ["plan='chit' is not a known plan", "did you mean 'chi_t'?"]),
    ("missing required option", SIM + SAMPLE + ac("m_h", "temperatures_K = [2.0]"), "measurements[0]",
     "[[measurements]]", ["option fields_Oe (list of numbers) is required by plan m_h"]),
    ("integer option given a fraction", SIM + SAMPLE + ac(
        "ac_field_scan", "temperature_K = 2.0\nfields_Oe = [0]\nfrequencies_Hz = [1.0]\ncycles = 2.5"),
     "measurements[0].cycles", "cycles = 2.5", ["cycles=2.5 must be an integer, got float"]),
    ("repetition rate too high for the lifetime", SIM + SAMPLE + ac(
        "lifetime_decay", "emission_nm = 1060.0\nexpected_lifetime_ns = 608.0\nrepetition_rate_hz = 1e7"),
     "measurements[0].repetition_rate_hz", "repetition_rate_hz = 1e7",
     ["repetition_rate_hz=10000000.0 Hz", "is outside the allowed range 1..328900 Hz"]),
    ("excitation beyond the Xe lamp", SIM + SAMPLE + ac(
        "emission_spectrum", "excitation_nm = 1200.0\nstart_nm = 900.0\nstop_nm = 1000.0\nstep_nm = 5.0"),
     "measurements[0].excitation_nm", "excitation_nm = 1200.0",
     ["excitation_nm=1200.0 nm (Xe lamp) is outside the allowed range 230.0..1000.0"]),
    ("one MCE isotherm", SIM + SAMPLE + ac("mce_isotherms", "temperatures_K = [2.0]"),
     "measurements[0].temperatures_K", "temperatures_K = [2.0]", ["at least 2 isotherms"]),
    ("stations on a dc plan", SIM + SAMPLE + CHI_T + 'stations = ["mpms3"]\n',
     "measurements[0].stations", 'stations = ["mpms3"]', ["unknown key 'stations' in plan chi_t"]),
    ("bad VISA resource", REAL_MPMS3 + '[instruments.ppms]\nresource = "GPIB0-15"\ndat_folder = "d"\n'
     + SAMPLE + CHI_T, "instruments.ppms.resource", 'resource = "GPIB0-15"',
     ["resource='GPIB0-15' is not of the expected form, e.g. 'GPIB0::15::INSTR'"]),
    ("laser with two connections", SIM + '[instruments.laser]\nkind = "taiko"\nhost = "h"\nport = 5\n'
     'library = "ctypes"\n' + SAMPLE + CHI_T, "instruments.laser", "[instruments.laser]",
     ["needs either host and port (simulator RPC) or library"]),
    ("helium resume below the suspend level", SIM + "[suspenders]\nhelium_min_percent = 40.0\n"
     "helium_resume_percent = 30.0\n" + SAMPLE + CHI_T, "suspenders.helium_resume_percent",
     "helium_resume_percent = 30.0", ["helium_resume_percent=30.0 % must be above helium_min_percent=40.0 %"]),
    ("unknown suspender", SIM + "[suspenders]\nhelium_min = 5.0\n" + SAMPLE + CHI_T,
     "suspenders.helium_min", "helium_min = 5.0", ["did you mean 'helium_min_percent'?"]),
    ("no simulator preset", SIM + SAMPLE.replace('"mCB-Nd"', '"NdX"') + CHI_T.replace('"mCB-Nd"', '"NdX"'),
     "samples[0].name", 'name = "NdX"', ["simulator preset 'NdX' does not exist"]),
    ("no ac model for the preset", SIM + SAMPLE.replace("ions", 'preset = "Gd6"\nions') + ac(
        "ac_frequency_sweep", "temperature_K = 2.0\nfield_Oe = 1000.0\nfrequencies_Hz = [1.0]"),
     "measurements[0].sample", 'sample = "mCB-Nd"', ["preset 'Gd6', which has no ac model"]),
    ("not TOML", SIM + SAMPLE + CHI_T + "field_Oe = = 3\n", "(syntax)", "field_Oe = = 3",
     ["not valid TOML"]),
]


def write(tmp_path, text, name="c.toml"):
    return write_toml(tmp_path, name, textwrap.dedent(text))


def problems(path, **kw):
    with pytest.raises(CampaignError) as err:
        load_campaign(path, **kw)
    return err.value


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_campaign_is_refused_naming_file_line_key_and_range(tmp_path, case):
    _, text, key, line_text, fragments = case
    path = write(tmp_path, text)
    err = problems(path)
    lines = path.read_text().splitlines()
    expected_line = next(i for i, t in enumerate(lines, 1) if t.startswith(line_text))
    mine = [p for p in err.problems if p.key == key]
    assert mine, f"no problem at {key}; got:\n{err}"
    assert mine[0].line == expected_line, str(err)
    text_out = str(mine[0])
    assert text_out.startswith(f"{path}:{expected_line}: {key}: ")
    for fragment in fragments:
        assert fragment in text_out, f"{fragment!r} not in {text_out!r}"


def test_all_problems_are_reported_at_once_in_file_order(tmp_path):
    text = (REAL_MPMS3 + SAMPLE.replace("mass_mg = 20.0\n", "") + CHI_T
            + "rate_K_per_min = 50.0\nfield_rate_Oe_per_s = 1000.0\ncolour = 1\n"
            + ac("ac_field_scan", "temperature_K = 2.0\nfields_Oe = [0]\nfrequencies_Hz = [1.0]",
                 ["mpms3", "ppms"])
            + ac("m_h", "temperatures_K = [1.0]\nfields_Oe = [0.0, 80000.0]"))
    path = write(tmp_path, text)
    err = problems(path)
    lines = path.read_text().splitlines()

    def line(t):
        return next(i for i, s in enumerate(lines, 1) if s.startswith(t))

    got = [(p.key, p.line) for p in err.problems]
    assert got == [
        ("samples[0].mass_mg", line("[[samples]]")),
        ("measurements[0].rate_K_per_min", line("rate_K_per_min = 50.0")),
        ("measurements[0].field_rate_Oe_per_s", line("field_rate_Oe_per_s = 1000.0")),
        ("measurements[0].colour", line("colour = 1")),
        ("measurements[1].stations", line('stations = ["mpms3", "ppms"]')),
        ("measurements[2].temperatures_K", line("temperatures_K = [1.0]")),
        ("measurements[2].fields_Oe", line("fields_Oe = [0.0, 80000.0]")),
    ], str(err)
    assert str(err).count("\n") == len(got) - 1      # one problem per line
    assert "station 'ppms' is not configured in [instruments]" in str(err.problems[4])
    assert err.problems[5].value == [1.0] and err.problems[6].value == [0.0, 80000.0]


def test_campaign_and_plan_give_the_same_messages(tmp_path):
    bad = {"rate_K_per_min": 50.0, "field_rate_Oe_per_s": 1000.0, "t_stop_K": 0.5}
    path = write(tmp_path, SIM + SAMPLE + CHI_T + "".join(f"{k} = {v}\n" for k, v in bad.items()))
    from_campaign = {p.key.split(".")[-1]: p.message for p in problems(path).problems}
    with pytest.raises(PlanArgumentError) as plan_err:
        chi_t(None, None, Sample(name="s", mass_mg=1, molar_mass_g_per_mol=100), **bad)
    assert dict(plan_err.value.problems) == from_campaign
    assert set(from_campaign) == set(bad)


def test_examples_load_and_cover_every_plan():
    quick = load_campaign(EXAMPLES / "quick_campaign.toml")
    paper = load_campaign(EXAMPLES / "paper_campaign.toml")
    assert quick.sim and not paper.sim
    assert {m.plan for m in quick.measurements + paper.measurements} == set(REGISTRY)
    assert list(paper.samples) == ["mCB-Nd", "mCB-Yb", "mCB-NdYb"]
    assert paper.samples["mCB-NdYb"].ions == {"Nd": 1.32, "Yb": 1.68}
    fields = {m.sample: m.options["field_Oe"] for m in paper.measurements
              if m.plan == "ac_temperature_scan"}
    assert fields == {"mCB-Nd": 1200.0, "mCB-Yb": 3000.0, "mCB-NdYb": 2000.0}
    sweep = quick.measurements[2]
    assert sweep.instruments == ("mpms3", "ppms")
    assert sweep.options["frequencies_Hz"][0] == 1.0 and sweep.options["frequencies_Hz"][-1] == pytest.approx(1e4)
    assert quick.measurements[1].options["fields_Oe"] == [0.0, 5000.0, 10000.0, 15000.0, 20000.0]
    assert sweep.arguments()["cycles"] == 10          # plan default filled in
    sim = paper.with_sim()
    assert sim.sim and sim.instruments.configured == ("mpms3", "ppms", "fluorometer", "tcspc", "laser")
    assert paper.settings.catalog == (EXAMPLES / "spinlight-data").resolve()


def test_real_campaign_checks_sim_presets_only_with_sim(tmp_path):
    text = REAL_MPMS3 + SAMPLE.replace('"mCB-Nd"', '"my powder"') + CHI_T.replace('"mCB-Nd"', '"my powder"')
    path = write(tmp_path, text)
    assert load_campaign(path).measurements[0].instruments == ("mpms3",)
    err = problems(path, sim=True)
    assert [p.key for p in err.problems] == ["samples[0].name"]


def test_check_command_prints_summary_or_problems(tmp_path, capsys):
    assert main(["check", str(EXAMPLES / "paper_campaign.toml")]) == 0
    out = capsys.readouterr().out
    assert "measurements (27):" in out and "ac_temperature_scan" in out and "GPIB0::15::INSTR" in out
    bad = write(tmp_path, SIM + SAMPLE + CHI_T + "rate_K_per_min = 50.0\nfield_Oe = 1e6\n")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    n = len(bad.read_text().splitlines())
    assert "2 problems" in err
    assert f"{bad}:{n - 1}: measurements[0].rate_K_per_min: rate_K_per_min=50.0 K/min" in err
    assert f"{bad}:{n}: measurements[0].field_Oe: field_Oe=1000000.0 Oe is outside" in err
    assert main(["check", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read the campaign file" in capsys.readouterr().err


def test_range_tables_expand_linear_log_and_downwards(tmp_path):
    text = SIM + SAMPLE + ac("ac_field_scan", "temperature_K = 2.0\n"
                             "fields_Oe = { start = 3000, stop = 0, step = 1000 }\n"
                             "frequencies_Hz = { start = 0.1, stop = 1000, num = 5, spacing = \"log\" }")
    m = load_campaign(write(tmp_path, text)).measurements[0]
    assert m.options["fields_Oe"] == [3000.0, 2000.0, 1000.0, 0.0]
    assert m.options["frequencies_Hz"] == pytest.approx([0.1, 1.0, 10.0, 100.0, 1000.0])
    assert m.instruments == ("mpms3", "ppms")


def test_key_lines_follow_tables_arrays_and_multiline_values():
    text = textwrap.dedent("""\
        [campaign]
        name = "x"   # comment with = sign
        [[samples]]
        name = "a"
        ions = { Nd = 3 }
        [[samples]]
        "name" = "b"
        [instruments.ppms]
        resource = "GPIB0::15::INSTR"
        [[measurements]]
        temperatures_K = [
            1.8,
            x = 2,
        ]
        fields_Oe = 3
        notes = \"\"\"
        mode = "not a key"
        \"\"\"
        mode = "settle"
        """)
    kl = KeyLines(text)
    assert kl.line_of("campaign.name") == 2
    assert kl.line_of("samples[0].name") == 4
    assert kl.line_of("samples[0].ions.Nd") == 5         # falls back to the parent key
    assert kl.line_of("samples[1].name") == 7
    assert kl.line_of("instruments.ppms.resource") == 9
    assert kl.line_of("instruments.ppms.timeout_s") == 8  # the table header
    assert kl.line_of("measurements[0].temperatures_K[1]") == 11
    assert kl.line_of("measurements[0].fields_Oe") == 15
    assert kl.line_of("measurements[0].mode") == 19
    assert kl.line_of("measurements[0].x") == 10          # not a key: inside an array
    assert kl.line_of("nothing") is None


def test_every_registered_plan_has_typed_options():
    for kind in REGISTRY.values():
        opts = kind.options()
        assert opts, kind.name
        assert "md" not in opts and not any(k.startswith("_") for k in opts)
    assert "laser" not in REGISTRY["emission_spectrum"].options()          # a device
    mce = REGISTRY["mce_isotherms"].options()
    assert "field_rate_Oe_per_s" in mce and "loop" not in mce              # forwarded from m_h
