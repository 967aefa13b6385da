"""Alertmanager's matcher syntax: ``name="value"``, ``name!="value"``, ``name=~"regex"``, ``name!~"regex"``.

Regexes are anchored at both ends, as in Alertmanager.  Values may be quoted (with ``\\"`` and ``\\\\``
escapes) or bare.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.S)


class MatcherError(ValueError):
    pass


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        out = []
        chars = iter(raw[1:-1])
        for char in chars:
            if char == "\\":
                nxt = next(chars, None)
                if nxt is None:
                    raise MatcherError("a value cannot end with a lone backslash")
                out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            elif char == '"':
                raise MatcherError('an unescaped " inside a quoted value')
            else:
                out.append(char)
        return "".join(out)
    if '"' in raw:
        raise MatcherError(f"unbalanced quotes in {raw!r}")
    return raw


def parse_matcher(text: str) -> Matcher:
    match = _MATCHER.match(text)
    if match is None:
        raise MatcherError(
            f'{text!r} is not a matcher: use name="value", name!="value", name=~"re" or name!~"re"'
        )
    name, op, raw = match.groups()
    value = _unquote(raw)
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = re.compile(f"(?:{value})")
        except re.error as exc:
            raise MatcherError(f"{text!r}: invalid regular expression: {exc}") from None
    return Matcher(name, op, value, regex)


def matches_all(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
