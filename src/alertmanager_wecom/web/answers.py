"""Reading request bodies within limits, and the JSON answers every route gives (secrets redacted)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from alertmanager_wecom.outbox import OutboxUnavailable
from alertmanager_wecom.secret import redact

JSON = "application/json"


class BodyTooLarge(Exception):
    pass


class BodyTooSlow(Exception):
    pass


async def read_body(request: Request, limit: int, seconds: float) -> bytes:
    """The request's body, if it is at most `limit` bytes and arrives within `seconds`: a client
    that stops sending half-way would otherwise hold its connection (and the body read so far)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    receive = request.receive  # ASGI's messages, as Request.stream reads them, without its generator
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await receive()
                if message["type"] != "http.request":  # http.disconnect: the client is gone
                    raise ClientDisconnect
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise BodyTooSlow from None
    return b"".join(chunks)


def paging_offset(request: Request) -> int | None:
    """`?offset=`: how many of the newest to skip (paging; 0 when absent); None unless it is a whole
    number of at most nine ASCII digits."""
    skip = request.query_params.get("offset", "0")
    return int(skip) if skip.isascii() and skip.isdigit() and len(skip) <= 9 else None


def body_too_slow(timeout: float) -> JSONResponse:
    return JSONResponse(
        {"error": f"the request body did not arrive within server.body_timeout ({timeout:g}s)"},
        status_code=408,
        headers={"Connection": "close"},
    )


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": redact(message), **extra}, status_code=status)


def storage_failure(exc: BaseException) -> bool:
    """An outage of a store (the SQLite file, Redis), not a bug: answered 503, so the caller retries. Redis'
    errors are recognised by their module, so that redis-py is imported only where it is used."""
    if isinstance(exc, sqlite3.Error | OSError | TimeoutError | OutboxUnavailable):
        return True
    return any(cls.__module__.startswith("redis") for cls in type(exc).__mro__)


def store_guarded(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """`endpoint`, answering 503 with the reason when its store is down (never a 500 for an outage)."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:
            if not storage_failure(exc):
                raise
            logging.getLogger(__name__).warning("%s: the store is unavailable: %s", request.url.path, exc)
            return error(503, f"the store is unavailable ({type(exc).__name__}); retry")

    return guarded
