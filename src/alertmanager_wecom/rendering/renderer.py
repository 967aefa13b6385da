"""Notification → WeCom messages that fit: templates, then packing alerts into byte-limited parts.

A notification that does not fit one message is split on alert boundaries into parts labelled
``(1/3)``.  Alerts are shown in full while the parts stay within the cap of messages per
notification; otherwise in a compact form (name and identifying labels); past the cap, the last
part says how many alerts were left out.  A final hard cut on a UTF-8 boundary guarantees that no
message is ever over WeCom's limit, whatever a user template does.
"""

from __future__ import annotations

import copy
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import jinja2

from alertmanager_wecom.ingest.payload import Alert, Notification
from alertmanager_wecom.rendering import fit
from alertmanager_wecom.rendering.escaping import (
    Safe,
    annotation_text,
    finalizer,
    label_text,
    safe_url,
    trusted_markdown,
)
from alertmanager_wecom.rendering.message import Message

if TYPE_CHECKING:
    from alertmanager_wecom.config import Config, Target

_STRINGS: dict[str, dict[str, str]] = {
    "zh": {
        "title_firing": "【告警】",
        "title_resolved": "【已恢复】",
        "title_digest": "【告警汇总】",
        "digest_note": "合并了 %d 条通知（告警频率超过企业微信限制）",
        "firing": "🔥 触发中",
        "resolved": "✅ 已恢复",
        "started": "开始",
        "lasted": "持续",
        "graph": "图表",
        "runbook": "手册",
        "omitted": "另有 %d 条告警未显示，请在 Alertmanager 查看",
        "details": "详情",
        "d": "天",
        "h": "小时",
        "m": "分",
        "s": "秒",
    },
    "en": {
        "title_firing": "[FIRING] ",
        "title_resolved": "[RESOLVED] ",
        "title_digest": "[DIGEST] ",
        "digest_note": "%d notifications merged (more than WeCom's rate limit lets through)",
        "firing": "Firing",
        "resolved": "Resolved",
        "started": "since",
        "lasted": "lasted",
        "graph": "graph",
        "runbook": "runbook",
        "omitted": "%d more alerts not shown: see Alertmanager",
        "details": "More",
        "d": "d",
        "h": "h",
        "m": "m",
        "s": "s",
    },
}
# Our own words are printed as they are (some are markup in some formats: "[FIRING] " is not a link).
STRINGS: dict[str, dict[str, str]] = {
    language: {key: Safe(text) for key, text in strings.items()} for language, strings in _STRINGS.items()
}
# Shown in the heading rather than per alert; never "identifying".
_NOT_IDENTIFYING = frozenset({"alertname", "severity"})
_SEVERITY_RANK = {
    "critical": 0,
    "page": 0,
    "p0": 0,
    "high": 1,
    "error": 1,
    "p1": 1,
    "warning": 2,
    "warn": 2,
    "p2": 2,
    "medium": 2,
    "info": 3,
    "low": 3,
    "none": 4,
}
_PLACEHOLDER_PARTS = 99  # the widest part label "(99/99)" is used while measuring


class TemplateError(Exception):
    """A template cannot be compiled or rendered; the message names the file and line."""


def _raw(value: object) -> Safe:
    """``{{ value | raw }}``: print as markup. Only for text the operator trusts, never alert data."""
    return Safe(str(value))


def _environment(msgtype: str, loader: jinja2.BaseLoader | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        # Not HTML escaping: each value is made inert for the WeCom format it lands in (escaping.py).
        autoescape=False,  # noqa: S701
        finalize=finalizer(msgtype),
    )
    env.filters["raw"] = _raw
    return env


_builtin_envs = {
    msgtype: _environment(msgtype, jinja2.PackageLoader("alertmanager_wecom.rendering", "templates"))
    for msgtype in ("text", "markdown", "markdown_v2", "textcard")
}


@dataclass(frozen=True)
class Templates:
    content: jinja2.Template
    title: jinja2.Template | None  # textcard only


def _line_of(exc: BaseException, filename: str) -> int | None:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return exc.lineno
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _compile(source: str, filename: str, msgtype: str) -> jinja2.Template:
    # A loader that knows the file name makes Jinja put it in tracebacks, so errors carry the line.
    env = _environment(msgtype, jinja2.FunctionLoader(lambda name: (source, filename, lambda: True)))
    try:
        return env.get_template(filename)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{filename}:{exc.lineno}: {exc.message}") from None


def load_templates(target: Target, config: Config) -> Templates:
    if target.template:
        path = Path(target.template)
        if not path.is_absolute():
            path = config.base_dir / path
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"{path}: cannot read template: {exc.strerror}") from None
        content = _compile(source, str(path), target.msgtype)
    else:
        content = _builtin_envs[target.msgtype].get_template(f"{target.msgtype}.j2")
    title: jinja2.Template | None = None
    if target.msgtype == "textcard":
        if target.title_template:
            title = _compile(target.title_template, "title_template", "textcard")
        else:
            title = _builtin_envs["textcard"].get_template("textcard_title.j2")
    return Templates(content, title)


def builtin_templates(msgtype: str) -> Templates:
    """The templates shipped with the package: the fallback when a user template fails on an alert."""
    env = _builtin_envs[msgtype]
    title = env.get_template("textcard_title.j2") if msgtype == "textcard" else None
    return Templates(env.get_template(f"{msgtype}.j2"), title)


def compile_target_templates(config: Config) -> None:
    """Compile every user template and render it once against a sample, so that syntax errors and
    undefined names are reported when the config is loaded, not when the first alert arrives."""
    from alertmanager_wecom.config import ConfigError

    sample = sample_notification()
    problems: list[str] = []
    for i, receiver in enumerate(config.receivers):
        for j, target in enumerate(receiver.targets):
            if not (target.template or target.title_template):
                continue
            where = f"receivers[{i}].targets[{j}].template"
            try:
                # Kept on the config: the renderer uses what was checked here, not the file as it is later.
                config.kept_templates.by_key.setdefault(target.template_key(), load_templates(target, config))
                Renderer.for_target(target, config).render(sample)
            except TemplateError as exc:
                problems.append(f"{where}: {exc}")
    if problems:
        raise ConfigError("\n".join(problems))


def sample_notification() -> Notification:
    alerts = [
        {
            "status": status,
            "labels": {
                "alertname": "NodeDown",
                "severity": "critical",
                "instance": f"10.0.0.{i}:9100",
                "job": "node",
            },
            "annotations": {
                "summary": f"节点 10.0.0.{i} 宕机",
                "description": "unreachable for 2 minutes",
                "runbook_url": "https://runbooks.example.com/NodeDown",
            },
            "startsAt": "2026-11-28T09:02:09Z",
            "endsAt": "2026-11-28T09:12:09Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
            "fingerprint": f"{i:016x}",
        }
        for i, status in enumerate(["firing", "firing", "resolved"])
    ]
    return Notification.model_validate(
        {
            "version": "4",
            "groupKey": '{}:{alertname="NodeDown"}',
            "receiver": "sample",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": {"alertname": "NodeDown"},
            "commonLabels": {"alertname": "NodeDown", "severity": "critical", "job": "node"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
        }
    )


def format_duration(seconds: float, strings: dict[str, str]) -> str:
    seconds = max(0, int(seconds))
    units = [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)]
    parts: list[str] = []
    for key, size in units:
        if seconds >= size or (key == "s" and not parts):
            parts.append(f"{seconds // size}{strings[key]}")
            seconds %= size
        if len(parts) == 2:
            break
    return "".join(parts)


def _severity_rank(alert: Alert) -> int:
    return _SEVERITY_RANK.get(alert.labels.get("severity", "").lower(), 3)


@dataclass(frozen=True)
class AlertView:
    """What a template sees of one alert (times already in the configured zone)."""

    name: str
    status: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    identifying: dict[str, str]
    ident: str
    summary: str
    description: str
    starts: str
    starts_short: str
    ends: str
    duration: str
    generator_url: str
    runbook_url: str
    silence_url: str
    dashboard_url: str
    fingerprint: str


@dataclass(frozen=True)
class AlertGroup:
    """Alerts of one name, for compact lines: ``NodeDown critical ×3 instance: a, b, c``."""

    name: str
    severity: str
    count: int
    key: str  # the one identifying label all of them have, or "" (then items are full "k=v" lists)
    items: list[str]


class _LazyViews:
    """The alerts' views, each made when first needed: a storm's digest shows a few thousand of its
    alerts and only counts the rest, which then never pay for their labels and times being formatted."""

    def __init__(self, alerts: list[Alert], make: Callable[[Alert], AlertView]) -> None:
        self._alerts = alerts
        self._make = make
        self._views: list[AlertView | None] = [None] * len(alerts)

    def __len__(self) -> int:
        return len(self._alerts)

    def __getitem__(self, span: slice) -> list[AlertView]:
        out = []
        for index in range(*span.indices(len(self._alerts))):
            view = self._views[index]
            if view is None:
                view = self._views[index] = self._make(self._alerts[index])
            out.append(view)
        return out


def _groups(views: Sequence[AlertView]) -> list[AlertGroup]:
    groups: dict[str, list[AlertView]] = {}
    for view in views:
        groups.setdefault(view.name, []).append(view)
    out = []
    for name, members in groups.items():
        keys = {tuple(v.identifying) for v in members}
        only = next(iter(keys))
        key = only[0] if len(keys) == 1 and len(only) == 1 else ""
        items = [v.identifying[key] if key else (v.ident or "-") for v in members]
        severities = list(dict.fromkeys(v.severity for v in members if v.severity))
        out.append(AlertGroup(name, "/".join(severities), len(members), key, items))
    return out


class Renderer:
    """Renders notifications for one target: its msgtype, templates, language and time zone."""

    def __init__(
        self,
        msgtype: str,
        templates: Templates,
        language: str,
        time_zone: str,
        max_messages: int,
        alertmanager_url: str | None = None,
        limit: int | None = None,
        markdown_annotations: frozenset[str] = frozenset(),
    ) -> None:
        self.msgtype = msgtype
        self.templates = templates
        self.strings = STRINGS[language]
        self.language = language
        self.zone = ZoneInfo(time_zone)
        self.max_messages = max_messages
        self.alertmanager_url = alertmanager_url
        self.limit = limit or fit.CONTENT_LIMITS.get(msgtype, fit.TEXTCARD_DESCRIPTION_LIMIT)
        # Annotations the operator trusts as markdown (runbook links): only where markdown is rendered.
        self.markdown_annotations = (
            markdown_annotations if msgtype in ("markdown", "markdown_v2") else frozenset()
        )

    @classmethod
    def for_target(cls, target: Target, config: Config) -> Renderer:
        render = config.render
        kept = config.kept_templates.by_key.get(target.template_key())
        return cls(
            msgtype=target.msgtype,
            templates=kept if isinstance(kept, Templates) else load_templates(target, config),
            language=target.language or render.language,
            time_zone=target.time_zone or render.time_zone,
            max_messages=target.max_messages or render.max_messages,
            alertmanager_url=render.alertmanager_url,
            limit=fit.content_limit(target.msgtype, robot=target.robot is not None),
            markdown_annotations=frozenset(render.markdown_annotations),
        )

    @property
    def custom_templates(self) -> bool:
        return self.templates != builtin_templates(self.msgtype)

    def with_builtin_templates(self) -> Renderer:
        """The same renderer with the package's templates (when a user template fails on an alert)."""
        clone = copy.copy(self)
        clone.templates = builtin_templates(self.msgtype)
        return clone

    # -- public -------------------------------------------------------------------------------------

    def render(
        self,
        notification: Notification,
        max_messages: int | None = None,
        mentions: tuple[list[str], list[str]] = ([], []),
    ) -> list[Message]:
        """The messages for `notification`; `max_messages` overrides the cap (digests use the rate budget).
        `mentions` (userids, mobiles) go on the first message: one @ per notification, not per part."""
        cap = max_messages or self.max_messages
        users, mobiles = mentions
        suffix = self._mention_suffix(users)
        # The mentions ride on the first message and count against its limit like any content; the
        # later parts have the whole limit.
        first_limit = self.limit - (fit.byte_len(suffix) + 1 if suffix else 0)
        limits = (first_limit, self.limit)
        # Most severe first; alerts of one name together, so that compact lines group them.
        firing = sorted(notification.firing, key=lambda a: (_severity_rank(a), label_text(a.name)))
        resolved = sorted(notification.resolved, key=lambda a: label_text(a.name))
        alerts = firing + resolved
        if not alerts:
            return []
        common = self._common(notification, alerts)
        many = len(alerts) > 1
        views = _LazyViews(alerts, lambda a: self._view_or_note(a, common["common_labels"], many))
        layout: tuple[list[tuple[int, int]], int] = ([], 0)
        # A digest is dense by design: compact lines, grouped by alert name.
        for compact in (True,) if notification.digest_of else (False, True):
            layout = self._pack(views, common, compact, cap, limits)
            if layout[1] == 0:
                break
        spans, omitted = layout
        messages = []
        for index, (start, end) in enumerate(spans):
            last = index == len(spans) - 1
            messages.append(
                self._message(
                    views[start:end],
                    common,
                    compact,
                    part=index + 1,
                    parts=len(spans),
                    omitted=omitted if last else 0,
                    limit=limits[0] if index == 0 else limits[1],
                )
            )
        if messages and suffix:
            messages[0] = replace(messages[0], content=f"{messages[0].content}\n{suffix}")
        elif messages and self.msgtype == "text" and (users or mobiles):
            messages[0] = replace(messages[0], mentions=tuple(users), mention_mobiles=tuple(mobiles))
        return messages

    def mentions_that_fit(self, users: list[str]) -> list[str]:
        """markdown mentions are ``<@userid>`` inside the content: they may take at most half of the
        first message, so that alerts always show beside them. The first ones that fit."""
        if self.msgtype != "markdown":
            return users
        budget = self.limit // 2
        used = 0
        for count, user in enumerate(users):
            used += fit.byte_len(user) + 4  # "<@" ">" and the space before
            if used > budget:
                return users[:count]
        return users

    def _mention_suffix(self, users: list[str]) -> str:
        """The markdown mentions (ids validated when resolved, no more than fit)."""
        if self.msgtype != "markdown" or not users:
            return ""
        return Safe(" ".join(f"<@{u}>" for u in self.mentions_that_fit(users)))

    # -- packing ------------------------------------------------------------------------------------

    def _pack(
        self, views: _LazyViews, common: dict[str, Any], compact: bool, cap: int, limits: tuple[int, int]
    ) -> tuple[list[tuple[int, int]], int]:
        """Greedy: each part takes as many alerts as fit (exponential then binary search). `limits`:
        the first part's byte limit and the others'."""
        spans: list[tuple[int, int]] = []
        start = 0
        total = len(views)
        while start < total:
            last_allowed = len(spans) == cap - 1
            remaining = total - start
            limit = limits[0] if not spans else limits[1]

            def fits(
                count: int,
                start: int = start,
                remaining: int = remaining,
                last_allowed: bool = last_allowed,
                limit: int = limit,
            ) -> bool:
                omitted = remaining - count if last_allowed else 0
                return self._fits(views[start : start + count], common, compact, omitted, limit)

            count = 1
            if fits(1):
                low, high = 1, 2
                while high <= remaining and fits(high):
                    low, high = high, high * 2
                high = min(high, remaining + 1)
                while high - low > 1:
                    middle = (low + high) // 2
                    if fits(middle):
                        low = middle
                    else:
                        high = middle
                count = low
            spans.append((start, start + count))
            start += count
            if last_allowed and start < total:
                return spans, total - start
        return spans, 0

    def _fits(
        self, views: Sequence[AlertView], common: dict[str, Any], compact: bool, omitted: int, limit: int
    ) -> bool:
        title, content = self._render_raw(
            views,
            common,
            compact,
            _PLACEHOLDER_PARTS,
            _PLACEHOLDER_PARTS,
            f"({_PLACEHOLDER_PARTS}/{_PLACEHOLDER_PARTS})",
            omitted,
        )
        if title is not None and fit.byte_len(title) > fit.TEXTCARD_TITLE_LIMIT:
            return False
        return fit.byte_len(content) <= limit

    # -- rendering ----------------------------------------------------------------------------------

    def _message(
        self,
        views: Sequence[AlertView],
        common: dict[str, Any],
        compact: bool,
        part: int,
        parts: int,
        omitted: int,
        limit: int,
    ) -> Message:
        label = f"({part}/{parts})" if parts > 1 else ""
        title, content = self._render_raw(views, common, compact, part, parts, label, omitted)
        content = fit.truncate_utf8(content, limit)
        if self.msgtype != "textcard":
            return Message(self.msgtype, content, alert_count=len(views))
        url = common["alertmanager_url"] or next((v.generator_url for v in views if v.generator_url), "")
        return Message(
            "textcard",
            content,
            title=fit.truncate_utf8(title or "", fit.TEXTCARD_TITLE_LIMIT),
            # WeCom requires a url on a textcard; a link that cannot be cut is replaced, not broken.
            url=url if url and fit.byte_len(url) <= fit.TEXTCARD_URL_LIMIT else "https://work.weixin.qq.com/",
            btntxt=self.strings["details"][: fit.TEXTCARD_BTNTXT_CHARS],
            alert_count=len(views),
        )

    def _render_raw(
        self,
        views: Sequence[AlertView],
        common: dict[str, Any],
        compact: bool,
        part: int,
        parts: int,
        label: str,
        omitted: int,
    ) -> tuple[str | None, str]:
        context = dict(common)
        firing = [v for v in views if v.status == "firing"]
        resolved = [v for v in views if v.status == "resolved"]
        context.update(
            alerts=list(views),
            firing=firing,
            resolved=resolved,
            firing_groups=_groups(firing),
            resolved_groups=_groups(resolved),
            compact=compact,
            part=part,
            parts=parts,
            part_label=label,
            omitted=omitted,
        )
        try:
            content = self.templates.content.render(context).strip()
            title = self.templates.title.render(context).strip() if self.templates.title else None
        except jinja2.TemplateError as exc:
            raise self._template_error(exc) from None
        return title, content

    def _template_error(self, exc: jinja2.TemplateError) -> TemplateError:
        name = self.templates.content.filename or self.templates.content.name or "template"
        line = _line_of(exc, name)
        if line is None and self.templates.title is not None:
            title_name = self.templates.title.filename or "title_template"
            line = _line_of(exc, title_name)
            if line is not None:
                name = title_name
        where = f"{name}:{line}" if line else name
        return TemplateError(f"{where}: {exc.message or type(exc).__name__}")

    def _common(self, notification: Notification, alerts: list[Alert]) -> dict[str, Any]:
        # Everything taken from the payload is text of one line (or an http(s) URL), never structure.
        names = list(dict.fromkeys(label_text(a.name) for a in alerts if a.name))
        group_name = label_text(notification.group_labels.get("alertname", ""))
        title = group_name or (
            names[0]
            if len(names) == 1
            else ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        )
        common_labels = _labels(notification.common_labels)
        shown_common = {k: v for k, v in common_labels.items() if k not in _NOT_IDENTIFYING}
        if len(alerts) == 1:
            shown_common = {}  # a lone alert lists all its labels itself
        base = self.alertmanager_url or notification.external_url
        am_url = ""
        if base:
            query = urllib.parse.quote(notification.receiver) if notification.receiver else ""
            am_url = base.rstrip("/") + "/#/alerts" + (f"?receiver={query}" if query else "")
        grafana_title = label_text(notification.title or "")
        return {
            "t": self.strings,
            "language": self.language,
            "status": "firing" if notification.firing else "resolved",
            "receiver": label_text(notification.receiver),
            "title": grafana_title if grafana_title and not title else title,
            "group_labels": _labels(notification.group_labels),
            "common_labels": common_labels,
            "common_annotations": self._annotations(notification.common_annotations),
            "common_text": " ".join(f"{k}={v}" for k, v in shown_common.items()),
            "external_url": safe_url(notification.external_url),
            "alertmanager_url": safe_url(am_url),
            "show_names": len(names) > 1,
            "total_firing": len(notification.firing),
            "total_resolved": len(notification.resolved),
            "total": len(alerts),
            "truncated_alerts": notification.truncated_alerts,
            "digest": notification.digest_of,
        }

    def _annotations(self, annotations: Mapping[str, str]) -> dict[str, str]:
        """Multi-line text; the ones named in render.markdown_annotations stay markdown (`Safe`)."""
        trusted = self.markdown_annotations
        out = _labels(annotations, annotation_text)
        for name in trusted.intersection(annotations):
            out[name] = trusted_markdown(annotation_text(annotations[name]), self.msgtype)
        return out

    def _local(self, at: datetime) -> datetime:
        """`at` in the configured zone; in UTC where the zone's offset would leave the calendar
        (year 9999 and year 1 at the edges): a time never makes an alert unrenderable."""
        for zone in (self.zone, UTC):
            try:
                return at.astimezone(zone)
            except (OverflowError, ValueError):
                continue
        return at

    def _view_or_note(self, alert: Alert, common_labels: dict[str, str], many: bool) -> AlertView:
        """The alert's view; if something in it cannot be shown, a line that says so, so that one
        alert never stops the others of its notification (or of a digest) from being sent."""
        try:
            return self._view(alert, common_labels, many)
        except Exception as exc:
            note = f"(this alert cannot be shown: {type(exc).__name__})"
            name = label_text(alert.labels.get("alertname", "") if isinstance(alert.labels, dict) else "")
            return AlertView(
                name=name[:100] or "?",
                status=alert.status,
                severity="",
                labels={},
                annotations={},
                identifying={},
                ident=note,
                summary="",
                description="",
                starts="",
                starts_short="",
                ends="",
                duration="",
                generator_url=Safe(""),
                runbook_url=Safe(""),
                silence_url=Safe(""),
                dashboard_url=Safe(""),
                fingerprint="",
            )

    def _view(self, alert: Alert, common_labels: dict[str, str], many: bool) -> AlertView:
        labels = _labels(alert.labels)
        identifying = {
            k: v
            for k, v in labels.items()
            if k not in _NOT_IDENTIFYING and not (many and common_labels.get(k) == v)
        }
        started = self._local(alert.started)
        ended = alert.ended
        duration = ""
        ends = ""
        if ended is not None and alert.status == "resolved":
            duration = format_duration((ended - alert.started).total_seconds(), self.strings)
            ends = self._local(ended).strftime("%Y-%m-%d %H:%M:%S")
        annotations = self._annotations(alert.annotations)
        runbook = alert.annotations.get("runbook_url", "") or alert.annotations.get("runbook", "")
        return AlertView(
            name=labels.get("alertname", ""),
            status=alert.status,
            severity=labels.get("severity", ""),
            labels=labels,
            annotations=annotations,
            identifying=identifying,
            ident=" ".join(f"{k}={v}" for k, v in identifying.items()),
            summary=annotations.get("summary", "") or annotations.get("message", ""),
            description=annotations.get("description", ""),
            starts=started.strftime("%Y-%m-%d %H:%M:%S"),
            starts_short=started.strftime("%m-%d %H:%M"),
            ends=ends,
            duration=duration,
            generator_url=safe_url(alert.generator_url),
            runbook_url=safe_url(runbook),
            silence_url=safe_url(alert.silence_url or ""),
            dashboard_url=safe_url(alert.dashboard_url or ""),
            fingerprint=label_text(alert.fingerprint),
        )


def _labels(labels: Mapping[str, str], text: Callable[[str], str] = label_text) -> dict[str, str]:
    """Label names (one line each) and values (`text`). A name that had to be cleaned never takes the
    place of another: "alert\u202ename" does not become a second "alertname"."""
    out: dict[str, str] = {}
    for name, value in labels.items():
        shown = label_text(name)
        if shown != name:
            while shown in labels or shown in out:
                shown += "\ufffd"
        out[shown] = text(value)
    return out
