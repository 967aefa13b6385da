"""`serve`: the service from a config file, or the sandbox (the service and a simulated WeCom) without one."""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile

import click
from starlette.routing import BaseRoute, Mount

from alertmanager_wecom.cli.common import exit_on_storage_problem, load_or_exit, parse_listen
from alertmanager_wecom.web.auth import is_loopback

log = logging.getLogger("alertmanager_wecom")


@click.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="YAML config; omit for sandbox mode."
)
@click.option("--listen", help="HOST:PORT to listen on (default: server.listen, 127.0.0.1:9095).")
def serve(config_path: str | None, listen: str | None) -> None:
    """Run the relay. Without --config: sandbox mode, with the WeCom simulator in the same process."""
    from alertmanager_wecom.web.app import serve_relay
    from alertmanager_wecom.web.hosts import HostPolicy

    level = logging.getLevelName(logging.getLogger().level).lower()
    if config_path is None:
        _sandbox(listen, level)
        return
    config = load_or_exit(config_path)
    host, port = parse_listen(listen or config.server.listen)
    unprotected = [r.name for r in config.receivers if config.auth_for(r) is None]
    if unprotected and not is_loopback(host) and not config.server.allow_unauthenticated:
        raise click.ClickException(
            f"refusing to listen on {host}:{port} with no inbound auth for receivers {', '.join(unprotected)}: "
            "set server.auth (bearer_token or basic_auth, as in Alertmanager's http_config) or receiver auth, "
            "or server.allow_unauthenticated: true if a network policy protects the port"
        )
    exit_on_storage_problem(config, create=True)
    log.info(
        "listening on %s://%s:%d; receivers: %s",
        "https" if config.server.tls else "http",
        host,
        port,
        ", ".join(f"/alerts/{r.name}" for r in config.receivers) or "none",
    )
    log.info(
        "answering for hosts: %s (server.allowed_hosts; others get 421)", HostPolicy.for_config(config, host)
    )
    serve_relay(config, host, port, level, config_path=config_path)


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _sandbox(listen: str | None, level: str) -> None:
    """Sandbox mode: no auth and a simulated WeCom, so loopback only; announced with the real address."""
    from alertmanager_wecom.sandbox import DEMO_RECEIVER, SIMULATOR_PREFIX, sandbox_callbacks, sandbox_config
    from alertmanager_wecom.simulator import create_simulator_app, sandbox_settings
    from alertmanager_wecom.web.app import serve_relay

    host, port = parse_listen(listen or "127.0.0.1:9095")
    if not is_loopback(host):
        raise click.ClickException(
            f"sandbox mode listens on this host only (127.0.0.1, ::1 or localhost), not {host}: it has no"
            " authentication and its WeCom is simulated. To serve other hosts, write a config"
            " (see README, Configure) and run `alertmanager-wecom serve --config FILE`"
        )
    sock = _bind(host, port)
    port = int(sock.getsockname()[1])  # port 0: the one the system chose
    data_dir = tempfile.mkdtemp(prefix="alertmanager-wecom-sandbox-")
    try:
        config = sandbox_config(host, port, data_dir)
        shown = f"[{host}]" if ":" in host else host
        base = f"http://{shown}:{port}"
        simulator = create_simulator_app(sandbox_settings(), sandbox_callbacks(host, port))
        extra: list[BaseRoute] = [Mount(SIMULATOR_PREFIX, app=simulator)]
        click.echo(
            "Sandbox mode: no --config given, so WeCom is simulated in this process.\n"
            f"  webhook for Alertmanager: {base}/alerts/{DEMO_RECEIVER}\n"
            f"  what people would see:    {base}{SIMULATOR_PREFIX}/inbox\n"
            f"  the operators' console:   {base}/ui\n"
            f"  send sample alerts:       alertmanager-wecom demo --url {base}\n"
        )
        serve_relay(config, host, port, level, extra_routes=extra, sock=sock)
    finally:
        sock.close()
        shutil.rmtree(data_dir, ignore_errors=True)
