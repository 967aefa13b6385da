"""`oncall who|list|override add|list|remove`: the schedules of the config and the overrides in the
on-call store (the service may be running: it reads them from the same store). Times are shown on the
wall clock of each schedule's time zone; a time typed without an offset is read on the clock of the
schedule it is for (`who` without a schedule: on render.time_zone's)."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import click

from alertmanager_wecom.cli.common import config_option, load_or_exit, with_oncall_store
from alertmanager_wecom.config import Config
from alertmanager_wecom.config.oncall import Schedule
from alertmanager_wecom.oncall.outlook import Outlook, outlook
from alertmanager_wecom.oncall.overrides import (
    MOST_AHEAD,
    OverrideError,
    make_override,
    parse_time,
    schedule_named,
    valid_id,
)
from alertmanager_wecom.oncall.schedule import Shift, local, zone
from alertmanager_wecom.oncall.store import OncallStore, Override

USAGE = 2  # a wrong name or time: the exit code of click's usage errors


class InputError(click.ClickException):
    exit_code = USAGE


def _config(path: str) -> Config:
    config = load_or_exit(path)
    if not config.oncall.schedules:
        raise InputError("the config has no schedules (oncall.schedules)")
    return config


def _schedule(config: Config, name: str) -> Schedule:
    try:
        return schedule_named(config.oncall.schedules, name)
    except OverrideError as exc:
        raise InputError(str(exc)) from None


def _time(value: str, schedule: Schedule, now: float) -> float:
    try:
        return parse_time(value, now, zone(schedule))
    except OverrideError as exc:
        raise InputError(str(exc)) from None


def when(schedule: Schedule, at: float) -> str:
    return local(schedule, at).strftime("%Y-%m-%d %H:%M %Z")


def span(schedule: Schedule, shift: Shift) -> str:
    start, end = local(schedule, shift.start), local(schedule, shift.end)
    until = end.strftime("%H:%M %Z" if end.date() == start.date() else "%Y-%m-%d %H:%M %Z")
    why = f"  (override {shift.override})" if shift.override else ""
    return f"{start:%Y-%m-%d %H:%M} → {until}{why}"


def _shift(override: Override) -> Shift:
    return Shift(override.user, override.start, override.end)


def _who_lines(view: Outlook) -> list[str]:
    sched = view.schedule
    lines = [f"{view.name} ({sched.rotation}, hand-off {sched.handoff} {sched.time_zone})"]
    for label, shift in (("now ", view.now), ("next", view.next)):
        lines.append(f"  {label}  " + (f"{shift.user:<16} {span(sched, shift)}" if shift else "nobody"))
    return lines


@click.group()
def oncall() -> None:
    """On-call schedules: who is on call, the rotation, overrides."""


@oncall.command("who")
@config_option
@click.argument("schedule", required=False)
@click.option("--at", "at_text", default="now", show_default=True, help="ISO 8601 time, or now.")
def who(config_path: str, schedule: str | None, at_text: str) -> None:
    """Who is on call now (or --at TIME) and next, for SCHEDULE or every schedule."""
    config = _config(config_path)
    names = [schedule] if schedule else sorted(config.oncall.schedules)
    chosen = [(name, _schedule(config, name)) for name in names]
    # One instant for all: a time without an offset is on the clock of the schedule named, else on
    # render.time_zone's (the config's zone for people).
    people = zone(chosen[0][1]) if schedule else ZoneInfo(config.render.time_zone)
    try:
        at = parse_time(at_text, time.time(), people)
    except OverrideError as exc:
        raise InputError(str(exc)) from None

    async def work(store: OncallStore) -> list[Outlook]:
        return [await outlook(store, name, sched, at, days=0) for name, sched in chosen]

    for view in with_oncall_store(config, work):
        click.echo("\n".join(_who_lines(view)))


@oncall.command("list")
@config_option
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 28), help="Shifts ahead.")
def list_schedules(config_path: str, days: int) -> None:
    """Every schedule: members, rotation, and the shifts of the next days (overrides included)."""
    config = _config(config_path)
    now = time.time()

    async def work(store: OncallStore) -> list[Outlook]:
        return [await outlook(store, n, s, now, days) for n, s in sorted(config.oncall.schedules.items())]

    for view in with_oncall_store(config, work):
        sched = view.schedule
        click.echo(f"{view.name}: {', '.join(sched.members)}")
        click.echo(
            f"  rotation {sched.rotation}, hand-off {sched.handoff} {sched.time_zone}, from {sched.start}"
        )
        for shift in view.shifts:
            click.echo(f"  {shift.user:<16} {span(sched, shift)}")
        if not view.shifts:
            click.echo("  nobody on call in the next days (the rotation has not begun)")


@oncall.group("override")
def override() -> None:
    """Someone covers a schedule for a while: add, list, remove."""


@override.command("add")
@config_option
@click.argument("schedule")
@click.argument("user")
@click.option("--from", "start_text", required=True, help="ISO 8601 time, or now.")
@click.option("--to", "end_text", required=True, help="ISO 8601 time (at most 90 days after --from).")
def override_add(config_path: str, schedule: str, user: str, start_text: str, end_text: str) -> None:
    """USER is on call for SCHEDULE from --from to --to (instead of the rotation)."""
    config = _config(config_path)
    sched = _schedule(config, schedule)
    now = time.time()
    start, end = _time(start_text, sched, now), _time(end_text, sched, now)
    try:
        made = make_override(config.oncall.schedules, schedule, user, start, end, now, created_by="cli")
    except OverrideError as exc:
        raise InputError(str(exc)) from None
    with_oncall_store(config, lambda store: store.add_override(made))
    click.echo(f"added override {made.id}: {user} on call for {schedule} {span(sched, _shift(made))}")


@override.command("list")
@config_option
@click.argument("schedule", required=False)
def override_list(config_path: str, schedule: str | None) -> None:
    """The overrides in force now or later (of SCHEDULE, or of every schedule)."""
    config = _config(config_path)
    if schedule is not None:
        _schedule(config, schedule)
    now = time.time()
    found = with_oncall_store(config, lambda store: store.overrides(schedule, now, now + 2 * MOST_AHEAD))
    if not found:
        click.echo("no overrides now or later")
    for item in found:
        sched = config.oncall.schedules.get(item.schedule)
        shown = (
            span(sched, _shift(item)) if sched else f"{item.start:.0f} → {item.end:.0f} (no such schedule)"
        )
        made = dt.datetime.fromtimestamp(item.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        by = f" by {item.created_by}" if item.created_by else ""
        click.echo(f"{item.id}  {item.schedule:<12} {item.user:<16} {shown}  (made {made}{by})")


@override.command("remove")
@config_option
@click.argument("override_id")
def override_remove(config_path: str, override_id: str) -> None:
    """Remove the override OVERRIDE_ID (the rotation applies again)."""
    if not valid_id(override_id):
        raise InputError(
            f"{override_id[:40]!r} is not an override id (12 hex digits: see oncall override list)"
        )
    config = _config(config_path)
    if not with_oncall_store(config, lambda store: store.remove_override(override_id)):
        raise click.ClickException(f"no override {override_id}")
    click.echo(f"removed override {override_id}")
