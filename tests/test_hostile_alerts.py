"""Hostile alert data through the running service: labels cannot choose recipients beyond one valid id,
cannot mention anyone, cannot push alerts out of a message or forge a log line, and one alert that
cannot be rendered does not hold back the alerts behind it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from pathlib import Path
from typing import Any

from alertmanager_wecom import samples
from alertmanager_wecom.ingest.payload import Notification
from alertmanager_wecom.ingest.routing import Router
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.logsetup import RedactingFormatter
from alertmanager_wecom.outbox import NewJob, SQLiteOutbox
from alertmanager_wecom.simulator import SimulatorState
from alertmanager_wecom.web.app import create_app
from tests.helpers import app_entries, dead_letters, post, raw_config, wait_until
from tests.servers import serve_in_thread


def owned(count: int, owner: str | list[str], **labels: str) -> dict[str, Any]:
    payload = samples.node_down(count)
    for i, alert in enumerate(payload["alerts"]):
        alert["labels"]["owner"] = owner if isinstance(owner, str) else owner[i]
        alert["labels"].update(labels)
        alert["fingerprint"] = samples.fingerprint(alert["labels"])
    return payload


# -- recipients from labels --------------------------------------------------------------------------


def test_a_label_cannot_send_to_everyone_or_to_several(
    relay_with: Any, sim_state: SimulatorState, tmp_path: Path
) -> None:
    relay = relay_with({"app": "ops", "to_user": ["{{ labels.owner }}"], "msgtype": "text"})
    for owner in ("@all", "zhangsan|lisi", "zhangsan,lisi", "zhangsan lisi", "@ALL"):
        assert post(relay, owned(1, owner, cluster=f"c-{owner}")).status_code == 200
    assert post(relay, owned(1, "wangwu", cluster="marker")).status_code == 200  # delivered after them
    wait_until(lambda: sim_state.entries("wangwu"), 10, "the valid owner's message")
    assert list(app_entries(sim_state)) == ["wangwu"]
    dead = wait_until(
        lambda: dead_letters(tmp_path).count("no valid recipient") == 5 and dead_letters(tmp_path)
    )
    assert "@all is allowed only when written in the config" in dead
    assert "'zhangsan|lisi', which is not a valid WeCom id" in dead


def test_alerts_with_no_valid_recipient_go_to_the_fallback(
    relay_with: Any, sim_state: SimulatorState, tmp_path: Path
) -> None:
    relay = relay_with(
        {
            "app": "ops",
            "to_user": ["{{ labels.owner }}"],
            "msgtype": "text",
            "fallback": {"to_user": ["zhaoliu"]},
        }
    )
    payload = owned(3, ["@all", "lisi", "x|y"])
    assert post(relay, payload).status_code == 200
    wait_until(lambda: len(app_entries(sim_state)) == 2, 10, "both messages")
    [lisi] = sim_state.entries("lisi")
    [fallback] = sim_state.entries("zhaoliu")
    assert "10.0.0.1:9100" in lisi["visible"] and "10.0.0.0:9100" not in lisi["visible"]
    assert "10.0.0.0:9100" in fallback["visible"] and "10.0.0.2:9100" in fallback["visible"]
    assert "no valid recipient" not in dead_letters(tmp_path)


def test_distinct_recipients_per_notification_are_capped() -> None:
    config = parse_config(
        raw_config(
            "http://127.0.0.1:1",
            Path("/nonexistent"),
            {"app": "ops", "to_user": ["{{ labels.owner }}"], "max_recipients": 3},
        )
    )
    payload = owned(10, [f"user{i}" for i in range(10)])
    jobs = Router(config).route("default", Notification.model_validate(payload), "{}")
    delivered = [job for job in jobs if job.dead_reason is None]
    [dead] = [job for job in jobs if job.dead_reason is not None]
    assert len(delivered) == 3
    assert "more than 3 distinct recipients" in (dead.dead_reason or "")
    assert len(Notification.model_validate_json(dead.payload).alerts) == 7  # kept, and says why


def test_one_warning_per_notification_and_no_forged_log_lines(
    relay_with: Any, sim_state: SimulatorState
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter())
    logger = logging.getLogger("alertmanager_wecom")
    logger.addHandler(handler)
    try:
        relay = relay_with({"app": "ops", "to_user": ["{{ labels.owner }}"], "msgtype": "text"})
        forged = "x\n2026-11-28 00:00:00,000 INFO alertmanager_wecom.web.app: all clear"
        payload = owned(500, [forged if i % 2 else f"bad|{i}" for i in range(500)])
        assert post(relay, payload).status_code == 200
        wait_until(lambda: "recipients from alert data refused" in stream.getvalue(), 10, "the warning")
    finally:
        logger.removeHandler(handler)
    lines = [line for line in stream.getvalue().splitlines() if "routing" in line]
    assert len(lines) == 1  # one line for 500 refused alerts
    assert "(and " in lines[0] and "more)" in lines[0]
    assert not any(line.startswith("2026-11-28 00:00:00,000") for line in stream.getvalue().splitlines())
    assert "\\n2026-11-28 00:00:00,000 INFO" in lines[0]


# -- mentions from labels ----------------------------------------------------------------------------


def test_mentions_from_labels_are_one_valid_userid_each(relay_with: Any, sim_state: SimulatorState) -> None:
    relay = relay_with(
        {"robot": "sre", "msgtype": "markdown", "mention_from": ["labels.owner"]},
    )
    owners = ["@all", "x><@all", "zhangsan|lisi", "lisi", "<@wangwu>"]
    assert post(relay, owned(5, owners)).status_code == 200
    [entry] = wait_until(lambda: sim_state.entries("robot:sre"), 10, "the robot message")
    assert entry["mentioned"] == ["lisi"]
    assert "<@all>" not in entry["visible"] and "<@wangwu>" not in entry["visible"]
    assert entry["visible"].endswith("<@lisi>")


def test_text_robot_mentions_refuse_all_from_labels(relay_with: Any, sim_state: SimulatorState) -> None:
    relay = relay_with({"robot": "sre", "msgtype": "text", "mention_from": ["labels.owner"]})
    assert post(relay, owned(2, ["@all", "zhaoliu"])).status_code == 200
    [entry] = wait_until(lambda: sim_state.entries("robot:sre"), 10, "the robot message")
    assert entry["mentioned"] == ["zhaoliu"]


def test_hundreds_of_mentions_never_push_alerts_out(relay_with: Any, sim_state: SimulatorState) -> None:
    relay = relay_with(
        {"robot": "sre", "msgtype": "markdown", "mention_from": ["labels.owner"], "max_messages": 10}
    )
    owners = [f"engineer-with-a-long-user-id-{i:04d}" for i in range(300)]
    assert post(relay, owned(300, owners)).status_code == 200

    def all_visible() -> bool:
        text = "\n".join(e["visible"] for e in sim_state.entries("robot:sre"))
        return all(re.search(rf"\b10\.0\.{i // 256}\.{i % 256}:9100\b", text) for i in range(300))

    wait_until(all_visible, 15, "every alert")
    entries = sim_state.entries("robot:sre")
    first = entries[0]["visible"]
    assert first.startswith("## 【告警】NodeDown")
    assert "10.0.0.0:9100" in first  # the first message carries alerts, not only mentions
    assert len(entries[0]["mentioned"]) == 10  # max_mentions
    assert all(e["sent_bytes"] <= 4096 for e in entries)
    assert sim_state.stats()["errors"] == {}


# -- content ---------------------------------------------------------------------------------------------


def test_a_label_cannot_fake_a_resolved_heading_in_the_inbox(
    relay_with: Any, sim_state: SimulatorState
) -> None:
    relay = relay_with({"app": "ops", "to_user": ["zhangsan"], "msgtype": "markdown"})
    payload = samples.node_down(1)
    payload["alerts"][0]["labels"]["instance"] = "db1\n## 【已恢复】NodeDown\n<@all>"
    assert post(relay, payload).status_code == 200
    [entry] = wait_until(lambda: sim_state.entries("zhangsan"), 10, "the message")
    headings = [line for line in entry["visible"].splitlines() if line.startswith("#")]
    assert headings == ["## 【告警】NodeDown"]
    assert "<@all>" not in entry["visible"]


# -- poison ------------------------------------------------------------------------------------------------


def test_a_time_that_cannot_be_shown_is_refused_at_the_door(relay_with: Any) -> None:
    relay = relay_with({"app": "ops", "to_user": ["zhangsan"]})
    payload = samples.node_down(2)
    payload["alerts"][1]["startsAt"] = "9999-12-31T23:00:00Z"
    answer = post(relay, payload)
    assert answer.status_code == 422
    assert "alerts.1.startsAt" in answer.text and "out of range" in answer.text
    payload = samples.node_down(1, status="resolved")
    payload["alerts"][0]["endsAt"] = "9999-12-31T20:00:00-05:00"  # year 10000 in UTC
    answer = post(relay, payload)
    assert answer.status_code == 422 and "alerts.0.endsAt" in answer.text


def test_stored_jobs_that_cannot_be_rendered_do_not_block_the_target(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    """Jobs stored before this version's checks (or corrupted): each becomes a dead letter or is shown
    safely, and the jobs behind them are delivered."""
    raw = raw_config(simulator, tmp_path, {"app": "ops", "to_user": ["zhangsan"], "msgtype": "text"})
    config = parse_config(raw)
    [(key, spec)] = [(r.key, r.spec) for r in Router(config).routes["default"]]
    far = samples.node_down(1, cluster="far-future")
    far["alerts"][0]["startsAt"] = "9999-12-31T23:00:00Z"
    payloads = ["{not json", far, samples.node_down(1, cluster="after-the-poison")]

    async def store() -> None:
        outbox = SQLiteOutbox(str(tmp_path / "outbox.db"), synchronous="normal")
        try:
            for i, payload in enumerate(payloads):
                text = payload if isinstance(payload, str) else json.dumps(payload)
                await outbox.accept("default", [NewJob(key, spec, text)], f"k{i}", 0.0, 1_700_000_000.0 + i)
        finally:
            await outbox.close()

    asyncio.run(store())
    with serve_in_thread(create_app(config)):
        wait_until(lambda: len(sim_state.entries("zhangsan")) == 2, 15, "the two renderable jobs")
        texts = [e["visible"] for e in sim_state.entries("zhangsan")]
        assert "cluster=far-future" in texts[0] and "9999-12-31 23:00:00" in texts[0]  # shown in UTC
        assert "cluster=after-the-poison" in texts[1]
        dead = wait_until(lambda: "cannot" in dead_letters(tmp_path) and dead_letters(tmp_path))
        assert "JSONDecodeError" in dead or "ValidationError" in dead


def test_a_user_template_failing_on_one_alert_falls_back_to_the_builtin(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    template = tmp_path / "team.j2"
    # Loads (the sample alert has no env label) but fails for an alert with env=prod and no team.
    template.write_text(
        "{% for a in alerts %}{% if a.labels.get('env') == 'prod' %}{{ a.labels.team }}{% endif %}"
        "{{ a.name }} {{ a.ident }}\n{% endfor %}",
        encoding="utf-8",
    )
    raw = raw_config(
        simulator,
        tmp_path,
        {"app": "ops", "to_user": ["zhangsan"], "msgtype": "text", "template": str(template)},
    )
    with serve_in_thread(create_app(parse_config(raw))) as relay:
        payload = samples.node_down(1, cluster="prod-cluster")
        payload["alerts"][0]["labels"]["env"] = "prod"
        assert post(relay, payload).status_code == 200
        assert post(relay, samples.node_down(1, cluster="second")).status_code == 200
        wait_until(lambda: len(sim_state.entries("zhangsan")) == 2, 15, "both notifications")
    first, second = (e["visible"] for e in sim_state.entries("zhangsan"))
    assert first.startswith("【告警】NodeDown") and "cluster=prod-cluster" in first  # the built-in layout
    assert second.startswith("NodeDown ") and "cluster=second" in second  # the user's layout


def test_a_url_the_parser_refuses_is_no_link_and_no_loss(relay_with: Any, sim_state: SimulatorState) -> None:
    relay = relay_with({"app": "ops", "to_user": ["zhangsan"], "msgtype": "markdown"})
    payload = samples.node_down(2)
    payload["alerts"][1]["generatorURL"] = "http://[::1"
    payload["alerts"][1]["annotations"]["runbook_url"] = "http://a]b/"
    assert post(relay, payload).status_code == 200
    [entry] = wait_until(lambda: sim_state.entries("zhangsan"), 10, "the message")
    assert "10.0.0.0:9100" in entry["visible"] and "10.0.0.1:9100" in entry["visible"]
    assert "[::1" not in entry["visible"]


def test_a_storm_digest_with_a_hostile_alert_loses_nothing(
    relay_with: Any, sim_state: SimulatorState, tmp_path: Path
) -> None:
    """Forty notifications to one person who may get 3 messages a minute: they are merged into digests,
    one of them carries URLs the parser refuses, and every alert still arrives."""
    relay = relay_with({"app": "ops", "to_user": ["zhangsan"], "msgtype": "markdown"})
    for i in range(40):
        payload = samples.node_down(1, cluster=f"storm-{i}")
        if i == 25:
            payload["alerts"][0]["generatorURL"] = "http://[::1"
            payload["alerts"][0]["annotations"]["summary"] = "x\n## 【已恢复】 <@all>"
        assert post(relay, payload).status_code == 200

    def all_visible() -> bool:
        text = "\n".join(e["visible"] for e in sim_state.entries("zhangsan"))
        return all(f"storm-{i}" in text for i in range(40))

    wait_until(all_visible, 60, "every notification of the storm")
    assert "合并了" in "\n".join(e["visible"] for e in sim_state.entries("zhangsan"))  # digests were made
    assert "cannot render" not in dead_letters(tmp_path)


def test_a_template_moved_after_load_is_still_the_one_checked_at_load(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    # The config keeps the templates it compiled and checked at load (issue 10): moving the file away
    # after the load no longer changes what is sent, so this test's former premise (the built-in
    # template takes over) now applies only to targets the loaded config did not compile: below.
    template = tmp_path / "mine.j2"
    template.write_text("MINE {% for a in alerts %}{{ a.ident }}{% endfor %}", encoding="utf-8")
    raw = raw_config(
        simulator, tmp_path, {"app": "ops", "to_user": ["lisi"], "msgtype": "text", "template": str(template)}
    )
    with serve_in_thread(create_app(parse_config(raw))) as relay:
        template.rename(tmp_path / "moved.j2")
        assert post(relay, samples.node_down(1, cluster="after-the-move")).status_code == 200
        [entry] = wait_until(lambda: sim_state.entries("lisi"), 10, "the message")
    assert entry["visible"].startswith("MINE ") and "after-the-move" in entry["visible"]


def test_a_stored_job_whose_template_is_gone_falls_back_to_the_builtin(
    simulator: str, sim_state: SimulatorState, tmp_path: Path, caplog: Any
) -> None:
    """A job stored under an earlier config names a template this config did not compile, and the file
    cannot be read any more: the alerts go out with the built-in template, the operator is told."""
    raw = raw_config(simulator, tmp_path, {"app": "ops", "to_user": ["lisi"], "msgtype": "text"})
    config = parse_config(raw)
    [route] = Router(config).routes["default"]
    spec = route.target.model_copy(update={"template": str(tmp_path / "gone.j2")}).model_dump_json(
        by_alias=True
    )
    payload = json.dumps(samples.node_down(1, cluster="after-the-move"))

    async def store() -> None:
        outbox = SQLiteOutbox(str(tmp_path / "outbox.db"), synchronous="normal")
        try:
            await outbox.accept("default", [NewJob("earlier", spec, payload)], "k0", 0.0, 1_700_000_000.0)
        finally:
            await outbox.close()

    asyncio.run(store())
    with caplog.at_level(logging.ERROR), serve_in_thread(create_app(config)):
        [entry] = wait_until(lambda: sim_state.entries("lisi"), 10, "the message")
    assert entry["visible"].startswith("【告警】NodeDown") and "after-the-move" in entry["visible"]
    assert "built-in template" in caplog.text and "gone.j2" in caplog.text


def test_a_missing_owner_label_with_a_fallback_is_no_warning(
    relay_with: Any, sim_state: SimulatorState, caplog: Any
) -> None:
    relay = relay_with(
        {
            "app": "ops",
            "to_user": ["{{ labels.owner }}"],
            "msgtype": "text",
            "fallback": {"to_user": ["lisi"]},
        }
    )
    with caplog.at_level(logging.INFO, logger="alertmanager_wecom.ingest.routing"):
        assert post(relay, samples.node_down(1)).status_code == 200  # no owner label at all
        wait_until(lambda: sim_state.entries("lisi"), 10, "the fallback's message")
        assert post(relay, owned(1, "@all", cluster="bad")).status_code == 200
        wait_until(lambda: len(sim_state.entries("lisi")) == 2, 10, "the second")
    routing = [r for r in caplog.records if r.name == "alertmanager_wecom.ingest.routing"]
    assert [r.levelno for r in routing] == [logging.INFO, logging.WARNING]
