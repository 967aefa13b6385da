"""`Repeated`: a failure that repeats is logged at once, then once a minute with how often it failed
meanwhile, and its end once; a real logger, records captured, the clock injected."""

from __future__ import annotations

import logging

import pytest

from alertmanager_wecom.repeated import Repeated


def test_a_repeated_failure_is_logged_once_a_minute_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    repeated = Repeated(logging.getLogger("tests.repeated"), "Redis", clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="tests.repeated")
    repeated.succeeded()  # nothing was failing: nothing to say
    for _ in range(100):  # a burst of calls within a second
        repeated.failed("Redis: ConnectionError: refused")
    now[0] += 59.0
    repeated.failed("Redis: ConnectionError: refused")
    assert [r.getMessage() for r in caplog.records] == ["Redis unavailable: Redis: ConnectionError: refused"]
    now[0] += 1.0
    repeated.failed("Redis: TimeoutError: frozen")
    now[0] += 30.0
    repeated.succeeded()
    repeated.succeeded()
    assert [r.getMessage() for r in caplog.records][1:] == [
        "Redis still unavailable after 60s (101 more failures since the last line): Redis: TimeoutError: frozen",
        "Redis available again after 90s (102 failures)",
    ]
    repeated.failed("Redis: ConnectionError: refused")  # a new outage is logged at once
    assert caplog.records[-1].getMessage() == "Redis unavailable: Redis: ConnectionError: refused"
    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR", "WARNING", "ERROR"]
