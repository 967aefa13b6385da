"""email:/mobile: recipients through the running service and the simulator over loopback HTTP: a label's
address reaches that person's inbox, an unknown one goes to the fallback or the dead letters, the cache
spares the second alert its look-up, and robots @mention mobile numbers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.simulator.model import SANDBOX_SECRET, Faults
from alertmanager_wecom.web.app import create_app
from tests.helpers import app_entries, dead_letters, post, raw_config, wait_until
from tests.servers import serve_in_thread

BY_EMAIL = {"app": "ops", "msgtype": "text", "to_user": ["email:{{ labels.owner_email }}"]}


def alerting(count: int, **labels: str) -> dict[str, Any]:
    payload = samples.node_down(count)
    for alert in payload["alerts"]:
        alert["labels"].update(labels)
        alert["fingerprint"] = samples.fingerprint(alert["labels"])
    return payload


def email_lookups(state: SimulatorState) -> int:
    return int(state.stats()["calls"].get("user/get_userid_by_email", 0))


def test_a_label_email_reaches_that_person_and_the_second_alert_needs_no_look_up(
    relay_with: Any, sim_state: SimulatorState
) -> None:
    relay = relay_with(BY_EMAIL)
    assert post(relay, alerting(1, owner_email="wangwu@sandbox.example", cluster="a")).status_code == 200
    [entry] = wait_until(lambda: sim_state.entries("wangwu"), 10, "wangwu's message")
    assert "10.0.0.0:9100" in entry["visible"] and list(app_entries(sim_state)) == ["wangwu"]
    assert email_lookups(sim_state) == 1
    # Another notification for the same address: from the cache.
    assert post(relay, alerting(1, owner_email="wangwu@sandbox.example", cluster="b")).status_code == 200
    wait_until(lambda: len(sim_state.entries("wangwu")) == 2, 10, "the second message")
    assert email_lookups(sim_state) == 1


def test_an_unknown_email_goes_to_the_fallback(
    relay_with: Any, sim_state: SimulatorState, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    relay = relay_with({**BY_EMAIL, "fallback": {"to_user": ["zhaoliu"]}})
    with caplog.at_level(logging.INFO):
        assert post(relay, alerting(2, owner_email="nobody@sandbox.example")).status_code == 200
        [entry] = wait_until(lambda: sim_state.entries("zhaoliu"), 10, "the fallback's message")
    assert "10.0.0.0:9100" in entry["visible"] and "10.0.0.1:9100" in entry["visible"]
    assert list(app_entries(sim_state)) == ["zhaoliu"]
    assert "no WeCom member has this email" in caplog.text and "sent to the fallback" in caplog.text
    assert "no valid recipient" not in dead_letters(tmp_path)
    assert SANDBOX_SECRET not in caplog.text
    assert not any(token in caplog.text for token in sim_state.issued_tokens)


def test_an_unknown_mobile_without_fallback_is_a_dead_letter_naming_the_form(
    relay_with: Any, sim_state: SimulatorState, tmp_path: Path
) -> None:
    relay = relay_with(
        {"app": "ops", "msgtype": "text", "to_user": ["mobile:{{ labels.owner_mobile }}"]},
        {"app": "ops", "msgtype": "text", "to_user": ["mobile:13800000003"]},
    )
    assert post(relay, alerting(1, owner_mobile="13999999999")).status_code == 200
    wait_until(lambda: sim_state.entries("wangwu"), 10, "the message by a written mobile number")
    dead = wait_until(
        lambda: "no WeCom member has this mobile number" in dead_letters(tmp_path) and dead_letters(tmp_path),
        10,
    )
    assert "recipients" in dead and "13999999999" in dead
    assert SANDBOX_SECRET not in dead and not any(t in dead for t in sim_state.issued_tokens)
    assert list(app_entries(sim_state)) == ["wangwu"]


def test_an_app_without_the_contacts_permission_makes_a_dead_letter_that_says_so(
    relay_with: Any, sim_state: SimulatorState, tmp_path: Path
) -> None:
    sim_state.settings.corps[0].apps[0].contacts = False
    relay = relay_with(BY_EMAIL)
    assert post(relay, alerting(1, owner_email="lisi@sandbox.example")).status_code == 200
    dead = wait_until(
        lambda: "通讯录" in dead_letters(tmp_path) and dead_letters(tmp_path), 10, "the dead letter"
    )
    assert "no_permission" in dead and "60011" in dead
    assert app_entries(sim_state) == {}


def test_a_robot_mentions_a_mobile_number(relay_with: Any, sim_state: SimulatorState) -> None:
    relay = relay_with({"robot": "sre", "msgtype": "text", "mention": ["zhangsan", "mobile:13800000002"]})
    assert post(relay, alerting(1)).status_code == 200
    [entry] = wait_until(lambda: sim_state.entries("robot:sre"), 10, "the robot's message")
    assert entry["mentioned"] == ["zhangsan", "mobile:13800000002"]
    # Robots need no look-up: the number goes to WeCom as it is.
    assert "user/getuserid" not in sim_state.stats()["calls"]


def test_the_daily_bound_holds_across_a_restart(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    raw = raw_config(simulator, tmp_path, BY_EMAIL)
    raw["wecom"]["lookup_unknown_per_day"] = 1
    with serve_in_thread(create_app(parse_config(raw))) as relay:
        assert post(relay, alerting(1, owner_email="ghost1@sandbox.example")).status_code == 200
        wait_until(lambda: "no WeCom member has this email" in dead_letters(tmp_path), 10, "the first miss")
    assert email_lookups(sim_state) == 1
    with serve_in_thread(create_app(parse_config(raw))) as relay:
        assert post(relay, alerting(1, owner_email="ghost2@sandbox.example")).status_code == 200
        dead = wait_until(lambda: "not looked up" in dead_letters(tmp_path) and dead_letters(tmp_path), 10)
    assert "wecom.lookup_unknown_per_day" in dead and email_lookups(sim_state) == 1


def test_a_look_up_that_fails_for_now_is_retried(relay_with: Any, sim_state: SimulatorState) -> None:
    sim_state.set_faults(Faults(rate=1.0, kinds=["busy"]))
    relay = relay_with(BY_EMAIL)
    assert post(relay, alerting(1, owner_email="lisi@sandbox.example")).status_code == 200
    wait_until(lambda: sum(sim_state.stats()["faults_injected"].values()) >= 2, 10, "failed tries")
    assert sim_state.entries("lisi") == []
    sim_state.set_faults(Faults())
    wait_until(lambda: sim_state.entries("lisi"), 10, "the message once WeCom answers again")
    assert email_lookups(sim_state) == 1
