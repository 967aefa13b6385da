"""Templates are code (issue 20): every template renders in Jinja's sandbox, bounded in time and output;
the console's preview renders in a worker process that is killed at its deadline.

The escapes below are the usual server-side template injection list. Through a config template each
fails at load with the reason; through the console's preview (real HTTP, the real worker process) each
answers an error, and nothing ran: no command output, no file, no environment, no secret in the answer.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertmanager_wecom.config import ConfigError
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.samples import node_down
from alertmanager_wecom.simulator.model import SANDBOX_SECRET
from alertmanager_wecom.template_sandbox import Bounds, BoundsExceeded, SandboxedTemplates, bounded_render
from alertmanager_wecom.web import preview_worker
from alertmanager_wecom.web.app import create_app
from tests.helpers import raw_config
from tests.servers import serve_in_thread

ESCAPES = [
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__.os.environ }}",
    "{{ namespace.__init__.__globals__.os.system('id') }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__base__.__subclasses__()[0] }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}",
    "{{ config.__class__.__init__.__globals__['os'] }}",
    "{{ request.application.__globals__.__builtins__.open('/etc/passwd').read() }}",
    "{{ alerts.__class__.__base__ }}",
    "{{ alerts['__class__'] }}",
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ (alerts|first)|attr('__dict__') }}",
    "{{ '{0.__class__.__mro__}'.format(alerts) }}",
    "{{ '{0.__init__.__globals__}'.format(cycler) }}",
    "{{ alerts.pop() }}",
    "{{ dict.mro() }}",
    "{{ range.__call__.__self__ }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}{{ os.system('id') }}",
    "{% set x = namespace() %}{{ x.__class__.__init__.__globals__ }}",
]
# What would show that something ran or was read.
LEAKS = ["uid=", "root:", SANDBOX_SECRET, "<class", "<function", "<module", "__builtins__", "environ("]


def _config_with_template(tmp_path: Path, source: str, **render: Any) -> Any:
    (tmp_path / "mine.j2").write_text(source, encoding="utf-8")
    raw = raw_config(
        "http://127.0.0.1:9/",
        tmp_path,
        {"app": "ops", "to_user": ["a"], "msgtype": "text", "template": "mine.j2"},
    )
    raw["render"] = render
    return parse_config(raw, base_dir=tmp_path)


@pytest.mark.parametrize("source", ESCAPES)
def test_an_escape_in_a_config_template_fails_at_load_with_the_reason(tmp_path: Path, source: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config_with_template(tmp_path, source)
    message = str(caught.value)
    assert "receivers[0].targets[0].template" in message
    # The reason, in the sandbox's words or Jinja's: never silence.
    assert any(
        word in message
        for word in ("unsafe", "undefined", "has no attribute", "not safely callable", "stands alone")
    ), message
    assert not any(leak in message for leak in LEAKS), message


def test_an_escape_in_a_recipient_template_fails_at_load(tmp_path: Path) -> None:
    raw = raw_config(
        "http://127.0.0.1:9/",
        tmp_path,
        {"app": "ops", "to_user": ["{{ cycler.__init__.__globals__.os.getcwd() }}"], "msgtype": "text"},
    )
    with pytest.raises(ConfigError, match=r"to_user\[0\].*unsafe"):
        parse_config(raw)


def test_the_builtin_templates_render_unchanged_in_the_sandbox(tmp_path: Path) -> None:
    """A user template using what templates normally use (loops, filters, macros, namespace, format)
    still works: the sandbox refuses Python's insides, not Jinja."""
    source = (
        "{% macro line(a) %}{{ a.labels.alertname }}@{{ a.labels.instance }}{% endmacro %}"
        "{% set ns = namespace(n=0) %}{% for a in alerts %}{% set ns.n = ns.n + 1 %}{{ line(a) }};{% endfor %}"
        "{{ ns.n }} {{ '%s/%d'|format('x', 3) }} {{ alerts|map(attribute='status')|join(',') }}"
    )
    config = _config_with_template(tmp_path, source)
    from alertmanager_wecom.delivery.preview import preview

    shown = preview(config, json.dumps(node_down(2, receiver="default")), "default", 0, None)
    assert shown.error == ""
    text = shown.messages[0].content
    assert text == "NodeDown@10.0.0.0:9100;NodeDown@10.0.0.1:9100;2 x/3 firing,firing"


def test_runaway_loops_and_huge_values_stop_with_a_reason() -> None:
    env = SandboxedTemplates()
    loop = env.from_string("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    started = time.monotonic()
    with pytest.raises(BoundsExceeded, match=r"longer than 0\.3s"):
        bounded_render(loop, {}, Bounds(seconds=0.3))
    assert time.monotonic() - started < 5
    # Recursion through a macro checks the deadline at each call.
    macro = env.from_string(
        "{% macro f(n) %}{% for i in range(3) %}{{ f(n) if n else '' }}{% endfor %}{% endmacro %}{{ f(1) }}"
    )
    with pytest.raises(Exception, match=r"longer than|recursion"):
        bounded_render(macro, {}, Bounds(seconds=0.3))
    with pytest.raises(BoundsExceeded, match="more than 1000 characters"):
        bounded_render(env.from_string("{% for i in range(5000) %}xx{% endfor %}"), {}, Bounds(chars=1000))
    for bomb in ("{{ 'x' * n }}", "{{ n * [1] }}", "{{ 2 ** n }}"):
        with pytest.raises(Exception, match="refused"):
            bounded_render(env.from_string(bomb), {"n": 10**10})


# -- the console's preview, over HTTP, in its worker ----------------------------------------------------


@pytest.fixture
def console(tmp_path: Path) -> Any:
    raw = raw_config("http://127.0.0.1:9/", tmp_path, {"app": "ops", "to_user": ["a"], "msgtype": "markdown"})
    raw["server"] = {"admin_allow_loopback": True}
    raw["render"] = {"template_timeout": "1s"}
    with serve_in_thread(create_app(parse_config(raw))) as url:
        yield url


def _preview(url: str, template: str | None, timeout: float = 30) -> dict[str, Any]:
    payload = json.dumps(node_down(2, receiver="default"))
    answer = httpx.post(
        f"{url}/ui/api/preview",
        json={"payload": payload, "receiver": "default", "index": 0, "template": template},
        timeout=timeout,
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_the_preview_refuses_every_escape_and_nothing_runs(console: str, tmp_path: Path) -> None:
    assert _preview(console, None)["error"] == ""  # the target's own template previews
    for source in ESCAPES:
        result = _preview(console, source)
        assert result["error"], source
        shown = json.dumps(result, ensure_ascii=False)
        assert not any(leak in shown for leak in LEAKS), (source, shown)


def _children() -> set[int]:
    """This process's live child processes (the relay runs in a thread here: its worker is ours)."""
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[1] == me and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def test_a_runaway_preview_is_killed_at_its_deadline_and_the_service_stays_responsive(
    console: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # textwrap in one filter call: no step of the template's own for the sandbox to check; only the
    # kill stops it. The deadline, shortened for the test, is read at each preview.
    monkeypatch.setattr(preview_worker, "PREVIEW_SECONDS", 1.0)
    _preview(console, None)  # the worker is up
    before = _children()
    assert before, "the preview worker runs as a child process"
    runaway = "{{ ('x ' * 450000)|wordwrap(1)|wordwrap(1)|length }}"
    latencies: list[float] = []
    for _ in range(10):
        # The worker is up (a killed one is started again by the next preview; its start-up is not the
        # template's time): what is timed is the runaway alone.
        assert _preview(console, None)["error"] == ""
        done = threading.Event()
        answers: list[dict[str, Any]] = []
        started = time.monotonic()

        def run(answers: list[dict[str, Any]] = answers, done: threading.Event = done) -> None:
            answers.append(_preview(console, runaway))
            done.set()

        threading.Thread(target=run).start()
        while not done.wait(0.05):
            t0 = time.monotonic()
            assert httpx.get(f"{console}/healthz", timeout=5).status_code == 200
            latencies.append(time.monotonic() - t0)
        took = time.monotonic() - started
        assert "stopped" in answers[0]["error"] or "longer than" in answers[0]["error"], answers[0]
        assert took < 1.0 + 3, took  # the deadline, and the kill and reaping after it
    # A blocked event loop would hold each probe for the whole deadline (a second): the median probe is
    # well under that. (How fast it is otherwise is bench/console.py's to measure, not a test's.)
    assert statistics.median(latencies) < 0.5, latencies
    # Each killed worker was reaped, and at most one worker lives for the next preview.
    assert _preview(console, None)["error"] == ""
    assert len(_children()) <= len(before)
