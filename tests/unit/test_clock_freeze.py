"""The simulators' virtual clock runs only while the instrument is busy (freeze_when_idle)."""

import threading
import time

from spinlight.simulators.clock import VirtualClock


def test_time_stops_exactly_where_activity_ends_and_resumes_on_new_work():
    busy = {"until": 1000.0 + 50.0}
    clock = VirtualClock(speed=1e5, start_unix=1000.0, freeze_when_idle=True)
    clock.add_activity(lambda: busy["until"])
    time.sleep(0.01)  # 1000 instrument seconds at this speed: far past the activity
    assert clock.now() == 1050.0
    time.sleep(0.01)
    assert clock.now() == 1050.0  # idle: the client's latency costs no instrument time
    busy["until"] = clock.now() + 20.0
    time.sleep(0.01)
    assert clock.now() == 1070.0


def test_a_waiter_keeps_time_running_until_its_wake_time():
    clock = VirtualClock(speed=1e4, start_unix=0.0, freeze_when_idle=True)
    assert clock.now() == 0.0
    done = threading.Event()

    def sleeper():
        clock.sleep(30.0)
        done.set()

    threading.Thread(target=sleeper, daemon=True).start()
    assert done.wait(2.0)
    time.sleep(0.01)
    assert 30.0 <= clock.now() <= 31.0  # frozen at (about) the wake time, not 100 s later


def test_without_freeze_time_runs_at_speed():
    clock = VirtualClock(speed=1e4, start_unix=0.0)
    time.sleep(0.01)
    assert clock.now() >= 100.0
