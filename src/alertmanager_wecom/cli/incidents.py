"""`incidents list|show`: each alert group's incidents and their timelines (notified, escalated,
acknowledged, silenced, resolved), read from the on-call store the config names (the service may be
running: it writes them there). Times on render.time_zone's clock."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import click

from alertmanager_wecom.cli.common import config_option, load_or_exit, with_oncall_store
from alertmanager_wecom.oncall.store import Incident


def _when(at: float | None, zone: ZoneInfo) -> str:
    return "-" if at is None else dt.datetime.fromtimestamp(at, zone).strftime("%Y-%m-%d %H:%M:%S")


def status_of(incident: Incident) -> str:
    if incident.resolved_at is not None:
        return "resolved"
    if incident.acknowledged_at is not None:
        return f"acknowledged by {incident.acknowledged_by} ({incident.acknowledged_how})"
    if incident.silenced_at is not None:
        return "silenced"
    return "open" + (f", escalating ({incident.policy})" if incident.policy else "")


@click.group()
def incidents() -> None:
    """Incidents: each alert group's firing, and what happened to it."""


@incidents.command("list")
@config_option
@click.option("--open", "open_only", is_flag=True, help="Only incidents not resolved yet.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="How many.")
@click.option("--offset", default=0, type=click.IntRange(0), help="Skip this many of the newest (paging).")
def list_incidents(config_path: str, open_only: bool, limit: int, offset: int) -> None:
    """The newest incidents first: id, start, receiver, status, title."""
    config = load_or_exit(config_path)
    zone = ZoneInfo(config.render.time_zone)
    found = with_oncall_store(
        config, lambda store: store.incidents(limit, open_only=open_only, offset=offset)
    )
    if not found:
        click.echo("no incidents" + (" open" if open_only else "") + (" past that offset" if offset else ""))
    for incident in found:
        click.echo(
            f"{incident.id}  {_when(incident.started_at, zone)}  {incident.receiver:<12} "
            f"{status_of(incident):<36} {incident.title}"
        )


@incidents.command("show")
@config_option
@click.argument("incident_id")
def show(config_path: str, incident_id: str) -> None:
    """INCIDENT_ID's timeline: every event with its time."""
    config = load_or_exit(config_path)
    zone = ZoneInfo(config.render.time_zone)
    incident = with_oncall_store(config, lambda store: store.incident(incident_id[:64]))
    if incident is None:
        raise click.ClickException(f"no incident {incident_id!r} (see: incidents list)")
    click.echo(f"{incident.title}\nreceiver {incident.receiver}, {status_of(incident)}")
    for event in incident.events:
        who = ", ".join(event.who)
        extra = " ".join(part for part in (event.how, event.detail) if part)
        click.echo(f"  {_when(event.at, zone)}  {event.kind:<12} {who}{'  ' + extra if extra else ''}")
