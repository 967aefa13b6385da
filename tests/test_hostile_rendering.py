"""Alert data is content, never markup: whatever labels and annotations hold, the messages' markup is the
template's own. The property test renders arbitrary values through every msgtype and compares the
markup tokens with those of the same notification whose values were replaced by inert words."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertmanager_wecom import samples
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.rendering.escaping import annotation_text, escaper, label_text, safe_url
from alertmanager_wecom.rendering.message import Message
from alertmanager_wecom.rendering.renderer import Renderer, builtin_templates
from alertmanager_wecom.rendering.views import _SEVERITY_RANK
from tests.helpers import relay_config

MSGTYPES = ["text", "markdown", "markdown_v2", "textcard"]
# Every severity the renderer ranks (a neutral word would rank differently and reorder the alerts).
_SEVERITIES = {*_SEVERITY_RANK, ""}
# Names the templates look up: kept, so that both renderings take the same branches.
_NAMES = {"alertname", "severity", "instance", "summary", "description", "runbook_url", "runbook", "message"}

# Markup per format, as its renderer reads it: characters that are markup wherever they stand, those
# that are markup at the start of a line, backslash escapes, and markdown_v2's emphasis markers.
_MARKUP = {
    "text": "<>\n",
    "textcard": "<>\n",
    "markdown": "<>[]*`\n",
    "markdown_v2": "<>[]*`|\n",
}
_LINE_START = re.compile(r"(?m)^[ \t]*(?:#|[-+](?=[ \t]|$)|\d+[.)](?=[ \t]|$)|[=-]+[ \t]*$)")
_ESCAPE = re.compile(r"\\[!-/:-@\[-`{-~]")
_EMPHASIS = re.compile(r"(?<![^\W_])[_~]|[_~](?![^\W_])")
_LINK_TARGET = re.compile(r"\]\([^()\s]*\)")
_HREF = re.compile(r'href="[^"<>\s]*"')


def tokens(msgtype: str, text: str) -> list[str]:
    # A link's target is a sanitised URL (test_urls_... below): its characters are not markup.
    text = _LINK_TARGET.sub("](URL)", _HREF.sub('href=""', text))
    out = [c for c in text if c in _MARKUP[msgtype]]
    if msgtype.startswith("markdown"):
        out += ["line:" + m.group().strip() for m in _LINE_START.finditer(text)]
        out += ["escape:" + m.group() for m in _ESCAPE.finditer(text)]
    if msgtype == "markdown_v2":
        out += ["emphasis:" + m.group() for m in _EMPHASIS.finditer(text)]
    return out


def message_tokens(msgtype: str, messages: list[Message]) -> list[list[str]]:
    return [tokens(msgtype, m.content) + tokens(msgtype, m.title) for m in messages]


def renderer(msgtype: str, **kwargs: Any) -> Renderer:
    return Renderer(
        msgtype, builtin_templates(msgtype), "zh", "Asia/Shanghai", max_messages=50, limit=100_000, **kwargs
    )


# -- the property ----------------------------------------------------------------------------------------

_SNIPPETS = [
    "\n## 【已恢复】",
    "<@all>",
    "x><@all",
    "[click](http://evil.example/)",
    "![img](http://evil.example/i.png)",
    '<font color="info">ok</font>',
    '<div class="highlight">fake</div>',
    '<a href="http://evil.example/">x</a>',
    "**bold**",
    "`code`",
    "> quote",
    "- item",
    "1. item",
    "| a | b |",
    "~~gone~~",
    "_em_",
    "&lt;font&gt;",
    "\\*",
    "\r\n# h",
    "\u2028",
    "\u202e",
    "\x85",
    "---",
    "===",
]
_CHARS = st.sampled_from(list("<>[]()*#`&\\_~|-+=.!@ \n\r\t1a中\"'/:\x9b\u202e"))
_hostile = st.one_of(
    st.text(_CHARS, max_size=12),
    st.lists(st.sampled_from(_SNIPPETS) | st.text(_CHARS, max_size=4), max_size=4).map("".join),
    st.text(max_size=8),
)
_short = st.one_of(st.text(_CHARS, min_size=1, max_size=6), st.sampled_from(_SNIPPETS).map(lambda s: s[:6]))
_urls = st.sampled_from(
    [
        "",
        "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
        "http://x/a)b](c",
        'https://x/"><@all>',
        "javascript:alert(1)",
        "http://x/ space*star`tick",
        "http://[::1",
        "http://[::1]:9090/graph",
        "https://wiki/ops?id=1&x=2#disk_full",
    ]
)


@st.composite
def hostile_notifications(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 3))
    generator = draw(_urls)
    runbook = draw(_urls)
    alerts: list[dict[str, Any]] = []
    for _ in range(count):
        labels = {"alertname": draw(_short), "instance": draw(_hostile)}
        labels.update(draw(st.dictionaries(_short, _hostile, max_size=2)))
        labels["severity"] = draw(st.sampled_from(sorted(_SEVERITIES)) | _hostile)
        annotations = {"summary": draw(_hostile), "description": draw(_hostile), "runbook_url": runbook}
        status = draw(st.sampled_from(["firing", "resolved"]))
        alerts.append(
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": "2026-11-28T09:02:09Z",
                "endsAt": "2026-11-28T09:12:09Z" if status == "resolved" else "0001-01-01T00:00:00Z",
                "generatorURL": generator,
                "fingerprint": draw(_hostile),
            }
        )
    common = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)}
    return {
        "receiver": draw(_hostile),
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": alerts,
        "groupLabels": {"alertname": common["alertname"]} if "alertname" in common else {},
        "commonLabels": common,
        "commonAnnotations": {"summary": draw(_hostile)},
        "externalURL": draw(_urls),
        "title": draw(_hostile),
    }


def neutral(payload: dict[str, Any]) -> dict[str, Any]:
    """The same notification with every value from alert data replaced by an inert word. Words keep the
    values' order (sorting is by name) and equality (some labels are shown only when they differ);
    annotations keep their line breaks; severities keep their rank; URLs stay as they are."""
    strings: set[str] = set()

    def collect(value: str, multiline: bool) -> None:
        strings.update(annotation_text(value).split("\n") if multiline else [label_text(value)])

    for alert in payload["alerts"]:
        for k, v in alert["labels"].items():
            collect(k, False)
            collect(v, False)
        for k, v in alert["annotations"].items():
            collect(k, False)
            collect(v, True)
        collect(alert["fingerprint"], False)
    for field in ("receiver", "title"):
        collect(payload[field], False)
    for k, v in payload["commonAnnotations"].items():
        collect(k, False)
        collect(v, True)
    word = {s: (f"v{i:04d}" if s else "") for i, s in enumerate(sorted(strings))}

    def one(value: str) -> str:
        return word[label_text(value)]

    def key(name: str) -> str:
        return name if name in _NAMES else one(name)

    def lines(value: str) -> str:
        return "\n".join(word[line] for line in annotation_text(value).split("\n"))

    def labels(d: dict[str, str]) -> dict[str, str]:
        return {key(k): (v if k == "severity" and v.lower() in _SEVERITIES else one(v)) for k, v in d.items()}

    out = dict(payload)
    out["alerts"] = [
        {
            **alert,
            "labels": labels(alert["labels"]),
            "annotations": {
                key(k): (v if k == "runbook_url" else lines(v)) for k, v in alert["annotations"].items()
            },
            "fingerprint": one(alert["fingerprint"]),
        }
        for alert in payload["alerts"]
    ]
    out["receiver"], out["title"] = one(payload["receiver"]), one(payload["title"])
    out["commonLabels"] = labels(payload["commonLabels"])
    out["groupLabels"] = labels(payload["groupLabels"])
    out["commonAnnotations"] = {key(k): lines(v) for k, v in payload["commonAnnotations"].items()}
    return out


@pytest.mark.parametrize("msgtype", MSGTYPES)
@pytest.mark.parametrize("digest", [False, True], ids=["full", "digest"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=hostile_notifications())
def test_alert_data_never_adds_markup(msgtype: str, digest: bool, payload: dict[str, Any]) -> None:
    if digest:
        payload = {**payload, "digest_of": 3}  # compact lines, grouped by alert name
    render = renderer(msgtype)
    hostile = render.render(Notification.model_validate(payload))
    expected = render.render(Notification.model_validate(neutral(payload)))
    assert len(hostile) == len(expected)
    assert message_tokens(msgtype, hostile) == message_tokens(msgtype, expected)


# -- examples of each class ----------------------------------------------------------------------------


def one_alert(labels: dict[str, str], annotations: dict[str, str] | None = None) -> Notification:
    payload = samples.node_down(1)
    payload["alerts"][0]["labels"].update(labels)
    payload["alerts"][0]["annotations"].update(annotations or {})
    payload["commonLabels"] = dict(payload["alerts"][0]["labels"])
    return Notification.model_validate(payload)


def test_a_label_cannot_make_a_fake_heading_or_mention() -> None:
    [message] = renderer("markdown").render(one_alert({"instance": "x\n## 【已恢复】 all good <@all>"}))
    lines = message.content.splitlines()
    assert [line for line in lines if line.startswith("#")] == [lines[0]]
    assert lines[0].startswith("## 【告警】")
    assert "<@all>" not in message.content and "＜@all＞" in message.content
    # The value is still there, as text: mid-line, "#" is no heading; "<@all>" is no mention.
    assert "instance=x ## 【已恢复】 all good ＜@all＞" in message.content


def test_markdown_links_images_fonts_and_quotes_from_labels_are_text() -> None:
    value = '[x](http://evil/) ![i](http://evil/i.png) <font color="info">ok</font> **b** `c`'
    [message] = renderer("markdown").render(one_alert({"instance": value}, {"summary": "> quoted\n# h"}))
    content = message.content
    for token in ("[x](", "![i]", '<font color="info">ok', "**b**", "`c`"):
        assert token not in content
    assert "［x］(http://evil/)" in content
    assert "\n> ＞ quoted\n＃ h" in content  # the annotation keeps its line break, as text


def test_textcard_divs_and_text_links_from_alert_data_are_text() -> None:
    value = '</div><div class="highlight">FAKE'
    [card] = renderer("textcard").render(one_alert({"instance": value}))
    assert card.content.count("<div") == card.content.count("</div>")
    assert 'class="highlight">FAKE' not in card.content
    [text] = renderer("text").render(one_alert({"instance": '<a href="http://evil/">x</a>'}))
    assert '<a href="http://evil/">' not in text.content and "＜a href=" in text.content


def test_urls_from_alert_data_cannot_break_out_of_a_link() -> None:
    assert safe_url("javascript:alert(1)") == ""
    assert safe_url("http://x/a)b](c") == "http://x/a%29b%5D%28c"
    assert safe_url('https://x/"><@all>') == "https://x/%22%3E%3C@all%3E"
    assert safe_url("http://a/#/alerts?receiver=x&y=%20") == "http://a/#/alerts?receiver=x&y=%20"
    assert safe_url("http://a/\nb") == ""
    payload = samples.node_down(1)
    payload["alerts"][0]["generatorURL"] = "http://x/a)](http://evil/"
    [message] = renderer("markdown").render(Notification.model_validate(payload))
    assert "[图表](http://x/a%29%5D%28http://evil/)" in message.content


def test_escaping_per_format() -> None:
    assert escaper("text")("a<b>&c*#") == "a＜b＞&c*#"
    assert escaper("textcard")('</div><div class="x">') == '＜/div＞＜div class="x"＞'
    markdown = escaper("markdown")
    assert markdown("## [a](b) *c* `d`") == "＃# ［a］(b) ＊c＊ ｀d｀"
    assert markdown("a ## b") == "a ## b"  # a heading only at the start of a line
    assert markdown("x\\") == "x＼" and markdown("C:\\Users") == "C:\\Users"
    assert markdown("https://wiki/ops?id=1&x=2#disk_full") == "https://wiki/ops?id=1&x=2#disk_full"
    v2 = escaper("markdown_v2")
    assert v2("- a\n1. b\n+ c\n| d |\n---") == "－ a\n1． b\n＋ c\n｜ d ｜\n－--"
    assert v2("a-b 2.5 -5") == "a-b 2.5 -5"  # not list markers
    assert v2("node_exporter _em_ ~~s~~") == "node_exporter ＿em＿ ～～s～～"
    assert label_text("a\nb\r\tc\u2028d\u202ee") == "a b  c de"
    assert annotation_text("a\r\nb\rc\n\nd") == "a\nb\nc\n\nd"


def test_markdown_annotations_are_opt_in() -> None:
    runbook = "see [the runbook](https://runbooks.example.com/x)"
    note = one_alert({}, {"summary": runbook})
    [plain] = renderer("markdown").render(note)
    assert "[the runbook](" not in plain.content
    [trusted] = renderer("markdown", markdown_annotations=frozenset({"summary"})).render(note)
    assert "[the runbook](https://runbooks.example.com/x)" in trusted.content
    # Not in text or textcard, where it would show as raw markdown anyway: still escaped.
    [text] = renderer("text", markdown_annotations=frozenset({"summary"})).render(note)
    assert "see [the runbook](" in text.content  # text has no links of this form: shown as it is
    [card] = renderer("textcard", markdown_annotations=frozenset({"summary"})).render(
        one_alert({}, {"summary": "<div>"})
    )
    assert "<div>" not in card.content


def test_markdown_annotations_from_the_config(tmp_path: Any) -> None:
    config = relay_config("http://127.0.0.1:1/cgi-bin/")
    raw = config.model_dump(mode="json", exclude={"base_dir"})
    raw["render"]["markdown_annotations"] = ["summary"]
    from alertmanager_wecom.loading import parse_config

    trusting = parse_config(raw)
    target = trusting.receivers[0].targets[0]
    summary = "[runbook](https://r.example/x) **x** <@all>\n## 【已恢复】 [bad](javascript:alert(1))"
    [message] = Renderer.for_target(target, trusting).render(one_alert({}, {"summary": summary}))
    assert "[runbook](https://r.example/x)" in message.content  # a link: the one thing opted in
    # Annotations interpolate labels: even a trusted one cannot bold, mention, head or link elsewhere.
    assert "**x**" not in message.content and "<@all>" not in message.content
    assert "\n## 【已恢复】" not in message.content and "](javascript" not in message.content


def test_user_templates_escape_alert_data_unless_told_raw(tmp_path: Any) -> None:
    template = tmp_path / "t.j2"
    template.write_text(
        "{% for a in alerts %}## {{ a.labels.instance }}\n{{ a.labels.instance | raw }}\n{% endfor %}",
        encoding="utf-8",
    )
    config = relay_config("http://127.0.0.1:1/cgi-bin/", template=str(template))
    render = Renderer.for_target(config.receivers[0].targets[0], config)
    [message] = render.render(one_alert({"instance": "<@all> **x**"}))
    first, second = message.content.splitlines()
    assert first == "## ＜@all＞ ＊＊x＊＊"
    assert second == "<@all> **x**"  # the template's author asked for it


@settings(max_examples=300, deadline=None)
@given(value=st.text())
def test_one_line_and_escaped_values_have_no_markup(value: str) -> None:
    line = label_text(value)
    assert not [c for c in line if unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in "\u202e\u2066"]
    assert len(line) <= len(value)
    for msgtype in MSGTYPES:
        escaped = escaper(msgtype)(line)
        assert not set(escaped) & set(_MARKUP[msgtype])
        if msgtype.startswith("markdown"):
            assert not _LINE_START.search(escaped) and not _ESCAPE.search(escaped)
        if msgtype == "markdown_v2":
            assert not _EMPHASIS.search(escaped)


def test_user_templates_escape_values_that_are_not_strings(tmp_path: Any) -> None:
    template = tmp_path / "t.j2"
    template.write_text("{% for a in alerts %}{{ a.labels }} {{ a.labels.values() | list }}{% endfor %}")
    config = relay_config("http://127.0.0.1:1/cgi-bin/", template=str(template))
    render = Renderer.for_target(config.receivers[0].targets[0], config)
    [message] = render.render(one_alert({"owner": "x<@all> [phish](http://evil.example/)"}))
    assert "<@all>" not in message.content and "[phish]" not in message.content
    assert "x＜@all＞ ［phish］" in message.content


def test_a_cleaned_label_name_never_takes_the_place_of_another() -> None:
    note = one_alert({"alert\u202ename": "TestOnly-ignore", "severi\u2066ty": "info"})
    [message] = renderer("markdown").render(note)
    assert message.content.startswith("## 【告警】NodeDown")
    assert '**NodeDown** <font color="warning">critical</font>' in message.content
    assert "alertname\ufffd=TestOnly-ignore" in message.content  # still shown, under its own name


def test_an_alert_that_cannot_be_shown_is_a_line_that_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last line of defence: whatever breaks one alert's view, the others of the notification (or
    of a digest) are still rendered."""
    payload = samples.node_down(3)
    render = renderer("markdown")
    original = render.views.view

    def broken_for_one(alert: Any, common: Any, many: bool) -> Any:
        if alert.labels["instance"] == "10.0.0.1:9100":
            raise OverflowError("an alert no renderer foresaw")
        return original(alert, common, many)

    monkeypatch.setattr(render.views, "view", broken_for_one)
    [message] = render.render(Notification.model_validate(payload))
    assert "10.0.0.0:9100" in message.content and "10.0.0.2:9100" in message.content
    assert "(this alert cannot be shown: OverflowError)" in message.content


def test_log_lines_cannot_be_forged_through_messages_or_tracebacks() -> None:
    import logging

    from alertmanager_wecom.logsetup import RedactingFormatter

    formatter = RedactingFormatter()
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "v=%s", ("a\n2026 INFO forged\x9b\u202e",), None
    )
    assert formatter.format(record).endswith("v=a\\n2026 INFO forged\\x9b\\u202e")
    try:
        raise ValueError("a\n2026-11-28 00:00:00,000 INFO x: forged")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    lines = formatter.format(record).splitlines()
    assert lines[0].endswith("ERROR x: boom")
    assert all(line.startswith("    ") for line in lines[1:])  # the traceback, indented line by line
