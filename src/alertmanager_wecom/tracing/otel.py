"""The tracing that is on: OpenTelemetry's SDK, exporting over OTLP/HTTP (protobuf) to the endpoint of
`tracing:`. Imported only when that endpoint is set (tracing/__init__.py), from the `tracing` extra.

The provider is this service's own, not OpenTelemetry's global one: each relay (and each test's) has
its own exporter, and a library that uses the global API does not send spans to our receiver unasked.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType

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
from alertmanager_wecom.tracing.base import (
    NO_SPAN_CONTEXT,
    SUPPRESSED,
    Attribute,
    Span,
    Tracing,
    activate,
    active,
    deactivate,
)

_KINDS = {
    "internal": trace.SpanKind.INTERNAL,
    "server": trace.SpanKind.SERVER,
    "client": trace.SpanKind.CLIENT,
}
_PROPAGATOR = TraceContextTextMapPropagator()
# A version-00 traceparent whose caller did not sample the trace (flags without the sampled bit).
_NOT_SAMPLED = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f][02468ace]")


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


class _Unsampled(Span):
    """A span not sampled, hence not made: it hands on the caller's traceparent (if any), so that the
    job's delivery is not sampled either."""

    __slots__ = ("_traceparent",)

    def __init__(self, traceparent: str | None) -> None:
        self._traceparent = traceparent

    @property
    def traceparent(self) -> str | None:
        return self._traceparent


class _NotMade:
    """The context of a span not made: inside it nothing is traced (`SUPPRESSED`)."""

    __slots__ = ("_span", "_token")

    def __init__(self, traceparent: str | None) -> None:
        self._span = _Unsampled(traceparent)
        self._token: contextvars.Token[Tracing] | None = None

    def __enter__(self) -> Span:
        self._token = activate(SUPPRESSED)
        return self._span

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            deactivate(self._token)


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
        # sampling_fraction 0 (the default) keeps no trace that begins here (see `span`).
        self._roots_dropped = settings.sampling_fraction == 0.0

    def span(
        self,
        name: str,
        parent: str | None = None,
        links: Sequence[str | None] = (),
        attributes: Mapping[str, Attribute] | None = None,
        kind: str = "internal",
    ) -> AbstractContextManager[Span]:
        # What the sampler would drop is not made: the SDK's span, even one not recorded, costs a webhook
        # some 25 µs; this check, one. The outcome is the same: nothing of that trace is exported.
        if parent is None:
            if active() is SUPPRESSED:
                return NO_SPAN_CONTEXT  # within a span not made: neither are its children
            if self._roots_dropped and not trace.get_current_span().get_span_context().is_valid:
                return _NotMade(None)
        elif _NOT_SAMPLED.fullmatch(parent):
            return _NotMade(parent)  # the sampler follows a caller's decision, whatever the fraction
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
        span = self._tracer.start_span(
            name,
            context=_context(parent) if parent else None,
            kind=_KINDS[kind],
            links=[link for link in map(_link, links) if link is not None],
            # Exceptions' texts are not recorded: they can quote alert data and URLs; the type is enough
            # to find the log line that says more.
            record_exception=False,
            set_status_on_exception=False,
        )
        if attributes and span.is_recording():  # not cleaned for a span that is not sampled
            span.set_attributes({key: _clean(value) for key, value in attributes.items()})
        with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
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
