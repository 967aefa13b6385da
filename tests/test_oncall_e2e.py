"""On-call end to end with real processes: the relay (`serve`) and the simulator over loopback HTTP, a
real SQLite outbox and on-call store. A step waiting while the relay is killed -9 fires once after the
restart; the signed acknowledge link acknowledges once and stops escalation; a tampered or expired link
is refused with a page that says why; the incident's timeline is in `GET /api/incidents`."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from alertmanager_wecom import samples
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.oncall.ack_link import sign
from alertmanager_wecom.oncall.store import group_id
from alertmanager_wecom.web.app import create_app
from tests.helpers import raw_config, wait_until
from tests.redis_server import run_redis
from tests.servers import free_port, serve_in_thread
from tests.stack import Stack

ACK_KEY = "e2e-ack-key-0123456789abcdef"


def oncall_stack(tmp_path: Path, step_after: str = "4s") -> Stack:
    stack = Stack(tmp_path, msgtype="text")
    raw = yaml.safe_load(stack.config.read_text(encoding="utf-8"))
    raw["receivers"][0]["targets"][0]["to_user"] = ["oncall:sre"]
    raw["receivers"][0]["escalation"] = "sre"
    raw["server"] = {"external_url": stack.relay, "admin_allow_loopback": True}
    raw["oncall"] = {
        "ack_key": ACK_KEY,
        "schedules": {"sre": {"members": ["zhangsan"], "start": "2026-01-01"}},
        "escalations": {
            "sre": {"steps": [{"after": step_after, "targets": [{"app": "ops", "to_user": ["wangwu"]}]}]}
        },
    }
    stack.config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return stack


def post(stack: Stack, payload: dict[str, Any]) -> None:
    response = httpx.post(f"{stack.relay}/alerts/default", json=payload, timeout=10)
    assert response.status_code == 200, response.text


def metric(stack: Stack, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(f"{stack.relay}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == f"alertmanager_wecom_{name}" and sample.labels == labels:
                return float(sample.value)
    return 0.0


def incidents(stack: Stack) -> list[dict[str, Any]]:
    answer = httpx.get(f"{stack.relay}/api/incidents", timeout=10)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["incidents"])


def test_a_step_waiting_while_the_relay_is_killed_fires_once_after_the_restart(tmp_path: Path) -> None:
    with oncall_stack(tmp_path, step_after="5s") as stack:
        post(stack, samples.node_down(1))
        wait_until(lambda: stack.inbox("zhangsan"), what="the first notification, to the person on call")
        stack.kill_relay()
        stack.start_relay()
        wait_until(lambda: stack.inbox("wangwu"), timeout=60, what="the step, after the restart")
        assert "升级至第 2 级" in stack.inbox("wangwu")[0]["visible"]
        # Nothing more: the step's job is done, none is pending, the timeline says it once.
        wait_until(lambda: stack.pending() == 0, what="nothing pending")
        [incident] = incidents(stack)
        assert [e["kind"] for e in incident["events"]].count("escalated") == 1
        assert len(stack.inbox("wangwu")) == 1


def test_the_signed_link_acknowledges_once_and_stops_escalation(tmp_path: Path) -> None:
    with oncall_stack(tmp_path, step_after="6s") as stack:
        post(stack, samples.node_down(1))
        wait_until(lambda: stack.inbox("zhangsan"), what="the first notification")
        text = stack.inbox("zhangsan")[0]["visible"]
        link = text.split("认领: ", 1)[1].split()[0]
        assert link.startswith(f"{stack.relay}/ack/")
        page = httpx.get(link, timeout=10)
        assert page.status_code == 200 and "<form method='post'>" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        assert incidents(stack)[0]["acknowledged_at"] is None  # opening the link does not acknowledge
        done = httpx.post(link, data={"who": "张三"}, timeout=10)
        assert done.status_code == 200 and "已认领" in done.text
        again = httpx.post(link, data={"who": "lisi"}, timeout=10)
        assert "已由 张三 认领" in again.text
        wait_until(
            lambda: metric(stack, "escalations_stopped_total", policy="sre", why="acknowledged") == 1,
            timeout=60,
            what="the step, due, not taken",
        )
        assert stack.inbox("wangwu") == []
        [incident] = incidents(stack)
        assert (incident["acknowledged_by"], incident["acknowledged_how"]) == ("张三", "link")
        assert [e["kind"] for e in incident["events"]] == ["opened", "notified", "acknowledged"]
        # The CLI reads the same store while the service runs.
        listed = stack.cli("incidents", "list")
        assert listed.returncode == 0 and "acknowledged by 张三 (link)" in listed.stdout, listed.stderr
        assert incident["id"] in listed.stdout
        shown = stack.cli("incidents", "show", incident["id"])
        lines = shown.stdout.splitlines()
        assert shown.returncode == 0 and [line.split()[2] for line in lines[2:]] == [
            "opened",
            "notified",
            "acknowledged",
        ]
        assert "zhangsan" in lines[3] and "张三" in lines[4] and "link" in lines[4]
        assert stack.cli("incidents", "show", "nope").returncode == 1


def test_a_tampered_or_expired_link_is_refused_with_a_page_that_says_why(tmp_path: Path) -> None:
    with oncall_stack(tmp_path, step_after="1h") as stack:
        payload = samples.node_down(1)
        post(stack, payload)
        group = group_id(payload["groupKey"])
        good = sign(ACK_KEY.encode(), "default", group, time.time() + 600)
        tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
        answer = httpx.post(f"{stack.relay}/ack/{tampered}", timeout=10)
        assert answer.status_code == 400 and "signature does not match" in answer.text
        other_key = sign(b"another-key-0123456789abcdef", "default", group, time.time() + 600)
        assert httpx.post(f"{stack.relay}/ack/{other_key}", timeout=10).status_code == 400
        expired = sign(ACK_KEY.encode(), "default", group, time.time() - 1)
        answer = httpx.post(f"{stack.relay}/ack/{expired}", timeout=10)
        assert answer.status_code == 410 and "expired" in answer.text
        assert httpx.get(f"{stack.relay}/ack/not-a-token", timeout=10).status_code == 400
        wait_until(lambda: incidents(stack), what="the incident")
        assert incidents(stack)[0]["acknowledged_at"] is None
        # The API acknowledges too, with who and how.
        answer = httpx.post(
            f"{stack.relay}/api/ack",
            json={"receiver": "default", "group_key": payload["groupKey"], "user": "lisi"},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["outcome"] == "acknowledged"
        assert (incidents(stack)[0]["acknowledged_by"], incidents(stack)[0]["acknowledged_how"]) == (
            "lisi",
            "api",
        )
        assert ACK_KEY not in stack.relay_log()


def test_a_storms_digest_carries_one_link_that_acknowledges_every_group_in_it(tmp_path: Path) -> None:
    """In a storm the person on call gets digests: the digest's link names the digest (short, however
    many groups), its page lists each group, and one POST acknowledges every group still open; a link
    naming a digest of another receiver, or one no longer kept, is refused."""
    with oncall_stack(tmp_path, step_after="1h") as stack:
        keys = []
        for i in range(43):  # 3 alone, then more than zhangsan may get in a minute: a digest
            payload = samples.node_down(1, cluster=f"c{i}")
            payload["groupKey"] = f'{{}}:{{cluster="c{i}"}}'
            keys.append(payload["groupKey"])
            post(stack, payload)
            if i == 2:
                wait_until(lambda: len(stack.inbox("zhangsan")) == 3, what="the first three alone")

        def digest_text() -> str | None:
            return next((e["visible"] for e in stack.inbox("zhangsan") if "认领全部" in e["visible"]), None)

        text = wait_until(digest_text, timeout=60, what="a digest with a link for all its groups")
        assert text is not None
        count, link = re.search(r"认领全部 (\d+) 组: (\S+)", text).groups()  # type: ignore[union-attr]
        assert int(count) >= 2 and len(link) < len(stack.relay) + 120
        page = httpx.get(link, timeout=10)
        assert page.status_code == 200 and page.text.count("<li>") == int(count)
        assert f"认领全部 {count} 组" in page.text
        done = httpx.post(link, data={"who": "张三"}, timeout=10)
        assert done.status_code == 200 and done.text.count("已认领") == int(count)
        acknowledged = [i for i in incidents(stack) if i["acknowledged_how"] == "link"]
        assert len(acknowledged) == int(count) and all(i["acknowledged_by"] == "张三" for i in acknowledged)
        assert {i["group_key"] for i in acknowledged} <= set(keys[3:])
        again = httpx.get(link, timeout=10)
        assert "<form" not in again.text and again.text.count("已由 张三 认领") == int(count)
        # Signed, but naming a job that is no digest of this receiver (or no longer kept): refused.
        forged = sign(ACK_KEY.encode(), "default", "j999999", time.time() + 600)
        answer = httpx.get(f"{stack.relay}/ack/{forged}", timeout=10)
        assert answer.status_code == 410 and "storage.retention" in answer.text


def test_the_on_call_apis_answer_503_while_the_store_is_down(tmp_path: Path) -> None:
    raw = raw_config("http://127.0.0.1:9", tmp_path, {"app": "ops", "to_user": ["zhangsan"]})
    raw["server"] = {"admin_allow_loopback": True}
    raw["oncall"] = {
        "ack_key": ACK_KEY,
        "schedules": {"sre": {"members": ["zhangsan"], "start": "2026-01-01"}},
    }
    redis = run_redis(tmp_path / "redis")
    url = redis.__enter__()
    running = True
    try:
        raw["storage"] = {"backend": "redis", "url": url, "timeout": "1s"}
        with serve_in_thread(create_app(parse_config(raw)), port=free_port()) as relay:
            assert httpx.get(f"{relay}/api/incidents", timeout=10).status_code == 200
            redis.__exit__(None, None, None)  # Redis goes away under the running service
            running = False
            for path in ("/api/incidents", "/api/oncall/overrides", "/api/oncall"):
                answer = httpx.get(f"{relay}{path}", timeout=20)
                assert answer.status_code == 503, (path, answer.text)
                assert "unavailable" in answer.json()["error"]
            created = httpx.post(
                f"{relay}/api/ack",
                json={"receiver": "default", "group_key": "{}:{}", "user": "lisi"},
                timeout=20,
            )
            assert created.status_code == 503
            # A digest's link reads the digest from the outbox, on the same Redis: 503, not 500.
            digest_link = sign(ACK_KEY.encode(), "default", "j1", time.time() + 600)
            assert httpx.get(f"{relay}/ack/{digest_link}", timeout=20).status_code == 503
    finally:
        if running:
            redis.__exit__(None, None, None)
