"""Templates are code, so every template renders in Jinja's sandbox, bounded.

`ImmutableSandboxedEnvironment` refuses what reaches Python's insides (``__globals__``,
``__subclasses__``, ``mro``, functions' code, ``str.format`` tricks) and methods that change lists and
dicts; `bounded_render` adds what the sandbox does not bound: time and output. The deadline is checked at
every call, every operator that could make a huge value, and every step of every ``{% for %}`` (the code
generator wraps each loop's iterable), so a loop that prints nothing and calls nothing still stops.

What this cannot stop in-process (one C-level call such as ``'x'|center(10**9)`` allocating a gigabyte)
is why a template from a request (the console's preview) renders in a worker process with a memory
limit and a deadline, killed when over it (web/preview_worker.py). The config's own templates are the
operator's code, checked at load: these bounds are their guard against a runaway on unusual alert data.
This module is a leaf (jinja2 only): ingest's recipient templates and rendering both build on it.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["Bounds", "BoundsExceeded", "SandboxedTemplates", "SecurityError", "bounded_render"]

_LOOP_FILTER = "_bounded_loop"
# Operands past these make values that take seconds or gigabytes in one step (2 ** 10**9, 'x' * 10**10).
_MAX_EXPONENT = 4096
_MAX_SEQUENCE = 1_000_000


@dataclass(frozen=True)
class Bounds:
    """How long one render may take, and how many characters it may print."""

    seconds: float = 2.0
    chars: int = 1_000_000


class BoundsExceeded(SecurityError):
    """A render went past its `Bounds` (a SecurityError: Jinja's own refusal, with a message)."""


@dataclass
class _Budget:
    deadline: float
    bounds: Bounds


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget", default=None)


def _check() -> None:
    budget = _budget.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise BoundsExceeded(f"the template ran longer than {budget.bounds.seconds:g}s (a runaway loop?)")


def _bounded_loop(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _check()
        yield item


class _BoundedCodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        # Every loop (in macros and blocks too) iterates through `_bounded_loop`, which checks the
        # deadline at each step. Done before generating: the generator names each filter it will use
        # in a first pass over the whole tree.
        for loop in node.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
        super().visit_Template(node, frame)


class SandboxedTemplates(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with a deadline at every call, operator and loop step.

    ``lipsum`` is gone (it builds text in Python, unchecked, as large as asked); the other globals
    (``range``, bounded by the sandbox, ``dict``, ``cycler``, ``joiner``, ``namespace``) stay: their
    insides are out of reach."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)
        self.filters[_LOOP_FILTER] = _bounded_loop

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check()
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check()
        if operator == "**" and isinstance(right, int) and right > _MAX_EXPONENT:
            raise SecurityError(f"an exponent over {_MAX_EXPONENT} is refused in templates")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > _MAX_SEQUENCE:
                    raise SecurityError(f"a repeated value over {_MAX_SEQUENCE} items is refused")
        return super().call_binop(context, operator, left, right)


def bounded_render(
    template: jinja2.Template, context: Mapping[str, Any], bounds: Bounds | None = None
) -> str:
    """`template` rendered with `context` within `bounds`: raises BoundsExceeded (a jinja2
    TemplateError) when it runs too long or prints too much."""
    bounds = bounds or Bounds()
    token = _budget.set(_Budget(time.monotonic() + bounds.seconds, bounds))
    try:
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > bounds.chars:
                raise BoundsExceeded(f"the template printed more than {bounds.chars} characters")
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        _budget.reset(token)
