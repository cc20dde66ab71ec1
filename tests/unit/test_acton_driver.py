"""Acton SpectraPro driver against (sent, reply) transcripts: every command, echo, multi-line
?gratings, error replies, and validation before anything is sent."""

import pytest

from spinlight.instruments.acton import ActonDriver, Grating, parse_gratings
from spinlight.instruments.errors import InstrumentError
from spinlight.instruments.transports import TranscriptTransport

GRATINGS = ("\r\n\x1a1  1200 g/mm BLZ=  500NM \r\n 2  600 g/mm BLZ=  1.0UM \r\n"
            " 3  Not Installed     \r\n 4  Not Installed     \r\n 5  Not Installed     \r\n"
            " 6  Not Installed     \r\n ok")
SLIT_REPLIES = {"front-ent-slit": " no motor  ok", "side-ent-slit": " 100 um  ok",
                "front-exit-slit": " 250 um  ok", "side-exit-slit": " no motor  ok"}


def connect_pairs(echo=True):
    """What connect() sends, with replies from a unit that echoes until no-echo."""
    return [("no-echo", "no-echo ok" if echo else " ok"),
            ("model", " SP-2-150i  ok"), ("serial", " 21503417  ok"), ("?turret", " 1  ok"),
            ("?gratings", GRATINGS), ("?grating", " 1  ok"), ("?nm/min", " 100.00 nm/min  ok")] + \
        [(f"{s} ?microns", r) for s, r in SLIT_REPLIES.items()]


def driver(extra=(), echo=True):
    t = TranscriptTransport(connect_pairs(echo) + list(extra), name="excitation")
    return ActonDriver(t).connect(), t


def test_connect_reads_identity_gratings_rate_and_slits():
    d, t = driver()
    assert (d.model, d.serial_number, d.turret, d.grating) == ("SP-2-150i", "21503417", 1, 1)
    assert d.gratings == {1: Grating(1, 1200, 500.0), 2: Grating(2, 600, 1000.0)}
    assert d.gratings[1].max_nm == pytest.approx(1400.0)
    assert d.gratings[2].max_nm == pytest.approx(2800.0)
    assert d.scan_rate_nm_per_min == 100.0
    assert d.motorized_slits == ("side-ent-slit", "front-exit-slit")
    assert d.usable_gratings() == [1, 2]
    t.assert_done()


def test_wavelength_query_with_and_without_echo_and_unit():
    d, t = driver([("?nm", "?nm 500.00 nm  ok"),      # echo left on (e.g. no-echo lost)
                   ("?nm", " 300.00 nm  ok"),
                   ("?nm", " 300.00  ok")])             # SP-2150i may omit the unit
    assert [d.get_wavelength() for _ in range(3)] == [500.0, 300.0, 300.0]
    t.assert_done()


def test_goto_scan_poll_and_stop_commands():
    d, t = driver([("500.000 goto", "500.000 goto  ok"),
                   ("3000.00 nm/min", " ok"), ("?nm/min", " 3000.00 nm/min  ok"),
                   ("700.125 >nm", " ok"),
                   ("mono-?done", " 0  ok"), ("?nm", " 612.40 nm  ok"),
                   ("mono-?done", " 1  ok"), ("?nm", " 700.13 nm  ok"), ("mono-stop", " ok"),
                   ("650.000 >nm", " ok"),          # same rate: not re-sent
                   ("mono-stop", " ok"), ("?nm", " 680.00 nm  ok")])
    d.goto(500)
    d.start_scan(700.125, rate_nm_per_min=3000)
    assert d.scan_rate_nm_per_min == 3000.0
    assert d.poll_move() == (612.4, False)
    assert d.poll_move() == (700.13, True)          # done: the >nm is closed with mono-stop
    d.start_scan(650, rate_nm_per_min=3000)
    assert d.stop_move() == 680.0
    t.assert_done()


def test_grating_change_is_read_back():
    d, t = driver([("2 grating", " ok"), ("?grating", " 2  ok"),
                   ("1 grating", " ok"), ("?grating", " 2  ok")])   # firmware: ok, did not move
    d.select_grating(2)
    assert d.grating == 2
    with pytest.raises(InstrumentError) as err:
        d.select_grating(1)
    assert err.value.instrument == "excitation" and err.value.reply == "2"
    assert d.grating == 2
    t.assert_done()


def test_slits_and_turret():
    d, t = driver([("side-ent-slit 500 microns", " ok"), ("side-ent-slit ?microns", " 500 um  ok"),
                   ("?turret", " 1  ok"), ("echo", " ok")])
    assert d.set_slit("SIDE-ENT-SLIT", 500) == 500.0
    assert d.slits["side-ent-slit"] == 500.0
    assert d.get_turret() == 1
    d.echo_on()
    t.assert_done()


def test_unknown_or_refused_command_names_instrument_command_and_reply():
    d, t = driver([("500.000 goto", " goto? "),
                   ("model", "model model? ")])        # with echo
    with pytest.raises(InstrumentError) as err:
        d.goto(500)
    e = err.value
    assert (e.instrument, e.command, e.reply) == ("excitation", "500.000 goto", "goto?")
    assert "refused" in str(e)
    with pytest.raises(InstrumentError, match="refused"):
        d.get_model()
    t.assert_done()


def test_garbled_and_incomplete_replies():
    d, t = driver([("?nm", " banana  ok"), ("?grating", " 1"), ("mono-?done", " 7  ok")])
    with pytest.raises(InstrumentError, match="unexpected reply") as err:
        d.get_wavelength()
    assert err.value.reply.strip() == "banana"
    with pytest.raises(InstrumentError, match="incomplete reply"):
        d.get_grating()
    with pytest.raises(InstrumentError, match="unexpected reply"):
        d.is_done()
    t.assert_done()


def test_wavelength_validated_per_grating_before_sending():
    d, t = driver([("2 grating", " ok"), ("?grating", " 2  ok"), ("1500.000 goto", " ok")])
    sent = len(t.sent)
    with pytest.raises(ValueError) as err:
        d.goto(1500)                                 # 1200 g/mm: 0-1400 nm
    msg = str(err.value)
    assert "wavelength_nm=1500" in msg and "0.0..1400.0" in msg and "1200 g/mm" in msg
    for bad in (-1.0, float("nan"), "red"):
        with pytest.raises(ValueError, match="wavelength_nm"):
            d.start_scan(bad)
    assert len(t.sent) == sent                       # nothing went out
    d.select_grating(2)                              # 600 g/mm: 0-2800 nm
    d.goto(1500)
    t.assert_done()


def test_bad_grating_slit_and_rate_rejected_before_sending():
    d, t = driver()
    sent = len(t.sent)
    for bad in (0, 3, 7, "two"):
        with pytest.raises(ValueError) as err:
            d.select_grating(bad)
        assert f"grating={bad!r}" in str(err.value) and "[1, 2]" in str(err.value)
    for width in (5, 3500, -1):
        with pytest.raises(ValueError) as err:
            d.set_slit("side-ent-slit", width)
        assert f"width_um={width!r}" in str(err.value) and "10.0..3000.0" in str(err.value)
    with pytest.raises(ValueError, match=r"slit='front-ent-slit'.*side-ent-slit"):
        d.set_slit("front-ent-slit", 100)            # no motor on that slit
    with pytest.raises(ValueError, match=r"rate_nm_per_min=0.*0.01..6000"):
        d.start_scan(500, rate_nm_per_min=0)
    assert len(t.sent) == sent
    t.assert_done()


def test_parse_gratings_markers_units_and_strictness():
    g, current = parse_gratings(" 1  300 g/mm BLZ=  500NM \n>2  150 g/mm BLZ=    2UM \n"
                                " 3  Not Installed     ")
    assert current == 2
    assert g == {1: Grating(1, 300, 500.0), 2: Grating(2, 150, 2000.0)}
    assert g[2].max_nm == pytest.approx(11200.0)
    with pytest.raises(ValueError, match="unrecognised"):
        parse_gratings(" 1  300 lines BLZ=500NM")
    with pytest.raises(ValueError, match="no installed"):
        parse_gratings(" 1  Not Installed     ")
    d, t = driver([("?gratings", "\r\n 1  junk\r\n ok")])
    with pytest.raises(InstrumentError, match="cannot parse"):
        d.get_gratings()
