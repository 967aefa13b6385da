"""The webhook payload Alertmanager (version 4) and Grafana's compatible contact point send.

Unknown fields are accepted and ignored (newer Alertmanager releases add fields), but the fields we
render from are checked so that a wrong body gets a 4xx naming the field.
"""

from __future__ import annotations

import contextlib
import gc
import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one, not typing's, before Python 3.12

Status = Literal["firing", "resolved"]
# A digest's groupKey: it merges many groups (their keys: `Notification.digest_groups`), and is none.
DIGEST_GROUP_KEY = "digest"
# Alertmanager sends the zero time for alerts that have not ended.
_ZERO_YEAR = 1


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Alert(_Lenient):
    status: Status
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""
    # Grafana extras
    silence_url: str | None = Field(default=None, alias="silenceURL")
    dashboard_url: str | None = Field(default=None, alias="dashboardURL")

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def ended(self) -> datetime | None:
        if self.ends_at is None or self.ends_at.year <= _ZERO_YEAR:
            return None
        return self.ends_at if self.ends_at.tzinfo else self.ends_at.replace(tzinfo=UTC)

    @property
    def started(self) -> datetime:
        return self.starts_at if self.starts_at.tzinfo else self.starts_at.replace(tzinfo=UTC)


class Notification(_Lenient):
    version: str = "4"
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    receiver: str = ""
    status: Status
    alerts: list[Alert]
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    # Grafana extras
    title: str | None = None
    message: str | None = None
    # Set on digests: how many notifications were merged, and the message cap chosen from the rate
    # budget when the digest was made (stored, so that a resumed digest splits the same way).
    digest_of: int = 0
    digest_max_messages: int = 0
    # Set on digests too: the group keys of the notifications merged (an incident each, for on-call).
    digest_groups: list[str] = Field(default_factory=list)

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "resolved"]


# -- the webhook's door ---------------------------------------------------------------------------------
# Every webhook is checked against the schema below, which mirrors the models above under the JSON names.
# It validates in the same pydantic core but builds plain dicts with the times as text: the models cost
# twice as much, and the webhook needs them only for receivers that route by alert (the dispatcher
# builds them when it renders). Times are checked by `alert_instants`. A body the door accepts is
# accepted by `Notification` too (a property test holds them to that), so nothing is answered 200
# that the dispatcher could not read.

# RFC 3339 as Alertmanager and Grafana write it (Go's RFC3339Nano: up to nine fraction digits).
_RFC3339 = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
Time = Annotated[str, StringConstraints(pattern=_RFC3339)]


class WebhookAlert(TypedDict):
    status: Status
    labels: NotRequired[dict[str, str]]
    annotations: NotRequired[dict[str, str]]
    startsAt: Time
    endsAt: NotRequired[Time | None]
    generatorURL: NotRequired[str]
    fingerprint: NotRequired[str]
    silenceURL: NotRequired[str | None]
    dashboardURL: NotRequired[str | None]
    panelURL: NotRequired[str | None]


class Webhook(TypedDict):
    version: NotRequired[str]
    groupKey: NotRequired[str]
    truncatedAlerts: NotRequired[Annotated[int, Field(ge=0)]]
    receiver: NotRequired[str]
    status: Status
    alerts: list[WebhookAlert]
    groupLabels: NotRequired[dict[str, str]]
    commonLabels: NotRequired[dict[str, str]]
    commonAnnotations: NotRequired[dict[str, str]]
    externalURL: NotRequired[str]
    title: NotRequired[str | None]
    message: NotRequired[str | None]
    digest_of: NotRequired[int]
    digest_max_messages: NotRequired[int]
    digest_groups: NotRequired[list[str]]


WEBHOOK: TypeAdapter[Webhook] = TypeAdapter(Webhook)
_WEBHOOK_ALERTS: TypeAdapter[list[WebhookAlert]] = TypeAdapter(list[WebhookAlert])
_ALERTS: TypeAdapter[list[Alert]] = TypeAdapter(list[Alert])


# -- large bodies, in pieces ----------------------------------------------------------------------------
# pydantic's core holds the GIL for the whole of a call: one call over a webhook of 20,000 alerts (10 MB)
# takes 100 ms and more, and stops the event loop for that long from whichever thread it is made. A large
# body is therefore validated (and a large notification parsed and written) in pieces of about
# PIECE_CHARS, each by the same pydantic schema as the whole, so that it accepts exactly what one pass
# accepts; the alerts' boundaries come from the standard library's JSON scanner, one alert per call.
# Between pieces another thread (the event loop) can take the GIL. Small bodies keep the one pass.

LARGE_BODY = 1 << 20  # bytes: above this, a body is worked through in pieces, in a thread
LARGE_ALERTS = 2000  # a notification with more alerts than this is written in pieces
PIECE_CHARS = 1 << 17
_PIECE_ALERTS = 256

_scan = json.JSONDecoder().raw_decode  # (value, end) for the JSON value at an index: C code
_SPACE = re.compile(r"[ \t\n\r]*")
Envelope = TypeVar("Envelope")
Item = TypeVar("Item")


def _skip(text: str, i: int) -> int:
    """The index of the first character from `i` on that is not JSON whitespace."""
    match = _SPACE.match(text, i)
    return match.end() if match else i


def _alert_pieces(text: str) -> tuple[int, int, list[tuple[int, int]]] | None:
    """Where the top-level "alerts" array is (its brackets included), and its alerts in pieces of about
    PIECE_CHARS (first character, end); None if `text` is not one JSON object with one "alerts" array
    (one pass then says why)."""
    found: tuple[int, int, list[tuple[int, int]]] | None = None
    try:
        i = _skip(text, 0)
        if text[i : i + 1] != "{":
            return None
        i = _skip(text, i + 1)
        if text[i : i + 1] == "}":
            return None
        while True:
            if text[i : i + 1] != '"':
                return None
            key, i = _scan(text, i)
            i = _skip(text, i)
            if text[i : i + 1] != ":":
                return None
            i = _skip(text, i + 1)
            if key == "alerts" and text[i : i + 1] == "[":
                if found is not None:
                    return None
                start, pieces = i, []
                i = _skip(text, i + 1)
                if text[i : i + 1] != "]":
                    first = i
                    while True:
                        _value, end = _scan(text, i)
                        i = _skip(text, end)
                        if i - first >= PIECE_CHARS:
                            pieces.append((first, end))
                            first = -1
                        if text[i : i + 1] == "]":
                            break
                        if text[i : i + 1] != ",":
                            return None
                        i = _skip(text, i + 1)
                        if first < 0:
                            first = i
                    if first >= 0:
                        pieces.append((first, end))
                i += 1
                found = (start, i, pieces)
            else:
                _value, i = _scan(text, i)
            i = _skip(text, i)
            if text[i : i + 1] == ",":
                i = _skip(text, i + 1)
                continue
            if text[i : i + 1] != "}":
                return None
            break
    except ValueError:
        return None
    if _skip(text, i + 1) != len(text):
        return None
    return found


def _shifted(exc: ValidationError, offset: int) -> ValidationError:
    """The errors of a piece of the alerts as errors of the whole body (alerts.<index>.…)."""
    return ValidationError.from_exception_data(
        exc.title,
        [
            {
                "type": error["type"],
                "loc": ("alerts", offset + int(error["loc"][0]), *error["loc"][1:]) if error["loc"] else (),
                "input": error["input"],
                **({"ctx": error["ctx"]} if "ctx" in error else {}),  # type: ignore[typeddict-item]
            }
            for error in exc.errors()
        ],
    )


def _in_pieces(
    data: str | bytes,
    envelope: Callable[[str], Envelope],
    alerts: Callable[[str], list[Item]],
) -> tuple[Envelope, list[Item]] | None:
    """The envelope (everything but the alerts) and the alerts, validated in pieces; None when the body
    is not shaped for it (not an object, no alerts array, not JSON), so that one pass says what is wrong."""
    try:
        text = data if isinstance(data, str) else data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    split = _alert_pieces(text)
    if split is None:
        return None
    start, end, pieces = split
    head = envelope(text[:start] + "[]" + text[end:])
    items: list[Item] = []
    for first, last in pieces:
        try:
            items.extend(alerts("[" + text[first:last] + "]"))
        except ValidationError as exc:
            raise _shifted(exc, len(items)) from None
    return head, items


def validate_webhook(body: bytes) -> Webhook:
    """`WEBHOOK.validate_json`, in pieces for a large body (then call it in a thread)."""
    if len(body) > LARGE_BODY:
        split = _in_pieces(body, WEBHOOK.validate_json, _WEBHOOK_ALERTS.validate_json)
        if split is not None:
            webhook, alerts = split
            webhook["alerts"] = alerts
            return webhook
    return WEBHOOK.validate_json(body)


def parse_notification(payload: str | bytes) -> Notification:
    """`Notification.model_validate_json`, in pieces for a large payload (then call it in a thread)."""
    if len(payload) > LARGE_BODY:
        split = _in_pieces(payload, Notification.model_validate_json, _ALERTS.validate_json)
        if split is not None:
            notification, alerts = split
            notification.alerts = alerts
            return notification
    return Notification.model_validate_json(payload)


def dump_notification(notification: Notification) -> str:
    """`notification.model_dump_json(by_alias=True)`, in pieces when it has many alerts (then call it in
    a thread); the same text either way."""
    alerts = notification.alerts
    if len(alerts) <= LARGE_ALERTS:
        return notification.model_dump_json(by_alias=True)
    head = notification.model_copy(update={"alerts": []}).model_dump_json(by_alias=True)
    # Structure, not content: a quote inside a string is written escaped (\"), and the fields before
    # `alerts` are strings and numbers.
    marker = head.index('"alerts":[]') + len('"alerts":[')
    parts: list[Any] = [head[:marker]]
    for index in range(0, len(alerts), _PIECE_ALERTS):
        if index:
            parts.append(",")
        parts.append(_ALERTS.dump_json(alerts[index : index + _PIECE_ALERTS], by_alias=True)[1:-1].decode())
    parts.append(head[marker:])
    return "".join(parts)


class InvalidTime(ValueError):
    def __init__(self, where: str, value: str, why: str = "is not a valid date and time") -> None:
        super().__init__(f"{where}: {value!r} {why}")


def alert_instants(webhook: Webhook) -> list[tuple[float, float | None]]:
    """Each alert's (startsAt, endsAt) as Unix timestamps; endsAt None while the alert has not ended
    (Alertmanager sends the zero time). Raises InvalidTime for a time that has the form of RFC 3339
    but is no real date (a 13th month, a 25th hour), or one that no calendar can show in every time zone
    (9999-12-31T23:00:00Z is year 10000 in Shanghai): such an alert could never be rendered."""
    out: list[tuple[float, float | None]] = []
    # A webhook repeats its times (every firing alert's zero endsAt; the startsAt of alerts that began
    # in one evaluation): each is parsed once. This runs on every webhook, on the event loop.
    parsed: dict[str, float] = {}
    for index, alert in enumerate(webhook["alerts"]):
        # Both parsed before either is checked for range: a time that is no date is named first.
        text = alert["startsAt"]
        starts = parsed.get(text)
        if starts is None:
            starts = parsed[text] = _timestamp(text, index, "startsAt")
        ends: float | None = None
        ended = alert.get("endsAt") or ""
        if ended:
            ends = parsed.get(ended)
            if ends is None:
                ends = parsed[ended] = _timestamp(ended, index, "endsAt")
        if not _EARLIEST <= starts <= _LATEST:
            raise _out_of_range(index, "startsAt", text)
        if ends is not None:
            if ends <= _ZERO_TIME:
                ends = None  # the zero time: not ended
            elif ends > _LATEST:
                raise _out_of_range(index, "endsAt", ended)
        out.append((starts, ends))
    return out


def _timestamp(text: str, index: int, field: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError):
        raise InvalidTime(f"alerts.{index}.{field}", text) from None


def _out_of_range(index: int, field: str, text: str) -> InvalidTime:
    return InvalidTime(
        f"alerts.{index}.{field}",
        text,
        "is out of range: times must lie between years 0001 and 9999 in every time zone",
    )


_ZERO_TIME = datetime(_ZERO_YEAR + 1, 1, 1, tzinfo=UTC).timestamp()
# A day inside the calendar's ends, so that every zone (UTC-12 to UTC+14) can show the time.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_LATEST = datetime(9999, 12, 30, tzinfo=UTC).timestamp()


class _CollectorPause:
    """See `collector_paused`: counted, so that overlapping pauses in several threads nest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._resume = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._resume:
                    gc.enable()


# Building the alerts of a large notification (a million objects for 75,000 alerts) sets off full
# collections of the garbage collector, each walking everything built so far with the GIL held (90 ms
# at 75,000 alerts). They find nothing: the objects form no cycles and die with the work that made them.
# So the collector pauses while such work runs: wrap a call whose result is small (jobs, messages), so
# that what it built is freed when it returns, before the collector resumes.
collector_paused = _CollectorPause()


def alert_identity(fingerprint: str, labels: dict[str, str]) -> str:
    """What makes an alert the same alert: Alertmanager's fingerprint, or else its label set (HA
    deduplication and digests both go by it)."""
    if fingerprint:
        return fingerprint
    return "\x00".join(f"{k}={v}" for k, v in sorted(labels.items()))
