"""Routing inside a receiver: which alerts of a notification go to which target, and to whom.

Targets are tried in order. A target with `match` takes only the alerts its matchers select; one with
`continue: false` keeps the alerts it took from the targets after it (Alertmanager's semantics).
Recipients may be templated from labels (``to_user: ["{{ labels.owner }}"]``): alerts are grouped by
the recipients they resolve to, one job each.  A recipient that renders empty or is not a valid WeCom
id is reported (logged, and the alerts that have no valid recipient left become a dead letter that
says why) — never silently dropped.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

import jinja2

from alertmanager_wecom.config import Config, Target
from alertmanager_wecom.matchers import Matcher, matches_all, parse_matcher
from alertmanager_wecom.outbox import NewJob
from alertmanager_wecom.payload import Alert, Notification, dump_notification

log = logging.getLogger("alertmanager_wecom.routing")

# WeCom ids: userids are 1-64 of letters, digits, _ - . @; party and tag ids are numbers.
_USERID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_NUMERIC_ID = re.compile(r"^[0-9]{1,20}$")
_env = jinja2.Environment(undefined=jinja2.ChainableUndefined, autoescape=False)  # noqa: S701 - ids, not HTML


def target_key(receiver: str, spec: str) -> str:
    return hashlib.sha256(f"{receiver}\n{spec}".encode()).hexdigest()[:24]


def configured_target_keys(config: Config) -> set[str]:
    """The keys of the targets as configured (templated recipients add more keys at run time)."""
    return {target_key(r.name, t.model_dump_json(by_alias=True)) for r in config.receivers for t in r.targets}


@dataclass(frozen=True)
class _Route:
    target: Target
    matchers: list[Matcher]
    templates: dict[str, list[jinja2.Template]]  # field → templates, when recipients are templated
    spec: str  # the target as stored with its jobs (computed once: this is on every webhook's path)
    key: str


def _resolve(
    templates: list[jinja2.Template], alert: Alert, pattern: re.Pattern[str]
) -> tuple[list[str], list[str]]:
    """(valid ids, problems) for one alert."""
    valid: list[str] = []
    problems: list[str] = []
    context = {"labels": alert.labels, "annotations": alert.annotations}
    for template in templates:
        try:
            rendered = template.render(context)
        except jinja2.TemplateError as exc:
            problems.append(f"template error: {exc}")
            continue
        values = [v.strip() for v in re.split(r"[|,]", rendered) if v.strip()]
        if not values:
            problems.append(f"{template.source!r} is empty for this alert")  # type: ignore[attr-defined]
        for value in values:
            (valid if pattern.match(value) else problems).append(
                value if pattern.match(value) else f"{value!r} is not a valid WeCom id"
            )
    return valid, problems


class Router:
    def __init__(self, config: Config) -> None:
        self.routes: dict[str, list[_Route]] = {}
        for receiver in config.receivers:
            routes = []
            for target in receiver.targets:
                templates: dict[str, list[jinja2.Template]] = {}
                if target.templated_recipients:
                    for name in ("to_user", "to_party", "to_tag"):
                        compiled = []
                        for source in getattr(target, name):
                            template = _env.from_string(source)
                            template.source = source  # type: ignore[attr-defined]
                            compiled.append(template)
                        templates[name] = compiled
                spec = target.model_dump_json(by_alias=True)
                routes.append(
                    _Route(
                        target,
                        [parse_matcher(m) for m in target.match],
                        templates,
                        spec,
                        target_key(receiver.name, spec),
                    )
                )
            self.routes[receiver.name] = routes
        # Receivers with a target that matches or templates recipients: their alerts must be looked at.
        self._by_alert = {
            name for name, routes in self.routes.items() if any(r.matchers or r.templates for r in routes)
        }

    def route_whole(self, receiver: str, payload: str | bytes, alert_count: int) -> list[NewJob] | None:
        """The jobs when no target of the receiver looks at alerts (no `match`, no templated
        recipients): each takes the notification as it came. None when alerts must be looked at."""
        if receiver in self._by_alert:
            return None
        jobs: list[NewJob] = []
        if alert_count == 0:
            return jobs
        for route in self.routes[receiver]:
            jobs.append(NewJob(target_key=route.key, target=route.spec, payload=payload))
            if not route.target.continue_:
                break  # it keeps every alert from the targets after it
        return jobs

    def route(self, receiver: str, notification: Notification, payload: str | bytes) -> list[NewJob]:
        jobs: list[NewJob] = []
        taken: set[int] = set()  # alerts kept by a target with continue: false
        alerts = notification.alerts
        for route in self.routes[receiver]:
            if route.matchers or taken:
                selected = [
                    i
                    for i, a in enumerate(alerts)
                    if i not in taken and matches_all(route.matchers, a.labels)
                ]
            else:
                selected = list(range(len(alerts)))
            if not selected:
                continue
            if not route.target.continue_:
                taken.update(selected)
            if not route.templates:
                body = payload if len(selected) == len(alerts) else self._subset(notification, selected)
                jobs.append(NewJob(target_key=route.key, target=route.spec, payload=body))
                continue
            jobs.extend(self._templated(receiver, route, notification, selected))
        return jobs

    def _templated(
        self, receiver: str, route: _Route, notification: Notification, selected: list[int]
    ) -> list[NewJob]:
        groups: dict[tuple[tuple[str, ...], ...], list[int]] = {}
        unreachable: list[int] = []
        problems: list[str] = []
        target = route.target
        for index in selected:
            alert = notification.alerts[index]
            resolved: list[tuple[str, ...]] = []
            for name, pattern in (("to_user", _USERID), ("to_party", _NUMERIC_ID), ("to_tag", _NUMERIC_ID)):
                valid, issues = _resolve(route.templates[name], alert, pattern)
                static = [v for v in getattr(target, name) if "{{" not in v]
                resolved.append(tuple(dict.fromkeys(static + valid)))
                problems.extend(f"{alert.name} {_ident(alert)}: {name} {issue}" for issue in issues)
            if any(resolved):
                groups.setdefault(tuple(resolved), []).append(index)
            else:
                unreachable.append(index)
        for problem in dict.fromkeys(problems):
            log.warning("receiver %s: %s", receiver, problem)
        jobs = []
        for (users, parties, tags), indices in groups.items():
            spec = target.model_copy(
                update={"to_user": list(users), "to_party": list(parties), "to_tag": list(tags), "match": []}
            )
            jobs.append(self._job(receiver, spec, self._subset(notification, indices)))
        if unreachable:
            reason = "; ".join(dict.fromkeys(problems)) or "no recipients"
            spec = target.model_copy(update={"match": []})
            jobs.append(
                self._job(
                    receiver,
                    spec,
                    self._subset(notification, unreachable),
                    dead=f"no valid recipient: {reason}",
                )
            )
        return jobs

    @staticmethod
    def _subset(notification: Notification, indices: list[int]) -> str:
        subset = notification.model_copy(update={"alerts": [notification.alerts[i] for i in indices]})
        return dump_notification(subset)

    @staticmethod
    def _job(receiver: str, target: Target, payload: str, dead: str | None = None) -> NewJob:
        spec = target.model_dump_json(by_alias=True)
        return NewJob(target_key=target_key(receiver, spec), target=spec, payload=payload, dead_reason=dead)


def _ident(alert: Alert) -> str:
    return " ".join(f"{k}={v}" for k, v in alert.labels.items() if k != "alertname")
