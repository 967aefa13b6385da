"""The on-call API, behind the admin checks (web/admin.py): who is on call now and next with the four
weeks ahead, and the overrides: listed, added (JSON), removed. Times go out as seconds since 1970 and
as ISO 8601 on the schedule's wall clock; they come in as either (ISO without an offset: an override's
on its schedule's clock, `?at=` on render.time_zone's, one instant for every schedule)."""

from __future__ import annotations

import dataclasses
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

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
from alertmanager_wecom.web.admin import Admin, Endpoint
from alertmanager_wecom.web.answers import error, store_guarded
from alertmanager_wecom.web.relay import Relay

CALENDAR_DAYS = 28
NO_SUCH_ID = "no such override (an id is 12 hex digits)"
USAGE = (
    'send {"schedule": "sre", "user": "lisi", "start": "2026-12-01T09:00+08:00", "end": ...}'
    " (times ISO 8601, without an offset on the schedule's clock, or seconds since 1970)"
)


def _iso(schedule: Schedule | None, at: float) -> str | None:
    return local(schedule, at).isoformat() if schedule is not None else None


def shift_json(schedule: Schedule, shift: Shift | None) -> dict[str, Any] | None:
    if shift is None:
        return None
    return {
        "user": shift.user,
        "start": shift.start,
        "end": shift.end,
        "start_local": _iso(schedule, shift.start),
        "end_local": _iso(schedule, shift.end),
        "override": shift.override,
    }


def override_json(override: Override, schedule: Schedule | None) -> dict[str, Any]:
    return {
        "id": override.id,
        "schedule": override.schedule,
        "user": override.user,
        "start": override.start,
        "end": override.end,
        "start_local": _iso(schedule, override.start),
        "end_local": _iso(schedule, override.end),
        "created_by": override.created_by,
        "created_at": override.created_at,
    }


def outlook_json(view: Outlook) -> dict[str, Any]:
    sched = view.schedule
    return {
        "name": view.name,
        "members": sched.members,
        "rotation": sched.rotation,
        "handoff": sched.handoff,
        "time_zone": sched.time_zone,
        "start": sched.start.isoformat(),
        "now": shift_json(sched, view.now),
        "next": shift_json(sched, view.next),
        "shifts": [shift_json(sched, s) for s in view.shifts],
        "overrides": [override_json(o, sched) for o in view.overrides],
    }


class OncallApi:
    def __init__(self, relay: Relay, admin: Admin) -> None:
        self.relay = relay
        self.admin = admin

    def routes(self) -> list[BaseRoute]:
        def guarded(endpoint: Endpoint, changes: bool, bodiless: bool = False) -> Endpoint:
            return self.admin.guarded(store_guarded(endpoint), changes, bodiless)

        return [
            Route("/api/oncall", guarded(self.schedules, changes=False), methods=["GET"]),
            Route("/api/oncall/overrides", guarded(self.overrides, changes=False), methods=["GET"]),
            Route("/api/oncall/overrides", guarded(self.add, changes=True), methods=["POST"]),
            Route("/api/oncall/overrides/{override_id}", guarded(self.change, changes=True), methods=["PUT"]),
            # A DELETE carries no body: no content type is asked of it (the Origin check stays).
            Route(
                "/api/oncall/overrides/{override_id}",
                guarded(self.remove, changes=True, bodiless=True),
                methods=["DELETE"],
            ),
        ]

    def _store(self) -> OncallStore | Response:
        if self.relay.oncall is None:
            return error(503, "the on-call store is not open (the service is starting or stopping)")
        return self.relay.oncall

    async def schedules(self, request: Request) -> Response:
        """Each schedule: who is on call now (or at ?at=), next, and the shifts of the 28 days after."""
        now = self.relay.clock()
        schedules = self.relay.config.oncall.schedules
        if not schedules:
            return JSONResponse({"at": now, "schedules": []})
        store = self._store()
        if isinstance(store, Response):
            return store
        # One instant for every schedule: a time without an offset is on render.time_zone's clock.
        people = ZoneInfo(self.relay.config.render.time_zone)
        try:
            at = parse_time(request.query_params.get("at", "now"), now, people)
        except OverrideError as exc:
            return error(400, f"at: {exc}")
        views = [
            outlook_json(await outlook(store, name, sched, at, CALENDAR_DAYS))
            for name, sched in sorted(schedules.items())
        ]
        return JSONResponse({"at": at, "schedules": views})

    async def overrides(self, request: Request) -> Response:
        """The overrides in force now or later (?schedule= one schedule's)."""
        schedules = self.relay.config.oncall.schedules
        store = self._store()
        if isinstance(store, Response):
            return store
        name = request.query_params.get("schedule")
        if name is not None:
            try:
                schedule_named(schedules, name)
            except OverrideError as exc:
                return error(404, str(exc))
        found = await self._current(store, name)
        return JSONResponse({"overrides": [override_json(o, schedules.get(o.schedule)) for o in found]})

    async def add(self, request: Request) -> Response:
        """A new override from {schedule, user, start, end}: 201 with it, or 400 with the reason."""
        made = await self._override(request)
        if isinstance(made, Response):
            return made
        store = self._store()
        if isinstance(store, Response):
            return store
        await store.add_override(made)
        return JSONResponse(override_json(made, self.relay.config.oncall.schedules[made.schedule]), 201)

    async def change(self, request: Request) -> Response:
        """The override ID, changed in place to {schedule, user, start, end} (one step: never a moment
        without it, as removing and adding would leave): 200 with it, 404 if there is none, or 400."""
        override_id = request.path_params["override_id"]
        if not valid_id(override_id):
            return error(404, NO_SUCH_ID)
        changed = await self._override(request)
        if isinstance(changed, Response):
            return changed
        store = self._store()
        if isinstance(store, Response):
            return store
        if not any(o.id == override_id for o in await self._current(store, None)):
            return error(404, f"no override {override_id} (or it is over)")
        changed = dataclasses.replace(changed, id=override_id)
        await store.add_override(changed)  # the same id: replaced
        return JSONResponse(override_json(changed, self.relay.config.oncall.schedules[changed.schedule]))

    async def _current(self, store: OncallStore, schedule: str | None) -> list[Override]:
        """The overrides in force now or later (`schedule`'s, or every schedule's)."""
        now = self.relay.clock()
        return await store.overrides(schedule, now, now + 2 * MOST_AHEAD)

    async def _override(self, request: Request) -> Override | Response:
        """The override a request's {schedule, user, start, end} asks for, checked; or the 400."""
        try:
            body = await self.admin.json_body(request)
        except ValueError as exc:
            return error(400, f"{exc}: {USAGE}")
        if not isinstance(body, dict) or not {"schedule", "user", "start", "end"} <= body.keys():
            return error(400, USAGE)
        schedules = self.relay.config.oncall.schedules
        name, user = body["schedule"], body["user"]
        if not isinstance(name, str) or not isinstance(user, str):
            return error(400, f"schedule and user are text: {USAGE}")
        now = self.relay.clock()
        try:
            sched = schedule_named(schedules, name)
            start = parse_time(body["start"], now, zone(sched))
            end = parse_time(body["end"], now, zone(sched))
            # Who made it, for the list: the console says so; anything else is the API.
            via = "console" if body.get("via") == "console" else "api"
            return make_override(schedules, name, user, start, end, now, created_by=via)
        except OverrideError as exc:
            return error(400, str(exc))

    async def remove(self, request: Request) -> Response:
        store = self._store()
        if isinstance(store, Response):
            return store
        override_id = request.path_params["override_id"]
        if not valid_id(override_id):
            return error(404, NO_SUCH_ID)
        if not await store.remove_override(override_id):
            return error(404, f"no override {override_id}")
        return Response(status_code=204)
