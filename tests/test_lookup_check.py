"""`check` and `send` with email:/mobile: recipients (wecom/lookup_check.py), against the simulator over
loopback HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from alertmanager_wecom.channels.checks import CheckResult, run_checks
from alertmanager_wecom.cli import main
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import SANDBOX_SECRET
from tests.helpers import raw_config

pytestmark = pytest.mark.anyio


async def checks(simulator: str, tmp_path: Path, *targets: dict[str, Any]) -> list[CheckResult]:
    config = parse_config(raw_config(simulator, tmp_path, *targets))
    async with httpx.AsyncClient(timeout=5) as client:
        return await run_checks(config, client)


def look_up(results: list[CheckResult]) -> CheckResult:
    [result] = [r for r in results if "look-up" in r.subject]
    return result


async def test_a_written_email_is_looked_up_and_the_test_message_reaches_the_member(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    results = await checks(simulator, tmp_path, {"app": "ops", "to_user": ["email:lisi@sandbox.example"]})
    result = look_up(results)
    assert result.ok and "is member lisi" in result.message, result.line()
    assert all(r.ok for r in results), [r.line() for r in results]
    assert [e["msgtype"] for e in sim_state.entries("lisi")] == ["text"]


async def test_templates_only_probe_the_permission_once_per_app(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    templated = {
        "app": "ops",
        "to_user": ["email:{{ labels.owner_email }}"],
        "fallback": {"to_user": ["lisi"]},
    }
    result = look_up(await checks(simulator, tmp_path, templated, {**templated, "msgtype": "text"}))
    assert result.ok and "allowed" in result.message
    assert sim_state.stats()["calls"]["user/get_userid_by_email"] == 1


async def test_without_the_contacts_permission_check_says_where_to_grant_it(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    sim_state.settings.corps[0].apps[0].contacts = False
    result = look_up(await checks(simulator, tmp_path, {"app": "ops", "to_user": ["mobile:13800000001"]}))
    assert not result.ok and "60011" in result.message
    assert "通讯录" in result.message and "API permissions" in result.message
    assert SANDBOX_SECRET not in result.line()
    assert not any(t in result.line() for t in sim_state.issued_tokens)


async def test_a_written_email_that_finds_nobody_fails_the_check(simulator: str, tmp_path: Path) -> None:
    result = look_up(
        await checks(simulator, tmp_path, {"app": "ops", "to_user": ["email:ghost@sandbox.example"]})
    )
    assert not result.ok and "no WeCom member has this email" in result.message


def test_send_takes_an_email_or_a_mobile_and_says_when_it_finds_nobody(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    config = str(tmp_path / "config.yaml")
    Path(config).write_text(
        json.dumps(raw_config(simulator, tmp_path, {"app": "ops", "to_user": ["lisi"]})), encoding="utf-8"
    )
    sent = CliRunner().invoke(
        main, ["send", "--config", config, "--app", "ops", "--to", "mobile:13800000003", "hi"]
    )
    assert sent.exit_code == 0, sent.output
    assert [e["visible"] for e in sim_state.entries("wangwu")] == ["hi"]
    missed = CliRunner().invoke(
        main, ["send", "--config", config, "--app", "ops", "--to", "email:ghost@sandbox.example", "hi"]
    )
    assert (
        missed.exit_code == 1 and "no WeCom member has this email: 'ghost@sandbox.example'" in missed.output
    )
    assert SANDBOX_SECRET not in missed.output
