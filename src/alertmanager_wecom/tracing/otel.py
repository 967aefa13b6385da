"""The tracing that is on: OpenTelemetry's SDK, exporting over OTLP/HTTP (protobuf) to the endpoint of
`tracing:`. Imported only when that endpoint is set (tracing/__init__.py), from the `tracing` extra.

The provider is this service's own, not OpenTelemetry's global one: each relay (and each test's) has
its own exporter, and a library that uses the global API does not send spans to our receiver unasked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from alertmanager_wecom.config.tracing import TracingSettings
from alertmanager_wecom.secret import redact
from alertmanager_wecom.tracing.base import Attribute, Span, Tracing, activate, deactivate

_KINDS = {
    "internal": trace.SpanKind.INTERNAL,
    "server": trace.SpanKind.SERVER,
    "client": trace.SpanKind.CLIENT,
}
_PROPAGATOR = TraceContextTextMapPropagator()


def _context(traceparent: str) -> Context:
    """A traceparent's context: an empty one (a new trace) when it is malformed, as W3C says to treat
    a header that does not parse: a caller's bad header never fails a webhook."""
    return _PROPAGATOR.extract({"traceparent": traceparent})


def _link(traceparent: str | None) -> trace.Link | None:
    if not traceparent:
        return None
    context = trace.get_current_span(_context(traceparent)).get_span_context()
    return trace.Link(context) if context.is_valid else None


def _clean(value: Attribute) -> Attribute:
    # A guard, not the rule: callers never pass secrets, but a URL or an error text that slipped in
    # loses its access_token=, key= and every registered secret here, before any exporter sees it.
    return redact(value) if isinstance(value, str) else value


class _Span(Span):
    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set(self, key: str, value: Attribute) -> None:
        if self._span.is_recording():
            self._span.set_attribute(key, _clean(value))

    def fail(self, description: str) -> None:
        self._span.set_status(trace.Status(trace.StatusCode.ERROR, redact(description)))

    @property
    def traceparent(self) -> str | None:
        # Also for a span not sampled: the job carries the decision, so its delivery is not sampled
        # either (the sampler follows the parent), and one trace is kept whole or not at all.
        c = self._span.get_span_context()
        if not c.is_valid:
            return None
        return f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}"


class OTelTracing(Tracing):
    enabled = True

    def __init__(self, settings: TracingSettings, version: str) -> None:
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": "alertmanager-wecom", "service.version": version}),
            # Alertmanager's choice: a caller's sampled flag decides for its trace, the fraction for ours.
            sampler=ParentBased(TraceIdRatioBased(settings.sampling_fraction)),
        )
        exporter = OTLPSpanExporter(
            endpoint=settings.url,
            headers={name: value.reveal() for name, value in settings.headers.items()},
            timeout=settings.timeout,
            compression=Compression.Gzip if settings.compression == "gzip" else Compression.NoCompression,
        )
        # Batches, exported by the processor's own thread: never on the event loop, never waited for.
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("alertmanager_wecom", version)

    def span(
        self,
        name: str,
        parent: str | None = None,
        links: Sequence[str | None] = (),
        attributes: Mapping[str, Attribute] | None = None,
        kind: str = "internal",
    ) -> AbstractContextManager[Span]:
        return self._span(name, parent, links, attributes, kind)

    @contextmanager
    def _span(
        self,
        name: str,
        parent: str | None,
        links: Sequence[str | None],
        attributes: Mapping[str, Attribute] | None,
        kind: str,
    ) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            name,
            context=_context(parent) if parent else None,
            kind=_KINDS[kind],
            attributes={key: _clean(value) for key, value in (attributes or {}).items()},
            links=[link for link in map(_link, links) if link is not None],
            # Exceptions' texts are not recorded: they can quote alert data and URLs; the type is enough
            # to find the log line that says more.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            token = activate(self)
            wrapped = _Span(span)
            try:
                yield wrapped
            except Exception as exc:
                wrapped.fail(type(exc).__name__)
                raise
            finally:
                deactivate(token)

    def flush(self) -> None:
        self._provider.force_flush()

    def shutdown(self) -> None:
        self._provider.shutdown()
