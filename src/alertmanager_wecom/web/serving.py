"""The HTTP listener: uvicorn, with the edges a service on a network needs.

- A client must finish its request's headers within ``server.header_timeout`` (uvicorn has no such
  limit: a connection that sends half a request line stays open for as long as the client likes); the
  body's deadline is the app's (`relay.read_body`, ``server.body_timeout``, answered 408).
- At most ``server.max_connections`` connections are served at once; a request on any connection
  beyond them is answered 503 at once (uvicorn's ``limit_concurrency``).
- Proxy headers are not uvicorn's business (it believes ``X-Forwarded-For`` from 127.0.0.1 unless told
  otherwise): the app believes them from ``server.trusted_proxies`` only (`auth.TrustedProxies`).
"""

from __future__ import annotations

import asyncio
import signal
import socket
from types import FrameType
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown, so the process would die by the signal;
    a clean drain (intake stopped, in-flight sends finished, outbox closed) should exit 0."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)
        if sig == signal.SIGTERM and isinstance(captured, list) and sig in captured:
            captured.remove(sig)


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers do not arrive in time: from
    the connection's start, and again from the end of each response (the next request on a kept-alive
    connection; uvicorn's keep-alive timer stops at the first byte of it)."""

    header_timeout: float = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # this request's headers are in
            self._disarm()

    def handle_events(self) -> None:
        try:
            super().handle_events()
        except UnicodeDecodeError:  # a request target that is not ASCII: uvicorn does not catch it
            self.send_400_response("Invalid HTTP request received.")

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.close()


def run_server(
    app: Any,
    host: str,
    port: int,
    log_level: str,
    tls: tuple[str, str] | None = None,
    header_timeout: float = 10.0,
    max_connections: int | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve `app` until SIGTERM or Ctrl-C; on `sock` if given (already bound), else on host:port."""
    protocol = type("HeaderDeadline", (HeaderDeadline,), {"header_timeout": header_timeout})
    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            log_level=log_level,
            lifespan="on",
            http=protocol,
            proxy_headers=False,
            # uvicorn counts the connection being answered among the open ones.
            limit_concurrency=max_connections + 1 if max_connections is not None else None,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
    )
    server.run(sockets=[sock] if sock is not None else None)
