"""The instruments of a campaign: the Ophyd devices each measurement needs, built from
``campaign.instruments`` and closed again.

:class:`InstrumentSession` connects lazily, per measurement, only what the measurement uses
(``spec.instruments`` plus the optional device keywords of its plan, e.g. the laser an emission
spectrum locks at the end) and keeps the connections for the next measurements.

* **sim mode** (``[instruments] mode = "sim"`` or ``spinlight run --sim``): a
  :class:`~spinlight.simulators.lab.SimulatedLab` (speed and seed from ``[instruments.sim]``,
  ``.dat`` files under ``data_dir``) holding the measurement sample's simulator preset
  (``campaign.presets[sample]``) at the sample's mass; the drivers connect to its loopback
  endpoints exactly as to hardware (MPMS3/PPMS detectors in ``request`` mode).
* **real mode**: the addresses of ``[instruments.NAME]``. The MPMS3 follows the newest ``.dat``
  in ``dat_folder`` (the MultiVu sequence must have opened its file before the measurement
  starts; when a newer one appears the instrument is connected again before the next
  measurement), or, without ``dat_folder``, asks the server for its file (``request``, the
  simulators' extension); the PPMS alike. TCSPC and Taiko laser: simulator RPC
  (``host``/``port``) or the vendor library (``library = "ctypes"``); PiLas: ``url``.

**Sample change**: consecutive measurements on different samples. In sim mode the lab is
stopped and a new one started with the new preset (logged as ``sample change (simulated)``);
in real mode :meth:`InstrumentSession.load` raises :class:`SampleChangeRequired` before
anything moves — the operator changes the sample and resumes. The first measurement of a
session (``first=True``: campaign start, or a resume) takes the sample as already mounted.

Instrument time (:meth:`InstrumentSession.now`): the lab's virtual clock in sim mode, the wall
clock on real instruments (Unix s).

Simulated faults: the campaign's ``[[instruments.sim.faults]]`` are injected into every lab
(``SimulatedLab(faults=...)``, seeded with ``[instruments.sim] seed``). Their times are per lab
(instrument s since that lab started): a sample change or a new process (``spinlight resume``)
starts a new lab that plays the script again from its start. Each injected fault is logged
(``simulated fault start: KIND on TARGET ...`` / ``... end: ...``), and so is, when the lab
stops, ``simulated faults on this lab: N injected (KIND xN, ...), M due but not injected``.
A rehearsal (``speed`` given, as :func:`~spinlight.campaign_estimate.estimate_campaign` does)
runs without them unless ``faults=True``: the estimate is of the nominal campaign.

Faults: the MPMS3 and PPMS drivers and the socket-RPC HydraHarp and Taiko clients get a
:class:`~spinlight.instruments.retry.RetryPolicy` with the campaign's ``[suspenders]``
``reconnect_attempts`` / ``reconnect_backoff_s``; the QD interlock monitors and the laser's lock monitor run every :data:`MONITOR_INTERVAL_S` (wall s)
so the suspenders (:meth:`InstrumentSession.suspenders`) see current values. On the simulated
lab that interval is instrument time, i.e. ``MONITOR_INTERVAL_S / speed`` wall s but at least
:data:`MIN_SIM_MONITOR_S`: at x1000 a fault of a few instrument minutes lasts a fraction of a
wall second, and a monitor polling once per wall second would never see it.
"""

from __future__ import annotations

import logging
import pathlib
import re
import threading
import time
from collections import Counter

logger = logging.getLogger(__name__)

#: Device sets by instrument name; "mpms3" is (mpms3, vsm, ac), "ppms" is (ppms, ac).
DEVICE_ORDER = ("mpms3", "ppms", "fluorometer", "tcspc", "laser")
#: Interlock monitors' poll interval (wall s); the PPMS's own is in its [instruments] table.
MONITOR_INTERVAL_S = 1.0
#: Shortest monitor interval on the simulated lab (wall s): the polls must leave CPU to the rest.
MIN_SIM_MONITOR_S = 0.1


class SampleChangeRequired(RuntimeError):
    """Real mode: measurement ``index`` needs ``sample`` mounted instead of ``previous``."""

    def __init__(self, index: int, sample: str, previous: str, instruments: tuple[str, ...]):
        self.index, self.sample, self.previous, self.instruments = index, sample, previous, instruments
        super().__init__(f"measurement {index} needs sample {sample!r} (now: {previous!r}); put "
                         f"sample {sample!r} in the {' / '.join(instruments)}")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "sample"


def newest_dat(folder) -> str:
    """The most recently modified ``.dat`` in ``folder`` (where a MultiVu sequence writes)."""
    path = pathlib.Path(folder)
    files = sorted(path.glob("*.dat"), key=lambda p: p.stat().st_mtime) if path.is_dir() else []
    if not files:
        raise FileNotFoundError(f"dat_folder={str(folder)!r} holds no .dat file: start the MultiVu "
                                "sequence (it opens its data file) before this measurement")
    return str(files[-1])


class InstrumentSession:
    """Builds and closes the devices of a campaign's measurements (see the module docstring).

    ``sim``: override the campaign's mode (the estimate rehearses real campaigns on
    simulators); ``speed``/``seed``: override ``[instruments.sim]``; ``data_dir``: folder for
    the simulators' ``.dat`` files (one sub-folder per lab); ``faults``: inject the campaign's
    simulated faults (default: unless ``speed`` is given, see the module docstring)."""

    def __init__(self, campaign, *, data_dir, sim: bool | None = None, speed: float | None = None,
                 seed: int | None = None, log: logging.Logger | None = None,
                 faults: bool | None = None):
        self.campaign = campaign
        self.sim = campaign.sim if sim is None else bool(sim)
        self.speed = float(speed if speed is not None else campaign.instruments.sim.speed)
        self.seed = int(seed if seed is not None else campaign.instruments.sim.seed)
        self.monitor_s = max(MONITOR_INTERVAL_S / self.speed, MIN_SIM_MONITOR_S) if self.sim \
            else MONITOR_INTERVAL_S        # wall s, see the module docstring
        self.data_dir = pathlib.Path(data_dir)
        self.log = log or logger
        self.faults = campaign.instruments.sim.faults \
            if (speed is None if faults is None else faults) else ()
        self.lab = None
        self._echo = None
        self.sample: str | None = None            # the sample in the instruments now
        self.devices: dict[str, tuple] = {}
        self.datafiles: dict[str, str] = {}       # real QD systems: the .dat they follow

    # -- samples --------------------------------------------------------------------------
    def load(self, spec, *, first: bool = False) -> None:
        """Make ``spec.sample`` the mounted sample (see the module docstring)."""
        if spec.sample == self.sample and (self.lab is not None or not self.sim):
            return
        if not self.sim:
            if self.sample is not None and not first:
                raise SampleChangeRequired(spec.index, spec.sample, self.sample, spec.instruments)
            self.sample = spec.sample
            return
        if self.lab is not None:
            self.log.info("sample change (simulated): %s -> %s (preset %s)", self.sample,
                          spec.sample, self.campaign.presets[spec.sample])
        self._stop_lab()
        self._start_lab(spec)

    def _start_lab(self, spec) -> None:
        from spinlight.simulators.lab import SimulatedLab

        preset = self.campaign.presets[spec.sample]
        folder = self.data_dir / f"{spec.index:03d}-{_safe(spec.sample)}"
        lab = SimulatedLab(speed=self.speed, seed=self.seed, sample=preset,
                           mass_mg=self.campaign.samples[spec.sample].mass_mg, data_dir=folder,
                           faults=list(self.faults) or None)
        lab.start()
        self.lab, self.sample = lab, spec.sample
        self.log.info("simulated lab started: sample %s (preset %s), x%g, seed %d, .dat in %s%s",
                      spec.sample, preset, self.speed, self.seed, folder,
                      f", {len(self.faults)} scripted faults" if self.faults else "")
        if lab.faults is not None:
            self._echo = FaultEcho(lab.faults, self.log)

    def _stop_lab(self) -> None:
        self.close_devices()
        if self.lab is not None:
            if self._echo is not None:
                self._echo.close()
                self._echo = None
            self.lab.stop()
            self.lab = None

    # -- devices --------------------------------------------------------------------------
    def needed(self, spec) -> tuple[str, ...]:
        """Instruments a measurement uses: its own, then the optional device keywords of its
        plan that are available (configured, or simulated)."""
        configured = self.campaign.instruments.configured if not self.sim else DEVICE_ORDER
        extra = tuple(d for d in spec.kind.devices if d in configured and d not in spec.instruments)
        return tuple(spec.instruments) + extra

    def connect(self, spec) -> dict[str, tuple]:
        """``{instrument: devices}`` for ``spec`` (connected now if not already; a QD system
        following a ``dat_folder`` is connected again when a newer ``.dat`` appeared there)."""
        for name in self.needed(spec):
            if name in self.datafiles and _dat_mode(self._config(name))["datafile"] \
                    != self.datafiles[name]:
                self.discard([name])
            if name not in self.devices:
                self.devices[name] = self._connect(name)
                self.log.info("connected %s%s", name, " (simulated)" if self.sim else "")
        return {name: self.devices[name] for name in self.needed(spec)}

    def _connect(self, name: str) -> tuple:
        from spinlight.instruments.retry import RetryPolicy

        s = self.campaign.suspenders
        extra = {"retry": RetryPolicy(reconnect_attempts=s.reconnect_attempts,
                                      reconnect_backoff_s=s.reconnect_backoff_s)} \
            if name in ("mpms3", "ppms", "tcspc", "laser") else {}
        if self.sim:
            if name in ("mpms3", "ppms"):
                extra["monitor_interval_s"] = self.monitor_s
            devices = _SIM_CONNECT[name](self.lab.endpoints, **extra)
        else:
            config = self._config(name)
            if name in ("mpms3", "ppms"):
                extra.update(_dat_mode(config))
                if extra["datafile"] is not None:
                    self.datafiles[name] = extra["datafile"]
            devices = _REAL_CONNECT[name](config, **extra)
        if name == "laser":
            devices[0].start_monitor(self.monitor_s)
        return devices

    def _config(self, name: str) -> dict:
        return getattr(self.campaign.instruments, name)

    def suspenders(self, devices: dict) -> list:
        """Bluesky suspenders for these connected devices from the campaign's
        ``[suspenders]`` (:func:`spinlight.plans.suspenders.campaign_suspenders`); in sim
        mode the wait after a condition clears is scaled to the lab's speed."""
        from spinlight.plans.suspenders import campaign_suspenders

        s = self.campaign.suspenders
        watched = [devices[n][0] for n in ("mpms3", "ppms", "laser") if n in devices]
        return campaign_suspenders(watched, helium_min_percent=s.helium_min_percent,
                                   helium_resume_percent=s.helium_resume_percent,
                                   temperature_band_K=s.temperature_band_K,
                                   resume_wait_s=s.resume_wait_s / (self.speed if self.sim else 1))

    def discard(self, names=None) -> None:
        """Close (and forget) the devices ``names`` (all by default) — after a failure, so the
        next measurement connects afresh."""
        for name in list(self.devices if names is None else names):
            self.datafiles.pop(name, None)
            for dev in reversed(self.devices.pop(name, ())):
                close = getattr(dev, "close", None)
                if close is None:
                    continue
                try:
                    close()
                except Exception as exc:  # noqa: BLE001 - closing must go on
                    self.log.warning("closing %s (%s): %s: %s", name, getattr(dev, "name", dev),
                                     type(exc).__name__, exc)

    close_devices = discard

    def now(self) -> float:
        """Instrument time, Unix s (virtual clock of the simulated lab, else wall clock)."""
        if self.sim and self.lab is not None and self.lab.clock is not None:
            return self.lab.clock.now()
        return time.time()

    def close(self) -> None:
        self._stop_lab() if self.sim else self.close_devices()
        self.sample = None

    def __enter__(self) -> "InstrumentSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FaultEcho:
    """Logs what a lab's :class:`~spinlight.simulators.faults.FaultInjector` fires (its
    ``history``, read every :data:`ECHO_INTERVAL_S` wall s by a daemon thread) and, at
    :meth:`close`, a summary with the faults that were due but never fired (should be none)."""

    ECHO_INTERVAL_S = 0.1

    def __init__(self, injector, log: logging.Logger):
        self.injector, self.log, self.seen = injector, log, 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-echo", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.wait(self.ECHO_INTERVAL_S):
            self.flush()

    def flush(self) -> None:
        new = self.injector.history[self.seen:]      # appended only: a slice is a snapshot
        self.seen += len(new)
        for h in new:
            params = ", ".join(f"{k}={v}" for k, v in h.params.items())
            self.log.info("simulated fault %s: %s on %s%s (+%.0f s on this lab)", h.phase,
                          h.kind, h.target, f" ({params})" if params else "", h.elapsed_s)

    def close(self) -> None:
        self._halt.set()
        self._thread.join(2.0)
        self.flush()
        clock = self.injector.clock
        elapsed = clock.now() - clock.start_unix
        started = Counter(h.kind for h in self.injector.history if h.phase == "start")
        missed = [p for p in self.injector.planned if p[2] <= elapsed]
        self.log.info("simulated faults on this lab: %d injected (%s), %d due but not injected, "
                      "+%.0f s", sum(started.values()),
                      ", ".join(f"{k} x{n}" for k, n in sorted(started.items())) or "none",
                      len(missed), elapsed)


def measurement_plan(spec, sample, devices: dict, md: dict | None = None):
    """The plan of ``spec`` on ``devices`` (from :meth:`InstrumentSession.connect`):
    ``spec.kind.plan_function()`` called with the devices of ``kind.instruments`` in order
    (the MPMS3 as ``mpms3, vsm``) — or, for ac, the stations of ``spec.instruments`` in order —
    then the sample, the plan's device keywords (None when not available), the options
    (``spec.arguments()``) and ``md``."""
    from spinlight.plans.ac import mpms3_ac_station, ppms_ac_station

    kind = spec.kind
    if kind.stations:
        make = {"mpms3": lambda d: mpms3_ac_station(d[0], d[2]),
                "ppms": lambda d: ppms_ac_station(d[0], d[1])}
        positional = [[make[s](devices[s]) for s in spec.instruments if s in kind.stations]]
    else:
        positional = [d for name in kind.instruments
                      for d in (devices[name][:2] if name == "mpms3" else devices[name])]
    keywords = {d: devices[d][0] if d in devices else None for d in kind.devices}
    return kind.plan_function()(*positional, sample, **keywords, **spec.arguments(), md=md)


# -- connection recipes -----------------------------------------------------------------------
def _mpms3(host, port, *, datafile=None, mode="request", timeout_s=30.0, retry=None,
           monitor_interval_s=MONITOR_INTERVAL_S) -> tuple:
    from spinlight.instruments.mpms3_device import connect_mpms3, mpms3_ac_detector

    mpms3, vsm = connect_mpms3(host, port, datafile=datafile, mode=mode, timeout_s=timeout_s,
                               retry=retry, monitor_interval_s=monitor_interval_s)
    return mpms3, vsm, mpms3_ac_detector(mpms3, datafile, mode=mode, name="mpms3_ac")


def _ppms(resource, *, datafile=None, mode="request", **kwargs) -> tuple:
    from spinlight.instruments.ppms_device import connect_ppms, ppms_ac_detector

    ppms = connect_ppms(resource, **kwargs)
    try:
        return ppms, ppms_ac_detector(ppms, datafile, mode=mode, name="ppms_ac")
    except Exception:
        ppms.close()
        raise


def _fluorometer(ex, em, housing, timeout_s=2.0) -> tuple:
    from spinlight.instruments.spectrofluorometer import connect_spectrofluorometer

    return (connect_spectrofluorometer(ex, em, housing, timeout_s=timeout_s),)


def _tcspc(host=None, port=None, library=None, timeout_s=5.0, retry=None) -> tuple:
    from spinlight.instruments.tcspc import TCSPC, TCSPCDriver, connect_tcspc

    if library is None:
        return (connect_tcspc(host, port, timeout_s=timeout_s, retry=retry),)
    from spinlight.instruments.harp import CtypesHarpBackend, HarpLib
    return (TCSPC(name="tcspc", driver=TCSPCDriver(HarpLib(CtypesHarpBackend())).open()),)


def _laser(kind="taiko", host=None, port=None, library=None, url=None, timeout_s=5.0,
           retry=None) -> tuple:
    from spinlight.instruments import laser as lz

    if kind == "pilas":
        return (lz.connect_pilas(url, timeout_s=timeout_s, retry=retry),)
    if library is None:
        return (lz.connect_taiko(host, port, timeout_s=timeout_s, retry=retry),)
    return (lz.PicosecondLaser(name="laser", driver=lz.PdlmLaserDriver(
        lz.LaserLib(lz.CtypesLaserBackend())).open()),)


def _pl(ep: dict, key: str) -> dict:
    if not ep.get("pl"):
        raise RuntimeError(f"the simulated lab has no PL bench (sample {ep.get('sample')!r} has "
                           "no luminescence preset), so there is no " + key)
    return ep["pl"]


_SIM_CONNECT = {
    "mpms3": lambda ep, **kw: _mpms3(ep["mpms3"]["host"], ep["mpms3"]["port"], **kw),
    "ppms": lambda ep, **kw: _ppms(ep["ppms"]["resource"], **kw),
    "fluorometer": lambda ep: _fluorometer(*(_pl(ep, "fluorometer")[k]["url"] for k in (
        "excitation_mono", "emission_mono", "housing"))),
    "tcspc": lambda ep, **kw: _tcspc(_pl(ep, "tcspc")["hydraharp"]["host"],
                                     ep["pl"]["hydraharp"]["port"], **kw),
    "laser": lambda ep, **kw: _laser("taiko", _pl(ep, "laser")["taiko"]["host"],
                                     ep["pl"]["taiko"]["port"], **kw),
}

_REAL_CONNECT = {
    "mpms3": lambda v, **kw: _mpms3(v["host"], v["port"], timeout_s=v["timeout_s"], **kw),
    "ppms": lambda v, **kw: _ppms(v["resource"], timeout_s=v["timeout_s"],
                                  backend=v["visa_backend"],
                                  monitor_interval_s=v["monitor_interval_s"], **kw),
    "fluorometer": lambda v: _fluorometer(v["excitation_url"], v["emission_url"],
                                          v["housing_url"], v["timeout_s"]),
    "tcspc": lambda v, **kw: _tcspc(v["host"], v["port"], v["library"], v["timeout_s"], **kw),
    "laser": lambda v, **kw: _laser(v["kind"], v["host"], v["port"], v["library"], v["url"],
                                    v["timeout_s"], **kw),
}


def _dat_mode(v: dict) -> dict:
    """``follow`` the newest .dat of ``dat_folder``; without one, ``request`` it."""
    if v.get("dat_folder"):
        return {"datafile": newest_dat(v["dat_folder"]), "mode": "follow"}
    return {"datafile": None, "mode": "request"}
