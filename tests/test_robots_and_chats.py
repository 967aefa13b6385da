from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from alertmanager_wecom import samples
from alertmanager_wecom.cli import main
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import (
    SANDBOX_ROBOT_KEY,
)
from alertmanager_wecom.web.app import create_app
from tests.helpers import post, raw_config, wait_until
from tests.servers import serve_in_thread


def robot_entries(state: SimulatorState) -> list[dict[str, Any]]:
    return state.entries("robot:sre")


def with_owner(payload: dict[str, Any], owner: str) -> dict[str, Any]:
    for alert in payload["alerts"]:
        alert["labels"]["owner"] = owner
    return payload


def test_text_robot_mentions_go_in_mentioned_list(relay_with: Any, sim_state: SimulatorState) -> None:
    relay = relay_with(
        {
            "robot": "sre",
            "msgtype": "text",
            "mention": ["zhaoliu"],
            "mention_from": ["labels.owner"],
            "mention_mobile": ["13800000000"],
        }
    )
    assert post(relay, with_owner(samples.node_down(2), "zhangsan")).status_code == 200
    [entry] = wait_until(lambda: robot_entries(sim_state), 10, "the robot message")
    assert entry["mentioned"] == ["zhaoliu", "zhangsan", "mobile:13800000000"]
    assert "<@" not in entry["visible"]


def test_markdown_robot_mentions_are_inside_the_content(relay_with: Any, sim_state: SimulatorState) -> None:
    relay = relay_with({"robot": "sre", "msgtype": "markdown", "mention_from": ["labels.owner"]})
    assert post(relay, with_owner(samples.node_down(2), "lisi")).status_code == 200
    [entry] = wait_until(lambda: robot_entries(sim_state), 10, "the robot message")
    assert entry["mentioned"] == ["lisi"] and entry["visible"].endswith("<@lisi>")


def test_three_hundred_alerts_to_a_robot_fit_4096_bytes_all_visible(
    relay_with: Any, sim_state: SimulatorState
) -> None:
    relay = relay_with({"robot": "sre", "msgtype": "markdown", "mention": ["zhangsan"], "max_messages": 10})
    assert post(relay, samples.node_down(300)).status_code == 200

    def all_visible() -> bool:
        text = "\n".join(e["visible"] for e in robot_entries(sim_state))
        return all(re.search(rf"\b10\.0\.{i // 256}\.{i % 256}:9100\b", text) for i in range(300))

    wait_until(all_visible, 15, "every instance")
    entries = robot_entries(sim_state)
    assert all(e["sent_bytes"] <= 4096 for e in entries)
    assert sim_state.stats()["errors"] == {}  # nothing rejected with 40058
    assert [e["mentioned"] for e in entries].count(["zhangsan"]) == 1  # one @ per notification


def test_twenty_five_notifications_in_a_minute_to_one_robot_none_rejected(
    relay_with: Any, sim_state: SimulatorState
) -> None:
    relay = relay_with({"robot": "sre", "msgtype": "markdown"})
    for i in range(25):
        assert post(relay, samples.node_down(2, cluster=f"c{i}")).status_code == 200

    def all_visible() -> bool:
        text = "\n".join(e["visible"] for e in robot_entries(sim_state))
        return all(f"cluster=c{i} " in text for i in range(25))

    wait_until(all_visible, 30, "every notification")
    assert "45009" not in sim_state.stats()["errors"]
    assert len(robot_entries(sim_state)) <= 18


def test_markdown_v2_robot(relay_with: Any, sim_state: SimulatorState) -> None:
    relay = relay_with({"robot": "sre", "msgtype": "markdown_v2"})
    assert post(relay, samples.node_down(300)).status_code == 200  # compact: a list item per alert name
    entries = wait_until(lambda: robot_entries(sim_state), 10, "the robot messages")
    assert all(e["msgtype"] == "markdown_v2" and "<font" not in e["visible"] for e in entries)
    assert "- **NodeDown**" in entries[0]["visible"]


def test_wrong_robot_key_is_a_dead_letter_and_never_logged(
    relay_with: Any, sim_state: SimulatorState, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-robot-key-123456"
    with caplog.at_level(logging.DEBUG):
        relay = relay_with({"robot": "sre", "msgtype": "text"}, robot_key=wrong)
        assert post(relay, samples.node_down(1)).status_code == 200
        wait_until(lambda: any(r.levelno == logging.ERROR for r in caplog.records), 10, "the error")
    error = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert "93000" in error and "copy the webhook URL again" in error
    assert wrong not in caplog.text and SANDBOX_ROBOT_KEY not in caplog.text
    assert httpx.get(f"{relay}/readyz").json()["dead"] == 1


def test_app_chat_created_from_the_cli_then_delivered(
    relay_with: Any, sim_state: SimulatorState, simulator: str, tmp_path: Path
) -> None:
    config_file = tmp_path / "chat.yaml"
    config_file.write_text(yaml.safe_dump(raw_config(simulator, tmp_path, {"app": "ops", "to_user": ["x"]})))
    created = CliRunner().invoke(
        main,
        [
            "appchat",
            "create",
            "--config",
            str(config_file),
            "--app",
            "ops",
            "--name",
            "值班群",
            "--user",
            "zhangsan",
            "--user",
            "lisi",
            "--chatid",
            "oncall1",
        ],
    )
    assert created.exit_code == 0, created.output
    assert "created app chat oncall1" in created.output
    shown = CliRunner().invoke(
        main, ["appchat", "show", "--config", str(config_file), "--app", "ops", "oncall1"]
    )
    assert "'值班群'" in shown.output and "zhangsan, lisi" in shown.output
    missing = CliRunner().invoke(
        main, ["appchat", "show", "--config", str(config_file), "--app", "ops", "nope"]
    )
    assert missing.exit_code == 1 and "86003" in missing.output
    relay = relay_with({"app": "ops", "chat": "oncall1", "msgtype": "text"})
    assert post(relay, samples.node_down(2)).status_code == 200
    [entry] = wait_until(lambda: sim_state.entries("chat:oncall1"), 10, "the chat message")
    assert "instance=10.0.0.1:9100" in entry["visible"]


def test_check_covers_robots_and_chats(simulator: str, sim_state: SimulatorState, tmp_path: Path) -> None:
    config_file = tmp_path / "check.yaml"
    raw = raw_config(
        simulator, tmp_path, {"robot": "sre", "msgtype": "text"}, {"app": "ops", "chat": "nochat"}
    )
    config_file.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(main, ["check", "--config", str(config_file)])
    assert "OK   receiver default target 1 (robot sre): test message sent to robot:sre" in result.output
    assert "FAIL receiver default target 2 (app ops, chat nochat): WeCom errcode 86003" in result.output
    raw["robots"]["sre"]["key"] = "not-the-key"
    config_file.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(main, ["check", "--config", str(config_file)])
    assert "WeCom errcode 93000" in result.output and "copy the webhook URL again" in result.output
    assert "not-the-key" not in result.output


def test_robot_configured_by_its_full_webhook_url(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    raw = raw_config(simulator, tmp_path, {"robot": "sre", "msgtype": "text"})
    raw["robots"]["sre"] = {"url": f"{simulator}/cgi-bin/webhook/send?key={SANDBOX_ROBOT_KEY}"}
    with serve_in_thread(create_app(parse_config(raw))) as relay:
        assert post(relay, samples.node_down(1)).status_code == 200
        [entry] = wait_until(lambda: robot_entries(sim_state), 10, "the robot message")
    assert "NodeDown" in entry["visible"]
    assert SANDBOX_ROBOT_KEY not in repr(parse_config(raw))
