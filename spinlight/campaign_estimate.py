"""How long a campaign takes: a rehearsal of the campaign on simulators.

:func:`estimate_campaign` runs every measurement through the same code path as
``spinlight run`` — :class:`~spinlight.campaign_devices.InstrumentSession` (simulated lab,
sample changes included), :func:`~spinlight.campaign_devices.measurement_plan`, a bluesky
RunEngine — but with no storage: a callback only counts the events. The instrument seconds of
a measurement are read on the lab's virtual clock, which advances only by what the simulated
instruments do (ramps, settling, VSM/ac/TCSPC acquisitions from the timing model), never by
Python or storage latency; so the estimate is derived from the plans' messages and the timing
model, and is the same at any simulation speed (a high one makes it fast).

Real-mode campaigns are rehearsed on simulators too (``campaign.with_sim()``: every sample
needs a simulator preset); the rehearsal starts from the simulators' initial state (room
temperature, zero field), not from wherever the real instruments are.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile

from .campaign_devices import InstrumentSession, measurement_plan

logger = logging.getLogger(__name__)

#: Instrument seconds per wall second of a rehearsal.
ESTIMATE_SPEED = 1.0e6


@dataclasses.dataclass(frozen=True)
class MeasurementEstimate:
    """One measurement of the rehearsal: events (``points``, every stream, every run of the
    measurement) and instrument seconds; ``error`` says why the rehearsal failed, if it did."""

    index: int
    label: str
    plan: str
    sample: str
    points: int
    instrument_s: float
    error: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MeasurementEstimate":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


class EventCounter:
    """RunEngine callback: events (all streams) and run start uids since :meth:`begin`."""

    def __init__(self):
        self.points = 0
        self.uids: list[str] = []
        self.total = 0

    def begin(self) -> None:
        self.points, self.uids = 0, []

    def __call__(self, name: str, doc: dict) -> None:
        n = 1 if name == "event" else len(doc.get("seq_num", ())) if name == "event_page" else 0
        self.points += n
        self.total += n
        if name == "start":
            self.uids.append(doc["uid"])


def measure(RE, session: InstrumentSession, campaign, spec, counter: EventCounter, *,
            md: dict | None = None, first: bool = False) -> None:
    """Mount the sample, connect, build the plan and run it (the one code path of rehearsal
    and run); ``counter`` and ``session.now()`` tell what it took."""
    session.load(spec, first=first)
    devices = session.connect(spec)
    RE(measurement_plan(spec, campaign.samples[spec.sample], devices, md))


def estimate_campaign(campaign, *, speed: float = ESTIMATE_SPEED, data_dir=None,
                      log: logging.Logger | None = None) -> list[MeasurementEstimate]:
    """Rehearse ``campaign`` on simulators at ``speed`` (instrument s per wall s) with the
    campaign's seed; one :class:`MeasurementEstimate` per measurement. A measurement whose
    rehearsal fails gets its ``error`` and the rehearsal goes on. ``data_dir``: where the
    simulators write their ``.dat`` (default: a temporary folder)."""
    from bluesky import RunEngine

    log = log or logger
    sim = campaign.with_sim()
    RE = RunEngine({}, context_managers=[])
    counter = EventCounter()
    RE.subscribe(counter)
    out = []
    with tempfile.TemporaryDirectory(prefix="spinlight-estimate-") as tmp, \
            InstrumentSession(sim, data_dir=data_dir or tmp, sim=True, speed=speed,
                              log=log) as session:
        for spec in sim.measurements:
            counter.begin()
            error, t0 = "", None
            try:
                session.load(spec)
                t0 = session.now()
                measure(RE, session, sim, spec, counter)
            except Exception as exc:  # noqa: BLE001 - say which measurement, go on
                error = f"{type(exc).__name__}: {exc}"
                log.warning("rehearsal of measurement %d (%s) failed: %s", spec.index, spec.plan,
                            error)
                session.discard()
            seconds = session.now() - t0 if t0 is not None else 0.0
            out.append(MeasurementEstimate(spec.index, spec.label, spec.plan, spec.sample,
                                           counter.points, round(seconds, 3), error))
    return out
