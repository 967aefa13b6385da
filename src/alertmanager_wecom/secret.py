"""A value that must never be printed: app secrets, access tokens, robot keys, callback keys.

`Secret` masks itself in repr/str/format so that an accidental f-string or log line shows
``**********``.  `redact` scrubs known secret values out of free text (errmsg from WeCom, URLs in
httpx exceptions) before it reaches a log or an error body; every secret the process learns is
registered so that redaction needs no plumbing.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

MASK = "**********"

_known: set[str] = set()
_known_lock = threading.Lock()
# Query parameters that carry secrets in WeCom URLs; masked even when the value was never registered.
_SECRET_PARAMS = re.compile(r"(?i)\b(access_token|corpsecret|key|secret)=([^&\s\"'<>]+)")


def register(value: str) -> None:
    """Remember a secret value so that `redact` removes it from any text."""
    if len(value) >= 4:
        with _known_lock:
            _known.add(value)


def redact(text: str) -> str:
    text = _SECRET_PARAMS.sub(lambda m: f"{m.group(1)}={MASK}", text)
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


class Secret:
    """A string that shows as ``**********``; call `reveal()` where the real value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def to_secret(value: Any) -> Secret:
            if isinstance(value, Secret):
                return value
            if not isinstance(value, str):
                raise ValueError("must be a string")
            if not value:
                raise ValueError("must not be empty")
            return Secret(value)

        return core_schema.no_info_plain_validator_function(
            to_secret, serialization=core_schema.plain_serializer_function_ser_schema(lambda s: MASK)
        )


class RedactFilter(logging.Filter):
    """Scrubs secrets from records of loggers we do not own (httpx logs every URL it requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def guard_logger(name: str) -> None:
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactFilter) for f in logger.filters):
        logger.addFilter(RedactFilter())
