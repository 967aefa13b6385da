"""What the simulator's ``/admin/*`` endpoints accept (``/sim/admin/*`` in the sandbox): they reset the
inbox, inject faults, change trusted IPs and press card buttons, for the operator's scripts and the inbox
page's own buttons, never for another site a browser happens to have open.

A request whose ``Origin`` is not the host:port it was sent to is refused (403), and a POST must say its
body is JSON (415): a page elsewhere can send a form or text/plain body without asking, but a JSON one only
after a CORS preflight that this server never answers. Clients that send no ``Origin`` (scripts, curl,
tests) are not browsers on someone else's page, and pass.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Handler = Callable[[Request], Awaitable[Response]]
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_port(scheme: str, netloc: str) -> tuple[str, int] | None:
    try:
        parts = urllib.parse.urlsplit(f"{scheme}://{netloc}")
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname.lower(), port


def foreign_origin(request: Request) -> bool:
    """Whether the request carries an Origin other than the host:port it was sent to (``null``, a
    sandboxed frame or a file, is foreign too)."""
    origin = request.headers.get("origin")
    if origin is None:
        return False
    try:
        sent_from = urllib.parse.urlsplit(origin)
    except ValueError:
        return True
    served = _host_port(request.url.scheme, request.headers.get("host", ""))
    return served is None or _host_port(sent_from.scheme, sent_from.netloc) != served


def admin_only(handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        if foreign_origin(request):
            return JSONResponse(
                {"error": "the simulator's admin endpoints answer only their own pages (Origin)"},
                status_code=403,
            )
        if request.method == "POST":
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                return JSONResponse(
                    {"error": "send a JSON body (Content-Type: application/json)"}, status_code=415
                )
        return await handler(request)

    return guarded
