"""The service, wired in one place: `create_app` builds the `Relay` (web/relay.py) and its routes:
the webhook (web/webhook.py), the admin endpoints (web/admin.py), health, readiness, metrics and the
domain verification files. `serve`, the sandbox, the tests and the benchmarks all build it here.
"""

from __future__ import annotations

import socket

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from alertmanager_wecom.config import Config
from alertmanager_wecom.outbox import Outbox
from alertmanager_wecom.web.admin import Admin
from alertmanager_wecom.web.auth import TrustedProxies
from alertmanager_wecom.web.callback import Callbacks
from alertmanager_wecom.web.console import Console
from alertmanager_wecom.web.hosts import AllowedHosts, HostPolicy
from alertmanager_wecom.web.incidents import Incidents
from alertmanager_wecom.web.oncall import OncallApi
from alertmanager_wecom.web.relay import Relay, freeze_heap, wecom_client
from alertmanager_wecom.web.serving import run_server
from alertmanager_wecom.web.webhook import WebhookEndpoint

__all__ = ["Relay", "create_app", "freeze_heap", "serve_relay", "wecom_client"]


def create_app(
    config: Config,
    client: httpx.AsyncClient | None = None,
    outbox: Outbox | None = None,
    extra_routes: list[BaseRoute] | None = None,
    config_path: str | None = None,
    listen_host: str | None = None,
) -> Starlette:
    relay = Relay(config, client, outbox, config_path=config_path)
    # The hosts answered: from the server settings and the address listened on (both fixed until a
    # restart, as the listen address is).
    relay.hosts = HostPolicy.for_config(config, listen_host)
    # The verification files' route is last: it catches /<name> only where nothing else matched.
    routes = [
        *relay.routes(),
        Route("/alerts/{receiver}", WebhookEndpoint(relay).handle, methods=["POST"]),
        *(admin := Admin(relay)).routes(),
        *OncallApi(relay, admin).routes(),
        *Console(relay, admin).routes(),
        *Incidents(relay, admin).routes(),
        *Callbacks(relay).routes(),
        *(extra_routes or []),
        Route("/{name}", relay.verify_file, methods=["GET"]),
    ]
    proxies = config.server.trusted_proxies
    # Without trusted proxies the caller is whoever connected: no layer on every request for that.
    # The host check is outermost: a request for a name we do not serve reaches nothing.
    middleware = [Middleware(AllowedHosts, policy=relay.hosts)]
    if proxies:
        middleware.append(Middleware(TrustedProxies, proxies=proxies))
    app = Starlette(routes=routes, lifespan=relay.lifespan, middleware=middleware)
    app.state.relay = relay
    return app


def serve_relay(
    config: Config,
    host: str,
    port: int,
    log_level: str,
    config_path: str | None = None,
    extra_routes: list[BaseRoute] | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Run the service for `config` until SIGTERM or Ctrl-C, with the server settings it names (TLS,
    header timeout, connection cap): what `serve` and the sandbox both start."""
    tls = config.server.tls
    run_server(
        create_app(config, config_path=config_path, extra_routes=extra_routes, listen_host=host),
        host,
        port,
        log_level,
        tls=(tls.cert_path, tls.key_path) if tls else None,
        header_timeout=config.server.header_timeout,
        max_connections=config.server.max_connections,
        sock=sock,
    )
