"""The webhook payload Alertmanager (version 4) and Grafana's compatible contact point send.

Unknown fields are accepted and ignored (newer Alertmanager releases add fields), but the fields we
render from are checked so that a wrong body gets a 4xx naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one, not typing's, before Python 3.12

Status = Literal["firing", "resolved"]
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
    panel_url: str | None = Field(default=None, alias="panelURL")

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


WEBHOOK: TypeAdapter[Webhook] = TypeAdapter(Webhook)


class InvalidTime(ValueError):
    def __init__(self, where: str, value: str, why: str = "is not a valid date and time") -> None:
        super().__init__(f"{where}: {value!r} {why}")


def alert_instants(webhook: Webhook) -> list[tuple[float, float | None]]:
    """Each alert's (startsAt, endsAt) as Unix timestamps; endsAt None while the alert has not ended
    (Alertmanager sends the zero time). Raises InvalidTime for a time that has the form of RFC 3339
    but is no real date (a 13th month, a 25th hour), or one that no calendar can show in every time zone
    (9999-12-31T23:00:00Z is year 10000 in Shanghai): such an alert could never be rendered."""
    out: list[tuple[float, float | None]] = []
    for index, alert in enumerate(webhook["alerts"]):
        field = "startsAt"
        try:
            starts = datetime.fromisoformat(alert["startsAt"]).timestamp()
            field = "endsAt"
            text = alert.get("endsAt")
            ends = datetime.fromisoformat(text).timestamp() if text else None
        except (ValueError, OverflowError):
            raise InvalidTime(f"alerts.{index}.{field}", str(alert.get(field))) from None
        if ends is not None and ends <= _ZERO_TIME:
            ends = None  # the zero time: not ended
        for field, instant in (("startsAt", starts), ("endsAt", ends)):
            if instant is not None and not _EARLIEST <= instant <= _LATEST:
                raise InvalidTime(
                    f"alerts.{index}.{field}",
                    str(alert.get(field)),
                    "is out of range: times must lie between years 0001 and 9999 in every time zone",
                )
        out.append((starts, ends))
    return out


_ZERO_TIME = datetime(_ZERO_YEAR + 1, 1, 1, tzinfo=UTC).timestamp()
# A day inside the calendar's ends, so that every zone (UTC-12 to UTC+14) can show the time.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_LATEST = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
