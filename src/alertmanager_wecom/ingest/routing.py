"""Routing inside a receiver: which alerts of a notification go to which target, and to whom.

Targets are tried in order. A target with `match` takes only the alerts its matchers select; one with
`continue: false` keeps the alerts it took from the targets after it (Alertmanager's semantics).
Recipients may be templated from labels (``to_user: ["{{ labels.owner }}"]``): alerts are grouped by
the recipients they resolve to, one job each.  Each template must render exactly one valid WeCom id
(recipients.py: never ``@all``, never a list), and one notification may name at most the target's
``max_recipients`` distinct people.  What is refused is logged once per notification; the alerts left
with no valid recipient go to the target's ``fallback`` recipients, or else become a dead letter that
says why — never silently dropped.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import jinja2

from alertmanager_wecom.config import AppTarget, Config, Target, target_spec
from alertmanager_wecom.config.contacts import form_of
from alertmanager_wecom.ingest.matchers import Matcher, matches_all, parse_matcher
from alertmanager_wecom.ingest.payload import Alert, Notification, dump_notification
from alertmanager_wecom.ingest.recipients import (
    Budget,
    RecipientField,
    bare,
    refusal,
    summarize,
    written_form,
)
from alertmanager_wecom.outbox import NewJob
from alertmanager_wecom.template_sandbox import Bounds, SandboxedTemplates, bounded_render

log = logging.getLogger(__name__)

_FIELDS: tuple[RecipientField, ...] = ("to_user", "to_party", "to_tag")
# Sandboxed and bounded like every template: a recipient template is the config's code (template_sandbox.py).
_env = SandboxedTemplates(undefined=jinja2.ChainableUndefined, autoescape=False)
_RECIPIENT_BOUNDS = Bounds(seconds=0.5, chars=4096)  # one id is at most 64 bytes


def target_key(receiver: str, spec: str) -> str:
    return hashlib.sha256(f"{receiver}\n{spec}".encode()).hexdigest()[:24]


def configured_target_keys(config: Config) -> set[str]:
    """The keys of the targets as configured (templated recipients add more keys at run time)."""
    return {target_key(r.name, target_spec(t)) for r in config.receivers for t in r.targets}


@dataclass(frozen=True)
class _TargetRouting:
    target: Target
    matchers: list[Matcher]
    templates: dict[str, list[jinja2.Template]]  # field → templates, when recipients are templated
    spec: str  # the target as stored with its jobs (computed once: this is on every webhook's path)
    key: str


def _resolve(
    templates: list[jinja2.Template], alert: Alert, field: RecipientField, budget: Budget
) -> tuple[list[str], list[str], int]:
    """(valid ids, problems, how many of the problems are only an empty value) for one alert: each
    template gives one id, or a problem."""
    valid: list[str] = []
    problems: list[str] = []
    missing: list[bool] = []  # one per problem that is only an empty value (a label the alert lacks)
    context = {"labels": alert.labels, "annotations": alert.annotations}
    for template in templates:
        try:
            value = bounded_render(template, context, _RECIPIENT_BOUNDS).strip()
        except Exception as exc:  # a template error on hostile data refuses the value, nothing more
            problems.append(f"{field} {template.source!r}: {type(exc).__name__}")  # type: ignore[attr-defined]
            continue
        lookup = written_form(template.source) if field == "to_user" else None  # type: ignore[attr-defined]
        why = refusal(field, value, lookup)
        if not bare(value, lookup):
            problems.append(f"{field} {template.source!r} {why}")  # type: ignore[attr-defined]
            missing.append(True)
        elif why is not None:
            problems.append(f"{field} {template.source!r} {why}")  # type: ignore[attr-defined]
        elif not budget.admit(value):
            problems.append(
                f"{field} {value!r}: more than {budget.limit} distinct recipients from alert data in one "
                "notification (target max_recipients)"
            )
        else:
            valid.append(value)
    return valid, problems, len(missing)


def recipient_template_problems(config: Config) -> list[str]:
    """Recipient templates that do not compile, or that the sandbox refuses on a sample alert: found
    at load, with the reason, not on the first alert (where they would only refuse its recipient)."""
    sample = {"labels": {"alertname": "NodeDown", "owner": "zhangsan"}, "annotations": {"summary": "x"}}
    problems = []
    for i, receiver in enumerate(config.receivers):
        for j, target in enumerate(receiver.targets):
            for name in ("to_user", "to_party", "to_tag"):
                for k, source in enumerate(getattr(target, name, ())):
                    if "{{" not in source and "{%" not in source:
                        continue
                    try:
                        bounded_render(_env.from_string(source), sample, _RECIPIENT_BOUNDS)
                    except jinja2.TemplateError as exc:
                        where = f"receivers[{i}].targets[{j}].{name}[{k}]"
                        problems.append(f"{where}: {type(exc).__name__}: {exc.message or exc}")
    return problems


class Router:
    def __init__(self, config: Config) -> None:
        self.routes: dict[str, list[_TargetRouting]] = {}
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
                spec = target_spec(target)
                routes.append(
                    _TargetRouting(
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
            jobs.append(NewJob(target_key=route.key, target_spec=route.spec, payload=payload))
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
                jobs.append(NewJob(target_key=route.key, target_spec=route.spec, payload=body))
                continue
            jobs.extend(self._templated(receiver, route, notification, selected))
        return jobs

    def _templated(
        self, receiver: str, route: _TargetRouting, notification: Notification, selected: list[int]
    ) -> list[NewJob]:
        groups: dict[tuple[tuple[str, ...], ...], list[int]] = {}
        unreachable: list[int] = []
        problems: list[str] = []
        target = route.target
        assert isinstance(target, AppTarget)  # only an app's targets have templated recipients
        budget = Budget(target.max_recipients)
        refused = 0  # values that were there but invalid (not merely a missing label)
        static = [[v for v in getattr(target, name) if "{{" not in v] for name in _FIELDS]
        for index in selected:
            alert = notification.alerts[index]
            resolved: list[tuple[str, ...]] = []
            for name, fixed in zip(_FIELDS, static, strict=True):
                valid, issues, empty = _resolve(route.templates[name], alert, name, budget)
                resolved.append(tuple(dict.fromkeys(fixed + valid)))
                problems.extend(issues)
                refused += len(issues) - empty
            if any(resolved):
                groups.setdefault(tuple(resolved), []).append(index)
            else:
                unreachable.append(index)
        reason = summarize(problems)
        if problems:
            # One line per notification, whatever the number of alerts: the values are quoted (repr), so
            # a label cannot forge a log line either. Alerts that merely lack the label and go to the
            # fallback are routine: info, not a warning on every notification.
            quiet = refused == 0 and target.fallback is not None
            log.log(
                logging.INFO if quiet else logging.WARNING,
                "receiver %s: recipients from alert data refused (%d of %d alerts have no valid one%s): %s",
                receiver,
                len(unreachable),
                len(selected),
                ", sent to the fallback" if unreachable and target.fallback else "",
                reason,
            )
        jobs = []
        for (users, parties, tags), indices in groups.items():
            # Recipients looked up at send time keep the fallback: a look-up may find nobody.
            looked_up = any(form_of(u) for u in users)
            spec = target.model_copy(
                update={
                    "to_user": list(users),
                    "to_party": list(parties),
                    "to_tag": list(tags),
                    "match": [],
                    "fallback": target.fallback if looked_up else None,
                }
            )
            jobs.append(self._job(receiver, spec, self._subset(notification, indices)))
        if unreachable and target.fallback is not None:
            fallback = target.fallback
            spec = target.model_copy(
                update={
                    "to_user": fallback.to_user,
                    "to_party": fallback.to_party,
                    "to_tag": fallback.to_tag,
                    "match": [],
                    "fallback": None,
                }
            )
            jobs.append(self._job(receiver, spec, self._subset(notification, unreachable)))
        elif unreachable:
            spec = target.model_copy(update={"match": []})
            jobs.append(
                self._job(
                    receiver,
                    spec,
                    self._subset(notification, unreachable),
                    dead=f"no valid recipient: {reason or 'no recipients'}",
                )
            )
        return jobs

    @staticmethod
    def _subset(notification: Notification, indices: list[int]) -> str:
        subset = notification.model_copy(update={"alerts": [notification.alerts[i] for i in indices]})
        return dump_notification(subset)

    @staticmethod
    def _job(receiver: str, target: Target, payload: str, dead: str | None = None) -> NewJob:
        spec = target_spec(target)
        return NewJob(
            target_key=target_key(receiver, spec), target_spec=spec, payload=payload, dead_reason=dead
        )
