"""Spans as the rest of the package sees them, and the tracing that is off: what every caller holds
when `tracing:` has no endpoint. It imports nothing of OpenTelemetry and costs one method call and one
shared object per span, so that the webhook's path is not slower with tracing off (bench/tracing.py).

`active()` is the tracing whose span encloses the caller (a context variable, so it follows asyncio
tasks): the WeCom client (wecom/api.py) makes its call spans children of whatever delivery or card
action it runs for, without a tracer passed down through the channels.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType

Attribute = str | int | float | bool


class Span:
    """A span that records nothing: tracing off, or a span that is not sampled."""

    __slots__ = ()

    def set(self, key: str, value: Attribute) -> None:
        """An attribute. Never a URL with a query string, a token or a secret (see otel.py's guard)."""

    def fail(self, description: str) -> None:
        """Mark the span's operation failed (status ERROR), saying why in a few words."""

    @property
    def traceparent(self) -> str | None:
        """The span's context as a W3C traceparent, to be stored with a job (None: tracing off)."""
        return None


class _NoSpan:
    """The one context manager every span of the tracing that is off returns."""

    __slots__ = ()

    def __enter__(self) -> Span:
        return NO_SPAN

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


NO_SPAN = Span()
NO_SPAN_CONTEXT = _NoSpan()


class Tracing:
    """Tracing off: every span is the same object doing nothing."""

    enabled = False

    def span(
        self,
        name: str,
        parent: str | None = None,
        links: Sequence[str | None] = (),
        attributes: Mapping[str, Attribute] | None = None,
        kind: str = "internal",
    ) -> AbstractContextManager[Span]:
        """A span named `name`, a child of `parent` (a traceparent: a caller's header or one stored with
        a job) or else of the enclosing span; `links`: traceparents of related traces (a digest's
        notifications). `kind`: internal, server (a request served) or client (a call made)."""
        return NO_SPAN_CONTEXT

    def flush(self) -> None:
        """Export what has ended (tests and shutdown)."""

    def shutdown(self) -> None:
        """Export what has ended and stop (blocks up to the export timeout: call it off the event loop)."""


OFF = Tracing()
# Active inside a span that is not sampled and was therefore not made (otel.py): its children are not
# made either, and the WeCom calls within see tracing off.
SUPPRESSED = Tracing()
_active: contextvars.ContextVar[Tracing] = contextvars.ContextVar("alertmanager_wecom_tracing", default=OFF)


def active() -> Tracing:
    """The tracing of the enclosing span; `OFF` outside any span."""
    return _active.get()


def activate(tracing: Tracing) -> contextvars.Token[Tracing]:
    """Called by an enabled tracing when one of its spans is entered; `deactivate` when it is left."""
    return _active.set(tracing)


def deactivate(token: contextvars.Token[Tracing]) -> None:
    _active.reset(token)
