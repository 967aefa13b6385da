"""The webhook payload Alertmanager (version 4) and Grafana's compatible contact point send.

Unknown fields are accepted and ignored (newer Alertmanager releases add fields), but the fields we
render from are checked so that a wrong body gets a 4xx naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
