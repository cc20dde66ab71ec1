"""PiLas driver under a RetryPolicy, on (sent, reply) transcripts: garbled replies and timeouts
are retried (the same command sent again, the connection reopened before a retry after a
timeout), boundedly; refusals and bad values never; ``open()`` is repeated whole."""

from __future__ import annotations

import pytest

from spinlight.instruments.errors import InstrumentError, InstrumentTimeout
from spinlight.instruments.laser import PicosecondLaser
from spinlight.instruments.pilas import PiLasDriver
from spinlight.instruments.retry import GarbledReply, RetryPolicy
from spinlight.instruments.transports import TranscriptTransport

VERSION = "\n".join([
    "controller serial: PLC375CW0F00000042", "laser head serial: PLH375CW0F00000042",
    "center wavelength: 375 nm", "CW laser option: no", "CW laser power: fixed",
    "software version: SW.PiLas.V1.1.AEb", "controller hardware version: PiLas_Control_PCB_Rev.2.1",
    "laser head hardware version: PiLas_Laser_Head_PCB_Rev.2.0"])
#: what the simulator's wire faults make of VERSION: junk, line ends kept (no ':' on line 1)
GARBLED_VERSION = "\n".join("x" * len(line) for line in VERSION.split("\n"))
PILAS_OPEN = [("version?", VERSION), ("tm=0", "done"), ("ts=0", "done")]
TIMEOUT = object()      # transcript reply: no line end arrived within timeout_s


class FaultyTranscript(TranscriptTransport):
    """A transcript where a ``TIMEOUT`` reply raises what :class:`SerialTransport` raises when
    the line end does not come (the command was sent; its reply never arrived)."""

    def query(self, cmd: str) -> str:
        reply = super().query(cmd)
        if reply is TIMEOUT:
            raise InstrumentTimeout(self.name, cmd, "", "no complete reply within 0.2 s")
        return reply


def pilas(pairs, retry=None):
    t = FaultyTranscript(pairs, name="pilas")
    return PiLasDriver(t, retry=retry), t


def retried(faults):
    return [(f["instrument"], f["command"], f["reason"]) for kind, f in faults if kind == "retry"]


def test_a_garbled_reply_and_a_timeout_to_a_setter_repeat_the_same_command(faults):
    drv, t = pilas(PILAS_OPEN + [("f=200000", "d*n#"), ("f=200000", TIMEOUT), ("f=200000", "done"),
                                 ("f?", "int. frequency:\t       200000 Hz")],
                   retry=RetryPolicy(retries=2))
    drv.open()
    drv.set_repetition_rate_hz(200000)
    assert drv.get_repetition_rate_hz() == 200000.0
    # the setter sent three times, the link reopened before the retry after the timeout
    assert t.sent[3:] == ["f=200000", "f=200000", "<reconnect>", "f=200000", "f?"]
    t.assert_done()
    assert retried(faults) == [("pilas", "f=200000", "garbled reply"),
                               ("pilas", "f=200000", "timeout")]


def test_retries_are_bounded_and_without_a_policy_there_are_none(faults):
    drv, t = pilas([("ld?", "?"), ("ld?", TIMEOUT), ("ld?", "pulsed laser emission: #n")],
                   retry=RetryPolicy(retries=2))
    with pytest.raises(GarbledReply, match="unexpected reply") as err:
        drv.get_emission()
    assert err.value.reply == "pulsed laser emission: #n" and err.value.instrument == "pilas"
    assert t.sent == ["ld?", "ld?", "<reconnect>", "ld?"]          # 1 + retries, no more
    drv, t = pilas([("ld?", TIMEOUT)])
    with pytest.raises(InstrumentTimeout):
        drv.get_emission()
    assert t.sent == ["ld?"]
    assert [reason for _, _, reason in retried(faults)] == ["garbled reply", "timeout"]


def test_refusals_and_bad_values_are_never_retried(faults):
    drv, t = pilas([("tune=500", "error: tune out of range 0..1000")], retry=RetryPolicy())
    with pytest.raises(InstrumentError, match="refused") as err:
        drv.set_intensity_permille(500)
    assert not isinstance(err.value, GarbledReply) and err.value.reply.startswith("error:")
    with pytest.raises(ValueError, match=r"intensity_permille=1001 per mille"):
        drv.set_intensity_permille(1001)
    assert t.sent == ["tune=500"] and retried(faults) == []


def test_open_is_repeated_whole_after_a_garbled_identification_or_a_lost_reply(faults):
    drv, t = pilas([("version?", GARBLED_VERSION), *PILAS_OPEN[:1], ("tm=0", TIMEOUT),
                    *PILAS_OPEN], retry=RetryPolicy(retries=2))
    drv.open()
    assert drv.wavelength_nm == 375.0 and drv.identity["center wavelength"] == "375 nm"
    assert t.sent == ["version?", "version?", "tm=0", "<reconnect>", "version?", "tm=0", "ts=0"]
    t.assert_done()
    assert retried(faults) == [("pilas", "open", "garbled reply"), ("pilas", "open", "timeout")]


def test_laser_settings_on_a_pilas_survive_garbled_and_lost_replies(faults):
    start = PILAS_OPEN + [("ld=0", "done"), ("f?", "int. frequency:\t       1000000 Hz"),
                          ("tune?", "tune value:\t\t     50.00 %"),
                          ("ld?", "pulsed laser emission: off"), ("ld?", "pulsed laser emission: off")]
    drv, t = pilas(start + [("tune=250", TIMEOUT), ("tune=250", "done"),
                            ("tune?", "t#ne v@lue"), ("tune?", "tune value:\t\t     25.00 %")],
                   retry=RetryPolicy(retries=2))
    laser = PicosecondLaser(name="laser", driver=drv.open())
    laser.intensity_permille.put(250)
    assert laser.intensity_permille.get() == 250
    t.assert_done()
    assert retried(faults) == [("pilas", "tune=250", "timeout"),
                               ("pilas", "tune?", "garbled reply")]
