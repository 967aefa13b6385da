"""Reading request bodies within limits, and the JSON answers every route gives (secrets redacted)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

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
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTooSlow from None
    return b"".join(chunks)


def body_too_slow(timeout: float) -> JSONResponse:
    return JSONResponse(
        {"error": f"the request body did not arrive within server.body_timeout ({timeout:g}s)"},
        status_code=408,
        headers={"Connection": "close"},
    )


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": redact(message), **extra}, status_code=status)
