from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from alertmanager_wecom import samples
from alertmanager_wecom.cli import main
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET


def write_config(
    tmp_path: Path, simulator: str, app: dict[str, Any] | None = None, to_user: list[str] | None = None
) -> Path:
    config = {
        "wecom": {"api_url": simulator + "/cgi-bin/"},
        "apps": {
            "ops": {
                "corp_id": SANDBOX_CORP_ID,
                "agent_id": SANDBOX_AGENT_ID,
                "secret": "${AMW_SECRET}",
                **(app or {}),
            }
        },
        "receivers": [{"name": "default", "targets": [{"app": "ops", "to_user": to_user or ["zhangsan"]}]}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(main, list(args), input=input, env={"AMW_SECRET": SANDBOX_SECRET})


def test_check_all_good(tmp_path: Path, simulator: str, sim_state: SimulatorState) -> None:
    result = run("check", "--config", str(write_config(tmp_path, simulator)))
    assert result.exit_code == 0, result.output
    assert "OK   app ops gettoken" in result.output
    assert "OK   receiver default target 1 (app ops): test message sent to app:ops→zhangsan" in result.output
    assert "alertmanager-wecom check: test message" in sim_state.entries("zhangsan")[0]["visible"]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("trusted_ip", "60020 (caller IP is not a trusted IP): add 127.0.0.1 under App Management"),
        ("bad_secret", "40001 (invalid secret): the app's Secret does not belong to this corp_id"),
        ("bad_corp", "40013 (invalid corpid)"),
        ("bad_agent", "40056 (invalid agentid): agent_id is wrong"),
        ("outside_visible", "81013 (all recipients invalid or outside the app's visible range)"),
        ("partial", "WeCom skipped user: ghost"),
    ],
)
def test_check_explains_each_setup_mistake(
    tmp_path: Path, simulator: str, sim_state: SimulatorState, case: str, expected: str
) -> None:
    app: dict[str, Any] = {}
    to_user = None
    if case == "trusted_ip":
        sim_state.set_trusted_ips(SANDBOX_AGENT_ID, ["203.0.113.1"])
    elif case == "bad_secret":
        app = {"secret": "wrong-secret-123"}
    elif case == "bad_corp":
        app = {"corp_id": "ww-not-mine"}
    elif case == "bad_agent":
        app = {"agent_id": 1000099}
    elif case == "outside_visible":
        to_user = ["ghost"]
    elif case == "partial":
        to_user = ["zhangsan", "ghost"]
    result = run("check", "--config", str(write_config(tmp_path, simulator, app, to_user)))
    assert result.exit_code == 1
    assert expected in result.output
    assert "FAIL" in result.output
    assert "wrong-secret-123" not in result.output and SANDBOX_SECRET not in result.output


def test_check_does_not_send_to_a_templated_recipient(
    tmp_path: Path, simulator: str, sim_state: SimulatorState
) -> None:
    """`{{ labels.owner }}` is filled in from each alert: check has no one to send to, and says so rather
    than sending to the literal text (an error for a userid nobody has, and a call for nothing)."""
    path = write_config(tmp_path, simulator, to_user=["{{ labels.owner }}"])
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["receivers"][0]["targets"].append({"app": "ops", "to_user": ["lisi"]})
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = run("check", "--config", str(path))
    assert result.exit_code == 0, result.output
    assert (
        "OK   receiver default target 1 (app ops): not tested: its recipients come from alert data "
        "(to_user: {{ labels.owner }})" in result.output
    )
    assert "test message sent to app:ops→lisi" in result.output  # the other target is still tested
    assert [e["recipient"] for e in sim_state.entries()] == ["lisi"]
    assert sim_state.stats()["calls"].get("message/send") == 1


def test_check_unreachable_api(tmp_path: Path) -> None:
    result = run("check", "--config", str(write_config(tmp_path, "http://127.0.0.1:9")))
    assert result.exit_code == 1
    assert "cannot reach WeCom gettoken" in result.output


def test_send_argument_and_stdin_and_long_text(
    tmp_path: Path, simulator: str, sim_state: SimulatorState
) -> None:
    config = str(write_config(tmp_path, simulator))
    assert run("send", "--config", config, "--app", "ops", "--to", "lisi", "我就试一下").exit_code == 0
    assert (
        run("send", "--config", config, "--app", "ops", "--to", "lisi", input="from stdin\n").exit_code == 0
    )
    long_text = "\n".join(f"第 {i} 行 告警内容" for i in range(300))
    result = run("send", "--config", config, "--app", "ops", "--to", "lisi", long_text)
    assert result.exit_code == 0 and "sent 4 message(s)" in result.output  # 7.3 KB in ≤ 2048-byte parts
    entries = sim_state.entries("lisi")
    assert [e["visible"] for e in entries[:2]] == ["我就试一下", "from stdin"]
    assert not any(e["truncated"] for e in entries)
    assert "\n".join(e["visible"] for e in entries[2:]) == long_text


def test_send_reports_failure(tmp_path: Path, simulator: str) -> None:
    config = str(write_config(tmp_path, simulator))
    result = run("send", "--config", config, "--app", "ops", "--to", "ghost", "hi")
    assert result.exit_code == 1 and "81013" in result.output
    assert "unknown app" in run("send", "--config", config, "--app", "nope", "--to", "x", "hi").output


def test_render_prints_messages_with_byte_counts(tmp_path: Path) -> None:
    payload = tmp_path / "p.json"
    payload.write_text(json.dumps(samples.node_down(300)), encoding="utf-8")
    result = run("render", str(payload))
    assert result.exit_code == 0
    headers = [line for line in result.output.splitlines() if line.startswith("--- ")]
    assert len(headers) > 1
    assert all(int(h.split("·")[3].split("/")[0]) <= 2048 for h in headers)
    as_json = json.loads(run("render", "--json", "--msgtype", "textcard", str(payload)).output)
    assert all(m["bytes"] <= 512 for m in as_json)


def test_render_with_config_and_bad_payload(tmp_path: Path, simulator: str) -> None:
    config = str(write_config(tmp_path, simulator))
    payload = tmp_path / "bad.json"
    payload.write_text('{"status": "firing"}', encoding="utf-8")
    result = run("render", "--config", config, "--receiver", "default", str(payload))
    assert result.exit_code == 1 and "not an Alertmanager webhook body" in result.output


def test_check_config(tmp_path: Path, simulator: str) -> None:
    result = run("check-config", str(write_config(tmp_path, simulator)))
    assert result.exit_code == 0 and "OK — 1 app(s), 1 receiver(s), 1 target(s)" in result.output


def _cli(args: list[str], lang: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "ALERTMANAGER_WECOM_LANG"))
    }
    env["LANG"] = lang
    return subprocess.run(
        [sys.executable, "-m", "alertmanager_wecom", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_the_cli_speaks_chinese_to_a_chinese_locale_or_on_request() -> None:
    zh = _cli(["--help"], "zh_CN.UTF-8")
    assert zh.returncode == 0 and "用法：" in zh.stdout and "运行告警转发服务" in zh.stdout
    assert "显示本帮助并退出" in zh.stdout and "Show this message" not in zh.stdout
    en = _cli(["--help"], "en_US.UTF-8")
    assert "Usage:" in en.stdout and "Run the relay" in en.stdout and "用法" not in en.stdout
    asked = _cli(["--lang", "zh", "outbox", "--help"], "C")
    assert "重新排队死信" in asked.stdout
    english = _cli(["--lang", "en", "render", "--help"], "zh_CN.UTF-8")
    assert "Usage:" in english.stdout
    wrong = _cli(["nosuch"], "zh_CN.UTF-8")
    assert wrong.returncode == 2 and "错误：没有命令 'nosuch'" in wrong.stderr
