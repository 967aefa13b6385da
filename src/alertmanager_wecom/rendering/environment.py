"""Templates: the Jinja environment (values made inert by `escaping.finalizer`, `| raw` to opt out), the
built-in templates, user templates compiled with their file name (errors carry the line), and the check
at config load that compiles and renders each user template once against a sample."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2

from alertmanager_wecom.config import Config, ConfigError, Target
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.rendering.escaping import Safe, finalizer
from alertmanager_wecom.rendering.fit import detail_msgtype
from alertmanager_wecom.template_sandbox import SandboxedTemplates

# Renders one notification for a target (the renderer's, passed in: the renderer builds on this module).
RenderSample = Callable[[Target, Config, Notification], object]


class TemplateError(Exception):
    """A template cannot be compiled or rendered; the message names the file and line."""


def _raw(value: object) -> Safe:
    """``{{ value | raw }}``: print as markup. Only for text the operator trusts, never alert data."""
    return Safe(str(value))


def _environment(msgtype: str, loader: jinja2.BaseLoader | None = None) -> jinja2.Environment:
    # The sandbox, for the built-in templates too: one environment, so what works in the preview and in
    # a user's file is what the package's own templates use (template_sandbox.py).
    env = SandboxedTemplates(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        # Not HTML escaping: each value is made inert for the WeCom format it lands in (escaping.py).
        autoescape=False,
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


def line_of(exc: BaseException, filename: str) -> int | None:
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
    # Only itself: `{% include %}` and `{% import %}` of any other name are not found (no files read).
    env = _environment(
        msgtype,
        jinja2.FunctionLoader(lambda name: (source, filename, lambda: True) if name == filename else None),
    )
    try:
        return env.get_template(filename)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{filename}:{exc.lineno}: {exc.message}") from None


def load_templates(target: Target, config: Config) -> Templates:
    msgtype = detail_msgtype(target.msgtype)
    if target.template:
        path = Path(target.template)
        if not path.is_absolute():
            path = config.base_dir / path
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"{path}: cannot read template: {exc.strerror}") from None
        content = _compile(source, str(path), msgtype)
    else:
        content = _builtin_envs[msgtype].get_template(f"{msgtype}.j2")
    title: jinja2.Template | None = None
    if msgtype == "textcard":
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


def compile_templates(config: Config, render_sample: RenderSample) -> None:
    """Compile every user template and render it once against a sample, so that syntax errors and
    undefined names are reported when the config is loaded, not when the first alert arrives."""
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
                render_sample(target, config, sample)
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


def builtin_source(msgtype: str) -> str:
    """The package's template for `msgtype`, as text (the console's template preview starts from it)."""
    name = f"{detail_msgtype(msgtype)}.j2"
    source = _builtin_envs[detail_msgtype(msgtype)].loader
    assert source is not None
    return source.get_source(_builtin_envs[detail_msgtype(msgtype)], name)[0]


def templates_from_source(source: str, msgtype: str) -> Templates:
    """A template being edited (the console's preview): compiled as a user's template file would be; the
    title of a textcard stays the package's. Raises TemplateError with the line."""
    msgtype = detail_msgtype(msgtype)
    title = _builtin_envs["textcard"].get_template("textcard_title.j2") if msgtype == "textcard" else None
    return Templates(_compile(source, "template", msgtype), title)
