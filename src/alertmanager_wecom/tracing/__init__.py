"""OpenTelemetry traces of the path one alert takes: the webhook (web/webhook.py), each job's delivery
and its stages (delivery/deliver.py), the WeCom calls (wecom/api.py) and card actions
(actions/cards.py). The webhook span's traceparent is stored with each job in the outbox, so that the
delivery, after any wait and across a restart, continues the trace that Alertmanager began.

Off unless `tracing.endpoint` is set; then, and only then, the OpenTelemetry SDK is imported
(tracing/otel.py, the `tracing` extra).
"""

from __future__ import annotations

from alertmanager_wecom import __version__
from alertmanager_wecom.config.tracing import TracingSettings
from alertmanager_wecom.tracing.base import NO_SPAN, OFF, Attribute, Span, Tracing, active

__all__ = ["NO_SPAN", "OFF", "Attribute", "Span", "Tracing", "active", "start_tracing"]


def start_tracing(settings: TracingSettings) -> Tracing:
    """The service's tracing for `settings`: `OFF` without an endpoint."""
    if not settings.enabled:
        return OFF
    # Here and not at the top: without an endpoint nothing of OpenTelemetry is imported.
    from alertmanager_wecom.tracing.otel import OTelTracing

    return OTelTracing(settings, __version__)
