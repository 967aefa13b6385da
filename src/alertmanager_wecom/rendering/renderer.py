"""Notification → WeCom messages that fit: templates, then packing alerts into byte-limited parts.

A notification that does not fit one message is split on alert boundaries into parts labelled
``(1/3)``.  Alerts are shown in full while the parts stay within the cap of messages per
notification; otherwise in a compact form (name and identifying labels); past the cap, the last
part says how many alerts were left out.  A final hard cut on a UTF-8 boundary guarantees that no
message is ever over WeCom's limit, whatever a user template does.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from alertmanager_wecom.config import Config, Target
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.rendering import fit
from alertmanager_wecom.rendering.environment import (
    TemplateError,
    Templates,
    builtin_templates,
    compile_templates,
    line_of,
    load_templates,
    sample_notification,
)
from alertmanager_wecom.rendering.escaping import Safe, label_text
from alertmanager_wecom.rendering.message import Extras, Message
from alertmanager_wecom.rendering.packing import pack
from alertmanager_wecom.rendering.strings import STRINGS, format_duration
from alertmanager_wecom.rendering.views import AlertView, LazyViews, ViewMaker, groups, severity_rank
from alertmanager_wecom.template_sandbox import Bounds, bounded_render

__all__ = [
    "STRINGS",
    "Renderer",
    "TemplateError",
    "builtin_templates",
    "compile_target_templates",
    "format_duration",
    "sample_notification",
]

_PLACEHOLDER_PARTS = 99  # the widest part label "(99/99)" is used while measuring


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
        bounds: Bounds | None = None,
    ) -> None:
        self.msgtype = msgtype
        self.bounds = bounds or Bounds()
        self.templates = templates
        self.strings = STRINGS[language]
        self.max_messages = max_messages
        self.limit = limit or fit.CONTENT_LIMITS.get(msgtype, fit.TEXTCARD_DESCRIPTION_LIMIT)
        self.views = ViewMaker(
            msgtype, self.strings, language, ZoneInfo(time_zone), alertmanager_url, markdown_annotations
        )

    @classmethod
    def for_target(cls, target: Target, config: Config, limit: int | None = None) -> Renderer:
        """The target's renderer; `limit`: the bytes its channel takes in one message (its channel
        kind's `content_limit`; WeCom's for an app's messages when not given)."""
        render = config.render
        kept = config.kept_templates.by_key.get(target.template_key())
        return cls(
            msgtype=fit.detail_msgtype(target.msgtype),
            templates=kept if isinstance(kept, Templates) else load_templates(target, config),
            language=target.language or render.language,
            time_zone=target.time_zone or render.time_zone,
            max_messages=target.max_messages or render.max_messages,
            alertmanager_url=render.alertmanager_url,
            limit=limit or fit.content_limit(target.msgtype),
            markdown_annotations=frozenset(render.markdown_annotations),
            bounds=Bounds(render.template_timeout, render.template_max_chars),
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
        extras: Extras | None = None,
    ) -> list[Message]:
        """The messages for `notification`; `max_messages` overrides the cap (digests use the rate budget).
        `mentions` (userids, mobiles) go on the first message: one @ per notification, not per part;
        so do the `extras` (an escalation's note above, an acknowledge link below)."""
        cap = max_messages or self.max_messages
        users, mobiles = mentions
        suffix = self._mention_suffix(users)
        head, tail = self._extras(extras)
        # The mentions and extras ride on the first message and count against its limit like any
        # content; the later parts have the whole limit.
        first_limit = self.limit - sum(fit.byte_len(x) + 1 for x in (suffix, head, tail) if x)
        limits = (first_limit, self.limit)
        # Most severe first; alerts of one name together, so that compact lines group them.
        firing = sorted(notification.firing, key=lambda a: (severity_rank(a), label_text(a.name)))
        resolved = sorted(notification.resolved, key=lambda a: label_text(a.name))
        alerts = firing + resolved
        if not alerts:
            return []
        common = self.views.common(notification, alerts)
        many = len(alerts) > 1
        views = LazyViews(alerts, lambda a: self.views.view_or_note(a, common["common_labels"], many))
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
        if messages and (head or tail):
            content = "\n".join(x for x in (head, messages[0].content, tail) if x)
            messages[0] = replace(messages[0], content=content)
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

    def _extras(self, extras: Extras | None) -> tuple[str, str]:
        """The escalation note and the acknowledge link as this msgtype writes them."""
        if extras is None:
            return "", ""
        head = ""
        if extras.escalated_after is not None:
            after = format_duration(extras.escalated_after, self.strings)
            head = self.strings["escalated"] % (after, extras.level)
            if self.msgtype == "markdown":
                head = f'<font color="warning">{head}</font>'
        tail = ""
        words = (
            self.strings["acknowledge_all"] % extras.ack_groups
            if extras.ack_groups > 1
            else self.strings["acknowledge"]
        )
        if extras.ack_url and self.msgtype in ("markdown", "markdown_v2"):
            tail = f"[{words}]({extras.ack_url})"
        elif extras.ack_url and self.msgtype == "text":
            tail = f"{words}: {extras.ack_url}"
        return Safe(head), Safe(tail)

    def _mention_suffix(self, users: list[str]) -> str:
        """The markdown mentions (ids validated when resolved, no more than fit)."""
        if self.msgtype != "markdown" or not users:
            return ""
        return Safe(" ".join(f"<@{u}>" for u in self.mentions_that_fit(users)))

    # -- packing ------------------------------------------------------------------------------------

    def _pack(
        self, views: LazyViews, common: dict[str, Any], compact: bool, cap: int, limits: tuple[int, int]
    ) -> tuple[list[tuple[int, int]], int]:
        def fits(start: int, count: int, omitted: int, limit: int) -> bool:
            return self._fits(views[start : start + count], common, compact, omitted, limit)

        return pack(len(views), cap, limits, fits)

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
            return Message(self.msgtype, content)
        url = common["alertmanager_url"] or next((v.generator_url for v in views if v.generator_url), "")
        return Message(
            "textcard",
            content,
            title=fit.truncate_utf8(title or "", fit.TEXTCARD_TITLE_LIMIT),
            # WeCom requires a url on a textcard; a link that cannot be cut is replaced, not broken.
            url=url if url and fit.byte_len(url) <= fit.TEXTCARD_URL_LIMIT else "https://work.weixin.qq.com/",
            btntxt=self.strings["details"][: fit.TEXTCARD_BTNTXT_CHARS],
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
            firing_groups=groups(firing),
            resolved_groups=groups(resolved),
            compact=compact,
            part=part,
            parts=parts,
            part_label=label,
            omitted=omitted,
        )
        try:
            content = bounded_render(self.templates.content, context, self.bounds).strip()
            title = (
                bounded_render(self.templates.title, context, self.bounds).strip()
                if self.templates.title
                else None
            )
        except jinja2.TemplateError as exc:
            raise self._template_error(exc) from None
        return title, content

    def _template_error(self, exc: jinja2.TemplateError) -> TemplateError:
        name = self.templates.content.filename or self.templates.content.name or "template"
        line = line_of(exc, name)
        if line is None and self.templates.title is not None:
            title_name = self.templates.title.filename or "title_template"
            line = line_of(exc, title_name)
            if line is not None:
                name = title_name
        where = f"{name}:{line}" if line else name
        if isinstance(exc, jinja2.TemplateNotFound):
            return TemplateError(f"{where}: cannot include or import {exc.name!r}: a template stands alone")
        return TemplateError(f"{where}: {exc.message or type(exc).__name__}")


def compile_target_templates(config: Config) -> None:
    """Compile every user template of `config` and render it once against a sample, so that syntax
    errors and undefined names are reported when the config is loaded, not when the first alert
    arrives; the compiled templates are kept on the config for the renderer."""
    compile_templates(config, _render_sample)


def _render_sample(target: Target, config: Config, sample: Notification) -> object:
    return Renderer.for_target(target, config).render(sample)
