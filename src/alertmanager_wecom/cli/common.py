"""What several commands share: loading the config with a one-line error, HOST:PORT, text arguments,
the on-call store the running service uses."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from alertmanager_wecom.config import Config, ConfigError
from alertmanager_wecom.loading import load_config

if TYPE_CHECKING:
    from alertmanager_wecom.oncall.store import OncallStore

T = TypeVar("T")

config_option = click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="YAML config file."
)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r}: use HOST:PORT, e.g. 127.0.0.1:9095 or 0.0.0.0:9095")
    return host.strip("[]") or "0.0.0.0", int(port)


def load_or_exit(path: str) -> Config:
    if not Path(path).exists():
        raise click.ClickException(
            f"config file {path} does not exist (serve without --config runs the sandbox, with a simulated WeCom)"
        )
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(f"config {path} is invalid:\n{exc}") from None


def exit_on_storage_problem(config: Config, create: bool) -> None:
    """Stop with one line naming storage.path and the fix if the outbox cannot be opened read-write."""
    from alertmanager_wecom.outbox.sqlite import storage_problem

    if config.storage.backend != "sqlite":
        return  # Redis: an outage is a 503 and a readiness failure, not a reason not to start
    problem = storage_problem(config.storage.path, create=create)
    if problem is not None:
        raise click.ClickException(problem)


def read_text(text: str | None) -> str:
    if text is None or text == "-":
        return sys.stdin.read()
    return text


def with_oncall_store(config: Config, work: Callable[[OncallStore], Awaitable[T]]) -> T:
    """`work` run on the on-call store the config names (the running service's: the same file or
    Redis), closed afterwards."""
    from alertmanager_wecom.oncall.opening import open_oncall_store

    async def run() -> T:
        store = open_oncall_store(config.storage)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())
