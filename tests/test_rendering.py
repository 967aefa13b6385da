from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertmanager_wecom import samples
from alertmanager_wecom.config import ConfigError
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.rendering.fit import TEXTCARD_DESCRIPTION_LIMIT, TEXTCARD_TITLE_LIMIT, byte_len
from alertmanager_wecom.rendering.renderer import STRINGS, Renderer, format_duration
from tests.helpers import relay_config

LIMITS = {"text": 2048, "markdown": 2048, "textcard": TEXTCARD_DESCRIPTION_LIMIT}


def renderer(msgtype: str = "markdown", language: str = "zh", max_messages: int | None = None) -> Renderer:
    extra: dict[str, Any] = {"msgtype": msgtype, "language": language}
    if max_messages:
        extra["max_messages"] = max_messages
    config = relay_config("http://127.0.0.1:1/cgi-bin/", **extra)
    return Renderer.for_target(config.receivers[0].targets[0], config)


def test_small_group_is_one_message_with_details() -> None:
    messages = renderer().render(Notification.model_validate(samples.node_down(2)))
    assert len(messages) == 1
    content = messages[0].content
    assert "NodeDown" in content and "critical" in content
    assert "instance=10.0.0.0:9100" in content and "instance=10.0.0.1:9100" in content
    assert "节点 10.0.0.0 宕机" in content
    assert "2026-11-28 17:02:09" in content  # 09:02:09Z shown in Asia/Shanghai
    assert "https://runbooks.example.com/NodeDown" in content
    assert "http://alertmanager:9093/#/alerts" in content
    assert "(1/" not in content


def test_english_text_and_resolved_duration() -> None:
    payload = samples.node_down(1, status="resolved")
    [message] = renderer("text", "en").render(Notification.model_validate(payload))
    assert message.content.startswith("[RESOLVED] NodeDown")
    assert "lasted 10m" in message.content


def test_firing_and_resolved_are_separated_firing_first_most_severe_first() -> None:
    [message] = renderer("text", "en").render(Notification.model_validate(samples.mixed()))
    text = message.content
    assert text.startswith("[FIRING] NodeDown, DiskFull")
    text = text[text.index("\n") :]
    assert text.index("== Firing 3 ==") < text.index("NodeDown instance=10.0.0.0") < text.index("DiskFull")
    assert text.index("DiskFull") < text.index("== Resolved 1 ==") < text.index("10.0.9.9")


def test_hundred_alerts_fit_compactly_with_every_instance_visible() -> None:
    [message] = renderer().render(Notification.model_validate(samples.node_down(100)))
    assert byte_len(message.content) <= 2048
    assert (
        '**NodeDown** <font color="warning">critical</font> ×100 instance: 10.0.0.0:9100, 10.0.0.1:9100'
        in message.content
    )
    for i in range(100):
        assert len(re.findall(rf"\b10\.0\.0\.{i}:9100\b", message.content)) == 1


def test_three_hundred_alerts_split_with_part_labels() -> None:
    messages = renderer().render(Notification.model_validate(samples.node_down(300)))
    assert 1 < len(messages) <= 5
    for index, message in enumerate(messages, 1):
        assert byte_len(message.content) <= 2048
        assert f"({index}/{len(messages)})" in message.content
    everything = "\n".join(m.content for m in messages)
    for i in range(300):  # each alert shown, once
        assert len(re.findall(rf"\b10\.0\.{i // 256}\.{i % 256}:9100\b", everything)) == 1


def test_digest_is_compact_and_says_how_many_notifications() -> None:
    notification = Notification.model_validate({**samples.node_down(3), "digest_of": 7})
    [message] = renderer().render(notification)
    assert message.content.startswith("## 【告警汇总】NodeDown")
    assert "合并了 7 条通知" in message.content
    assert "×3 instance: 10.0.0.0:9100, 10.0.0.1:9100, 10.0.0.2:9100" in message.content


def test_cap_reached_last_message_counts_left_out_alerts() -> None:
    messages = renderer(max_messages=2).render(Notification.model_validate(samples.node_down(900)))
    assert len(messages) == 2
    # Counted from what a person reads: each alert is its instance, shown once.
    everything = "\n".join(m.content for m in messages)
    shown = sum(1 for i in range(900) if re.search(rf"\b10\.0\.{i // 256}\.{i % 256}:9100\b", everything))
    assert 0 < shown < 900
    assert f"另有 {900 - shown} 条告警未显示" in messages[-1].content
    assert "http://alertmanager:9093/#/alerts" in messages[-1].content


def test_textcard_fits_title_and_description() -> None:
    messages = renderer("textcard").render(Notification.model_validate(samples.node_down(40)))
    assert messages  # the checks below hold for every message: there must be some
    for message in messages:
        assert byte_len(message.title) <= TEXTCARD_TITLE_LIMIT
        assert byte_len(message.content) <= TEXTCARD_DESCRIPTION_LIMIT
        assert message.url.startswith("http")
        assert len(message.btntxt) <= 4


def test_format_duration() -> None:
    assert format_duration(3725, STRINGS["en"]) == "1h2m"
    assert format_duration(59, STRINGS["zh"]) == "59秒"
    assert format_duration(90061, STRINGS["en"]) == "1d1h"


# -- property: any notification, any msgtype → every message within the byte limit ------------------

label_text = st.text(
    alphabet=st.sampled_from([*list("abcXYZ019-_.:/ "), "节", "点", "宕", "机", "é", "🔥"]),
    min_size=1,
    max_size=60,
)


@st.composite
def notifications(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(min_value=1, max_value=60))
    alerts = []
    for i in range(count):
        status = draw(st.sampled_from(["firing", "resolved"]))
        alerts.append(
            {
                "status": status,
                "labels": {
                    "alertname": draw(st.sampled_from(["NodeDown", "磁盘满", "HighLatency"])),
                    "instance": f"host-{i}",
                    "severity": draw(st.sampled_from(["critical", "warning", "info"])),
                    "extra": draw(label_text),
                },
                "annotations": {
                    "summary": draw(label_text) * draw(st.integers(1, 30)),
                    "description": draw(label_text),
                },
                "startsAt": "2026-11-28T09:02:09Z",
                "endsAt": "2026-11-28T10:02:09Z" if status == "resolved" else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=" + "x" * draw(st.integers(0, 300)),
            }
        )
    return {
        "status": "firing",
        "receiver": "r",
        "alerts": alerts,
        "groupLabels": {},
        "commonLabels": {},
        "externalURL": "http://am:9093",
    }


@settings(max_examples=60, deadline=None)
@given(notifications(), st.sampled_from(["text", "markdown", "textcard"]), st.sampled_from(["zh", "en"]))
def test_every_message_fits_and_every_alert_is_accounted_for(
    payload: dict[str, Any], msgtype: str, language: str
) -> None:
    messages = renderer(msgtype, language).render(Notification.model_validate(payload))
    assert messages
    for message in messages:
        assert byte_len(message.content) <= LIMITS[msgtype]
        assert byte_len(message.title) <= TEXTCARD_TITLE_LIMIT
    total = len(payload["alerts"])
    everything = "\n".join(m.content for m in messages)
    # Counted from what a person reads: the alerts whose instance is shown.
    shown = sum(1 for i in range(total) if re.search(rf"\bhost-{i}\b", everything))
    if shown < total:
        match = re.search(r"另有 (\d+) 条|(\d+) more alerts", messages[-1].content)
        assert match is not None, messages[-1].content
        assert int(match.group(1) or match.group(2)) == total - shown
    else:
        for i in range(total):
            assert re.search(rf"instance=host-{i}\b", everything), f"host-{i} missing"


# -- user templates --------------------------------------------------------------------------------


def _config_with_template(tmp_path: Path, source: str) -> dict[str, Any]:
    (tmp_path / "custom.j2").write_text(source, encoding="utf-8")
    return {
        "apps": {"ops": {"corp_id": "ww1", "agent_id": 1, "secret": "s3cret-value"}},
        "receivers": [
            {
                "name": "r",
                "targets": [{"app": "ops", "to_user": ["u"], "msgtype": "text", "template": "custom.j2"}],
            }
        ],
    }


def test_user_template_is_used(tmp_path: Path) -> None:
    raw = _config_with_template(
        tmp_path, "{{ total_firing }} firing: {% for a in firing %}{{ a.ident }};{% endfor %}"
    )
    config = parse_config(raw, base_dir=tmp_path)
    [message] = Renderer.for_target(config.receivers[0].targets[0], config).render(
        Notification.model_validate(samples.node_down(2))
    )
    assert message.content == "2 firing: instance=10.0.0.0:9100;instance=10.0.0.1:9100;"


def test_user_template_undefined_name_is_a_config_error_with_line(tmp_path: Path) -> None:
    raw = _config_with_template(tmp_path, "line one\n{{ status }}\n{{ no_such_name }}\n")
    with pytest.raises(
        ConfigError, match=r"receivers\[0\]\.targets\[0\]\.template: .*custom\.j2:3: .*no_such_name"
    ):
        parse_config(raw, base_dir=tmp_path)


def test_user_template_syntax_error_names_the_line(tmp_path: Path) -> None:
    raw = _config_with_template(tmp_path, "ok\n{% for a in alerts %}\nno endfor\n")
    with pytest.raises(ConfigError, match=r"custom\.j2:\d+: "):
        parse_config(raw, base_dir=tmp_path)
