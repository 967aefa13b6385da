"""The tracing that is on: spans of OpenTelemetry's SDK (the `tracing` extra), exported as export.py
sets up. Used only when `tracing.endpoint` is set (tracing/__init__.py)."""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING

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
from alertmanager_wecom.tracing.export import tracer_provider

if TYPE_CHECKING:
    from opentelemetry import trace
    from opentelemetry.context import Context

# A version-00 traceparent whose caller did not sample the trace (flags without the sampled bit).
_NOT_SAMPLED = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f][02468ace]")


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
        from opentelemetry.trace import Status, StatusCode  # loaded already: a span was made

        self._span.set_status(Status(StatusCode.ERROR, redact(description)))

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
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            deactivate(self._token)


class OTelTracing(Tracing):
    enabled = True

    def __init__(self, settings: TracingSettings, version: str) -> None:
        # Here, not at the top: this module imports without the tracing extra (as every module must,
        # tests/test_install.py), and only an enabled tracing loads OpenTelemetry.
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        kinds = trace.SpanKind
        self._kinds = {"internal": kinds.INTERNAL, "server": kinds.SERVER, "client": kinds.CLIENT}
        self._provider = tracer_provider(settings, version)
        self._tracer = self._provider.get_tracer("alertmanager_wecom", version)
        # sampling_fraction 0 (the default) keeps no trace that begins here (see `span`).
        self._roots_dropped = settings.sampling_fraction == 0.0

    def _context(self, traceparent: str) -> Context:
        """A traceparent's context: an empty one (a new trace) when it is malformed, as W3C says to treat
        a header that does not parse: a caller's bad header never fails a webhook."""
        return self._propagator.extract({"traceparent": traceparent})

    def _link(self, traceparent: str | None) -> trace.Link | None:
        if not traceparent:
            return None
        context = self._trace.get_current_span(self._context(traceparent)).get_span_context()
        return self._trace.Link(context) if context.is_valid else None

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
            if self._roots_dropped and not self._trace.get_current_span().get_span_context().is_valid:
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
            context=self._context(parent) if parent else None,
            kind=self._kinds[kind],
            links=[link for link in map(self._link, links) if link is not None],
            # Exceptions' texts are not recorded: they can quote alert data and URLs; the type is enough
            # to find the log line that says more.
            record_exception=False,
            set_status_on_exception=False,
        )
        if attributes and span.is_recording():  # not cleaned for a span that is not sampled
            span.set_attributes({key: _clean(value) for key, value in attributes.items()})
        with self._trace.use_span(
            span, end_on_exit=True, record_exception=False, set_status_on_exception=False
        ):
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
