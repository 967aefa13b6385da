"""Settings of the services this one calls besides WeCom (Alertmanager's silences, Prometheus's
queries) and the credentials they share with inbound auth: part of the config models' leaf."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from alertmanager_wecom.config.fields import Duration, Model
from alertmanager_wecom.secret import Secret


class BasicAuth(Model):
    username: str = Field(min_length=1)
    password: Secret


class AlertmanagerAPI(Model):
    """Alertmanager's API v2, where card buttons create and expire silences."""

    url: str = Field(pattern=r"^https?://")
    bearer_token: Secret | None = None
    basic_auth: BasicAuth | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    timeout: Duration = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _auth(self) -> AlertmanagerAPI:
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("set bearer_token or basic_auth, not both")
        return self


class PrometheusAPI(AlertmanagerAPI):
    """Prometheus's HTTP API, asked for the charts (query_range). Not the generator URL's host: alert
    data names that, and it is not trusted by default."""

    # Sent as query_range's own `timeout` too: Prometheus stops computing then, not only we waiting.
    timeout: Duration = Field(default=5.0, gt=0)
    # Which query a chart may run. An annotation is whatever the sender of the webhook wrote, so with
    # `generator_url` only the expression in the alert's generatorURL (the rule's own, as Prometheus
    # links it) is run, and an alert that gives only an annotation gets no chart.
    queries_from: Literal["annotation_or_generator_url", "generator_url"] = "annotation_or_generator_url"


class ChartSettings(Model):
    """How charts are drawn: the query from the annotation `query_annotation` (else the alert's
    generatorURL's g0.expr), from `before` the alert's start to now (at most `max_range`: the start is
    alert data), at most `points` points (the step follows: never finer than the window allows)."""

    query_annotation: str = "chart_query"
    before: Duration = Field(default=3600.0, gt=0)
    max_range: Duration = Field(default=7 * 86400.0, ge=60, le=31 * 86400.0)
    points: int = Field(default=300, ge=10, le=11000)  # Prometheus refuses over 11,000 per series
    max_series: int = Field(default=8, ge=1, le=20)
