"""`outbox list|show|retry|purge`: the outbox on disk, for operators (the service may be running)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import click

from alertmanager_wecom.cli.common import load_or_exit


def _open_outbox(config_path: str | None, db: str | None) -> Any:
    from alertmanager_wecom.outbox import SQLiteOutbox

    if db is None:
        if config_path is None:
            raise click.ClickException("give --config FILE (its storage.path) or --db PATH")
        config = load_or_exit(config_path)
        if config.storage.backend == "redis":
            from alertmanager_wecom.outbox.opening import open_outbox

            return open_outbox(config.storage)
        db = config.storage.path
    if not Path(db).exists():
        raise click.ClickException(f"no outbox at {db}")
    return SQLiteOutbox(db)


_outbox_options = [
    click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), help="Config (for storage.path)."
    ),
    click.option("--db", type=click.Path(dir_okay=False), help="Outbox file (instead of --config)."),
]


def _with_outbox_options(fn: Any) -> Any:
    for option in reversed(_outbox_options):
        fn = option(fn)
    return fn


@click.group()
def outbox() -> None:
    """Inspect and repair the outbox: list, show, retry, purge."""


@outbox.command("list")
@_with_outbox_options
@click.option("--state", type=click.Choice(["pending", "done", "dead", "merged"]), help="Only this state.")
@click.option("--limit", default=50, show_default=True)
def outbox_list(config_path: str | None, db: str | None, state: str | None, limit: int) -> None:
    """Jobs, newest first (one per notification and target)."""
    from alertmanager_wecom.outbox import JobState

    async def run() -> None:
        store = _open_outbox(config_path, db)
        try:
            stats = await store.stats(time.time())
            jobs = await store.list_jobs(JobState(state) if state else None, limit)
        finally:
            await store.close()
        click.echo(f"pending {stats.pending} (oldest {stats.oldest_pending_age:.0f}s), dead {stats.dead}")
        from alertmanager_wecom.delivery.job_description import describe_job

        for job in jobs:
            click.echo(describe_job(job).line())

    asyncio.run(run())


@outbox.command("show")
@_with_outbox_options
@click.argument("job_id", type=int)
def outbox_show(config_path: str | None, db: str | None, job_id: int) -> None:
    """One job with its notification."""

    async def run() -> None:
        store = _open_outbox(config_path, db)
        try:
            job = await store.get_job(job_id)
        finally:
            await store.close()
        if job is None:
            raise click.ClickException(f"no job {job_id}")
        from alertmanager_wecom.delivery.job_description import describe_job

        click.echo(describe_job(job).line())
        click.echo(json.dumps(json.loads(job.payload), ensure_ascii=False, indent=2))

    asyncio.run(run())


@outbox.command("retry")
@_with_outbox_options
@click.argument("job_ids", type=int, nargs=-1)
@click.option("--all-dead", is_flag=True, help="Requeue every dead letter.")
def outbox_retry(config_path: str | None, db: str | None, job_ids: tuple[int, ...], all_dead: bool) -> None:
    """Requeue dead letters (after fixing the cause): JOB_IDS, or --all-dead."""
    if not job_ids and not all_dead:
        raise click.ClickException("give JOB_IDS or --all-dead")

    async def run() -> int:
        store = _open_outbox(config_path, db)
        try:
            return int(await store.requeue(None if all_dead else list(job_ids), time.time()))
        finally:
            await store.close()

    click.echo(f"requeued {asyncio.run(run())} job(s); a running service picks them up within a second")


@outbox.command("purge")
@_with_outbox_options
@click.option(
    "--state",
    "states",
    multiple=True,
    default=["done", "merged"],
    show_default=True,
    type=click.Choice(["done", "dead", "merged"]),
)
@click.option("--older-than", default="0s", show_default=True, help="Age, e.g. 7d, 24h.")
def outbox_purge(config_path: str | None, db: str | None, states: tuple[str, ...], older_than: str) -> None:
    """Delete finished jobs (never pending ones)."""
    from alertmanager_wecom.config import parse_duration
    from alertmanager_wecom.outbox import JobState

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> int:
        store = _open_outbox(config_path, db)
        try:
            return int(await store.purge([JobState(s) for s in states], time.time() - age))
        finally:
            await store.close()

    click.echo(f"purged {asyncio.run(run())} job(s)")
