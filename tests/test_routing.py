from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.config import AppTarget, RobotTarget, Target, parse_target
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.ingest.routing import Router
from alertmanager_wecom.loading import parse_config


def config(*targets: dict[str, Any]) -> Any:
    return parse_config(
        {
            "apps": {"ops": {"corp_id": "ww1", "agent_id": 1, "secret": "s3cret-value"}},
            "robots": {"sre": {"key": "robot-key-value"}},
            "receivers": [{"name": "r", "targets": list(targets)}],
        }
    )


def payload() -> dict[str, Any]:
    body = samples.node_down(2)
    body["alerts"][0]["labels"].update({"severity": "critical", "owner": "zhangsan", "team": "db"})
    body["alerts"][1]["labels"].update({"severity": "warning", "owner": "lisi", "team": "web"})
    return body


def app(target: Target) -> AppTarget:
    assert isinstance(target, AppTarget)
    return target


def route(cfg: Any, body: dict[str, Any]) -> list[tuple[Target, list[str], str | None]]:
    text = json.dumps(body)
    jobs = Router(cfg).route("r", Notification.model_validate(body), text)
    return [
        (
            parse_target(j.target_spec),
            [a["labels"]["instance"] for a in json.loads(j.payload)["alerts"]],
            j.dead_reason,
        )
        for j in jobs
    ]


def test_a_critical_rule_adds_a_party_and_others_get_everything() -> None:
    routed = route(
        config(
            {"app": "ops", "to_user": ["zhangsan"]},
            {"app": "ops", "to_party": ["2"], "match": ['severity="critical"']},
        ),
        payload(),
    )
    assert [(app(t).to_user, app(t).to_party, alerts) for t, alerts, _ in routed] == [
        (["zhangsan"], [], ["10.0.0.0:9100", "10.0.0.1:9100"]),
        ([], ["2"], ["10.0.0.0:9100"]),
    ]


def test_continue_false_keeps_alerts_from_later_targets() -> None:
    routed = route(
        config(
            {"app": "ops", "to_user": ["dba"], "match": ['team=~"db|infra"'], "continue": False},
            {"app": "ops", "to_user": ["everyone-else"]},
        ),
        payload(),
    )
    assert [(app(t).to_user, alerts) for t, alerts, _ in routed] == [
        (["dba"], ["10.0.0.0:9100"]),
        (["everyone-else"], ["10.0.0.1:9100"]),
    ]


def test_no_matching_target_means_no_job() -> None:
    assert route(config({"app": "ops", "to_user": ["x"], "match": ['env="nowhere"']}), payload()) == []


def test_templated_recipients_group_alerts_by_person() -> None:
    routed = route(config({"app": "ops", "to_user": ["{{ labels.owner }}", "boss"]}), payload())
    assert sorted((app(t).to_user, alerts) for t, alerts, _ in routed) == [
        (["boss", "lisi"], ["10.0.0.1:9100"]),
        (["boss", "zhangsan"], ["10.0.0.0:9100"]),
    ]


def test_invalid_templated_recipient_is_reported_not_dropped(caplog: pytest.LogCaptureFixture) -> None:
    body = payload()
    body["alerts"][1]["labels"]["owner"] = "李 四!"
    del body["alerts"][0]["labels"]["owner"]
    with caplog.at_level(logging.WARNING):
        routed = route(config({"app": "ops", "to_user": ["{{ labels.owner }}"]}), body)
    [(_target, alerts, dead)] = routed
    assert alerts == ["10.0.0.0:9100", "10.0.0.1:9100"]
    assert (
        dead is not None
        and "'李 四!', which is not a valid WeCom id" in dead
        and "is empty for this alert" in dead
    )
    assert any("李" in r.getMessage() for r in caplog.records)


def test_robot_targets_and_mentions_validate() -> None:
    cfg = config(
        {"robot": "sre", "msgtype": "markdown", "mention": ["@all"], "mention_from": ["labels.owner"]}
    )
    [(target, _alerts, _dead)] = route(cfg, payload())
    assert isinstance(target, RobotTarget)
    assert target.robot == "sre" and target.mention == ["@all"]


@pytest.mark.parametrize(
    "targets",
    [
        [{"app": "ops", "to_user": ["a"]}],
        [{"app": "ops", "to_user": ["a"]}, {"robot": "sre"}],
        [{"app": "ops", "to_user": ["a"], "continue": False}, {"robot": "sre"}],
        [
            {"robot": "sre"},
            {"app": "ops", "to_user": ["a"], "continue": False},
            {"app": "ops", "to_user": ["b"]},
        ],
    ],
)
@pytest.mark.parametrize("alerts", [0, 2])
def test_the_webhook_shortcut_routes_like_the_router(targets: list[dict[str, Any]], alerts: int) -> None:
    # Receivers whose targets neither match nor template skip the model on the webhook's path.
    router = Router(config(*targets))
    body = samples.node_down(alerts)
    text = json.dumps(body)
    assert router.route_whole("r", text, alerts) == router.route("r", Notification.model_validate(body), text)


def test_the_webhook_shortcut_declines_receivers_that_route_by_alert() -> None:
    matching = config({"app": "ops", "to_user": ["a"]}, {"robot": "sre", "match": ['severity="critical"']})
    templated = config({"app": "ops", "to_user": ["{{ labels.owner }}"]})
    assert Router(matching).route_whole("r", "{}", 2) is None
    assert Router(templated).route_whole("r", "{}", 2) is None
