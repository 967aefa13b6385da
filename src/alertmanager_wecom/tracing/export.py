"""Where spans go: this service's own tracer provider, exporting over OTLP/HTTP (protobuf) to the endpoint
of `tracing:`. OpenTelemetry is imported inside `tracer_provider`, so that this module imports without
the `tracing` extra (tests/test_install.py imports every module with the wheel alone).

The provider is not OpenTelemetry's global one: each relay (and each test's) has its own exporter, and a
library that uses the global API does not send spans to our receiver unasked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alertmanager_wecom.config.tracing import TracingSettings
from alertmanager_wecom.secret import guard_logger

if TYPE_CHECKING:
    import requests
    from opentelemetry.sdk.trace import TracerProvider


def tracer_provider(settings: TracingSettings, version: str) -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": "alertmanager-wecom", "service.version": version}),
        # Alertmanager's choice: a caller's sampled flag decides for its trace, the fraction for ours.
        sampler=ParentBased(TraceIdRatioBased(settings.sampling_fraction)),
    )
    tls = settings.tls_config
    exporter = OTLPSpanExporter(
        endpoint=settings.url,
        certificate_file=tls.ca_file if tls else None,
        client_certificate_file=tls.cert_file if tls else None,
        client_key_file=tls.key_file if tls else None,
        headers={name: value.reveal() for name, value in settings.headers.items()},
        timeout=settings.timeout,
        compression=Compression.Gzip if settings.compression == "gzip" else Compression.NoCompression,
        session=_session_keeping_its_ca() if tls and tls.ca_file else None,
    )
    # Batches, exported by the processor's own thread: never on the event loop, never waited for.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    # Its failures are logged with the receiver's answer, which a receiver may fill with what it was sent
    # (the headers, secrets): scrubbed like httpx's lines.
    guard_logger(OTLPSpanExporter.__module__)
    return provider


def _session_keeping_its_ca() -> requests.Session:
    """A requests session whose CA file (tls_config.ca_file, set by the exporter) holds: a plain session
    lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE from the environment replace it, and images often set them."""
    import requests

    class Session(requests.Session):
        def merge_environment_settings(
            self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
        ) -> dict[str, Any]:
            settings: dict[str, Any] = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if verify is None and isinstance(self.verify, str):
                settings["verify"] = self.verify
            return settings

    return Session()
