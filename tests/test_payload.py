"""The webhook's door (a lean schema) against the model the dispatcher renders from."""

from __future__ import annotations

import copy
import gc
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from alertmanager_wecom import samples
from alertmanager_wecom.ingest import payload
from alertmanager_wecom.ingest.payload import (
    WEBHOOK,
    InvalidTime,
    Notification,
    alert_instants,
    collector_paused,
    dump_notification,
    parse_notification,
    validate_webhook,
)

ALERT_FIELDS = [
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
    "silenceURL",
    "dashboardURL",
    "panelURL",
]
TOP_FIELDS = [
    "version",
    "groupKey",
    "truncatedAlerts",
    "receiver",
    "status",
    "alerts",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "title",
    "message",
]

moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
).map(lambda d: d.astimezone(timezone(timedelta(hours=8))) if d.microsecond % 2 else d)
time_texts = st.one_of(
    moments.map(lambda d: d.isoformat()),
    moments.map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S") + "." + "123456789"[: d.microsecond % 9 + 1] + "Z"),
    st.from_regex(
        r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})\Z"
    ),
    st.text(max_size=30),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    time_texts,
)
json_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    # objects of mixed values: what a label or annotation map must refuse
    st.dictionaries(st.text(max_size=5), scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), st.lists(scalars, max_size=2), max_size=2),
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    body = copy.deepcopy(
        samples.node_down(draw(st.integers(0, 3)), status=draw(st.sampled_from(["firing", "resolved"])))
    )
    for _ in range(draw(st.integers(1, 2))):
        alerts = body.get("alerts")
        alert = alerts[draw(st.integers(0, len(alerts) - 1))] if isinstance(alerts, list) and alerts else None
        if isinstance(alert, dict) and draw(st.booleans()):
            name = draw(st.sampled_from(ALERT_FIELDS))
            value = (
                draw(st.one_of(time_texts, json_values))
                if name in ("startsAt", "endsAt")
                else draw(json_values)
            )
            if draw(st.integers(0, 5)) == 0:
                alert.pop(name, None)
            else:
                alert[name] = value
        else:
            body[draw(st.sampled_from(TOP_FIELDS))] = draw(json_values)
    return body


@settings(max_examples=1000, deadline=None)
@given(bodies())
def test_what_the_door_accepts_the_dispatcher_can_read(body: dict[str, Any]) -> None:
    check(body)


TRICKY = [
    None,
    True,
    0,
    -1,
    1.5,
    "",
    "x",
    "2026-11-28T09:00:00Z",
    "2026-11-28T09:00:00.123456789+08:00",
    "2026-11-28T09:00:00",
    "2026-11-28 09:00:00Z",
    "2026-11-28.09:00:00Z",
    "2026-11-28T24:00:00Z",
    "2026-11-28T09:00:00.1234567891Z",
    "2026-11-28",
    "0001-01-01T00:00:00Z",
    [],
    ["a"],
    {},
    {"a": "b"},
    {"a": 1},
    {"a": None},
    {"a": ["b"]},
]


def test_each_field_given_each_tricky_value() -> None:
    # Systematic: every field of an alert and of the notification, given each value in turn.
    accepted = 0
    for status in ("firing", "resolved"):
        for name in ALERT_FIELDS + TOP_FIELDS:
            for value in TRICKY:
                body = samples.node_down(2, status=status)
                (body["alerts"][1] if name in ALERT_FIELDS else body)[name] = value
                accepted += check(body)
    assert accepted > 100  # the check above really ran on bodies the door let in


def check(body: dict[str, Any]) -> bool:
    """False if the door refuses the body; else the model must read it, with the same instants."""
    text = json.dumps(body)
    try:
        webhook = WEBHOOK.validate_json(text)
        instants = alert_instants(webhook)
    except (ValidationError, InvalidTime):
        return False
    notification = Notification.model_validate_json(text)  # must not raise
    assert len(notification.alerts) == len(instants)
    for alert, (starts, ends) in zip(notification.alerts, instants, strict=True):
        assert alert.started.timestamp() == starts
        ended = alert.ended
        assert (ended.timestamp() if ended is not None else None) == ends
    return True


def test_a_time_of_the_right_form_but_no_real_date_is_refused() -> None:
    body = samples.node_down(1)
    body["alerts"][0]["startsAt"] = "2026-02-30T09:00:00Z"
    webhook = WEBHOOK.validate_python(body)
    try:
        alert_instants(webhook)
    except InvalidTime as exc:
        assert "alerts.0.startsAt" in str(exc) and "2026-02-30" in str(exc)
    else:
        raise AssertionError("a 30th of February was accepted")


# -- large bodies, in pieces ------------------------------------------------------------------------------


@contextmanager
def every_body_large() -> Iterator[None]:
    """Every body takes the path of large ones, each alert a piece of its own."""
    saved = payload.LARGE_BODY, payload.LARGE_ALERTS, payload.PIECE_CHARS, payload._PIECE_ALERTS
    payload.LARGE_BODY, payload.LARGE_ALERTS, payload.PIECE_CHARS, payload._PIECE_ALERTS = -1, -1, 1, 1
    try:
        yield
    finally:
        payload.LARGE_BODY, payload.LARGE_ALERTS, payload.PIECE_CHARS, payload._PIECE_ALERTS = saved


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except ValidationError as exc:
        return "refused", {(e["type"], e["loc"]) for e in exc.errors()}


def same_as_one_pass(text: str) -> None:
    data = text.encode()
    one_webhook = outcome(lambda: WEBHOOK.validate_json(data))
    one_model = outcome(lambda: Notification.model_validate_json(data))
    with every_body_large():
        webhook = outcome(lambda: validate_webhook(data))
        model = outcome(lambda: parse_notification(data))
        dumped = dump_notification(model[1]) if model[0] == "ok" else None
    for pieces, whole in ((webhook, one_webhook), (model, one_model)):
        assert pieces[0] == whole[0], (pieces, whole)
        if whole[0] == "ok":
            assert pieces[1] == whole[1]
        else:  # the first piece with errors stops: its errors, each as one pass names it
            assert pieces[1] and pieces[1] <= whole[1], (pieces, whole)
    if dumped is not None:
        assert dumped == one_model[1].model_dump_json(by_alias=True)


@settings(max_examples=500, deadline=None)
@given(bodies(), st.sampled_from([None, 0, 2]), st.sampled_from([(",", ":"), (" , ", " : ")]))
def test_in_pieces_a_body_is_read_as_in_one_pass(
    body: dict[str, Any], indent: int | None, separators: tuple[str, str]
) -> None:
    same_as_one_pass(json.dumps(body, indent=indent, separators=separators))


@pytest.mark.parametrize(
    "text",
    [
        # a lone surrogate: the standard library's scanner takes it, pydantic's refuses it (400)
        json.dumps(samples.node_down(3)).replace("10.0.0.1:9100", "\\ud800"),
        json.dumps(samples.node_down(3)).replace("10.0.0.1:9100", "\\ud83d\\ude00"),
        # what looks like the structure inside a string
        json.dumps(samples.node_down(3)).replace("10.0.0.1:9100", '}, {\\"alerts\\": []'),
        '{"status": "firing", "alerts": [], "alerts": []}',
        '{"status": "firing", "alerts": 5, "alerts": []}',
        '{"status": "firing", "alerts": [1, 2,]}',
        '{"status": "firing", "alerts": []} x',
        '[{"status": "firing", "alerts": []}]',
        '{"status": "firing"}',
        "",
    ],
)
def test_in_pieces_edge_cases_are_read_as_in_one_pass(text: str) -> None:
    same_as_one_pass(text)


def test_an_error_in_a_later_piece_names_the_alert_in_the_whole_body() -> None:
    body = samples.node_down(10)
    body["alerts"][7]["status"] = "burning"
    with every_body_large(), pytest.raises(ValidationError) as caught:
        validate_webhook(json.dumps(body).encode())
    assert [e["loc"] for e in caught.value.errors()] == [("alerts", 7, "status")]


def test_the_collector_pauses_while_any_large_work_runs() -> None:
    assert gc.isenabled()
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused():
            inside.set()
            leave.wait(30)

    thread = threading.Thread(target=other)
    with collector_paused():
        assert not gc.isenabled()
        thread.start()
        assert inside.wait(30)
    assert not gc.isenabled()  # the other thread's work still runs
    leave.set()
    thread.join(30)
    assert gc.isenabled()


def test_a_time_that_is_no_date_is_named_before_a_time_out_of_range() -> None:
    """Both of an alert's times are read before either is checked for range, so the 422 names the one
    that is no date at all."""
    webhook = WEBHOOK.validate_python(
        {
            "status": "firing",
            "alerts": [
                {"status": "firing", "startsAt": "0001-01-01T00:00:00Z", "endsAt": "0001-00-00T00:00:00Z"}
            ],
        }
    )
    with pytest.raises(InvalidTime, match=r"alerts\.0\.endsAt: .* is not a valid date"):
        alert_instants(webhook)
