"""The console's 值班 and 事件 pages over real HTTP (a relay in a thread, the simulator, a real SQLite
outbox and on-call store): behind the admin checks, under a CSP that runs only the page's own scripts,
alert data escaped, and showing what the JSON APIs say (who is on call, overrides, timelines)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.web import console_oncall
from alertmanager_wecom.web.app import create_app
from tests.helpers import raw_config, wait_until
from tests.servers import serve_in_thread

USER, PASSWORD = "ops", "console-password-7"
AUTH = (USER, PASSWORD)
HOSTILE = "<script>alert('x')</script>"


def oncall_config(simulator: str, tmp_path: Path, step_after: str = "1h") -> dict[str, Any]:
    raw = raw_config(simulator, tmp_path, {"app": "ops", "to_user": ["oncall:sre"], "msgtype": "text"})
    raw["server"] = {"admin_auth": {"basic_auth": {"username": USER, "password": PASSWORD}}}
    raw["receivers"][0]["escalation"] = "sre"
    raw["oncall"] = {
        "schedules": {
            "sre": {"members": ["zhangsan", "lisi", "wangwu"], "start": "2026-01-01", "handoff": "09:00"},
            "dba": {"members": ["lisi"], "rotation": "weekly", "handoff": "Mon 10:00", "start": "2026-01-05"},
        },
        "escalations": {
            "sre": {"steps": [{"after": step_after, "targets": [{"app": "ops", "to_user": ["wangwu"]}]}]}
        },
    }
    return raw


@pytest.fixture
def relay(simulator: str, tmp_path: Path) -> Iterator[str]:
    with serve_in_thread(create_app(parse_config(oncall_config(simulator, tmp_path)))) as url:
        yield url


def hostile_alert() -> dict[str, Any]:
    payload = samples.node_down(1, receiver="default")
    payload["groupLabels"] = {"alertname": HOSTILE}
    payload["commonLabels"]["alertname"] = HOSTILE
    return payload


def incidents(relay: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{relay}/api/incidents", auth=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["incidents"])


def get(relay: str, path: str) -> httpx.Response:
    answer = httpx.get(f"{relay}{path}", auth=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer


def test_the_pages_are_behind_the_admin_checks_and_run_only_their_own_scripts(relay: str) -> None:
    for path in ("/ui/oncall", "/ui/incidents"):
        assert httpx.get(f"{relay}{path}", timeout=5).status_code == 401
        assert httpx.get(f"{relay}{path}", auth=(USER, "wrong"), timeout=5).status_code == 401
        answer = get(relay, path)
        policy = answer.headers["content-security-policy"]
        nonce = re.search(r"script-src 'nonce-([^']+)'", policy)
        assert (
            nonce is not None
            and "default-src 'none'" in policy
            and "unsafe-inline" not in policy.split("style-src")[0]
        )
        scripts = re.findall(r"<script[^>]*>", answer.text)
        assert scripts and all(f'nonce="{nonce.group(1)}"' in s for s in scripts)
        assert " on" + "click=" not in answer.text  # no inline handler: the CSP would block it
        # A new nonce each time.
        assert get(relay, path).headers["content-security-policy"] != policy
    # The navigation names both pages, in both languages.
    assert "值班" in get(relay, "/ui").text and "事件" in get(relay, "/ui").text
    english = get(relay, "/ui/oncall?lang=en").text
    assert "On call now" in english and "Incidents" in english


def test_the_oncall_page_shows_who_is_on_call_and_an_override_in_the_calendar(relay: str) -> None:
    api = httpx.get(f"{relay}/api/oncall", auth=AUTH, timeout=10).json()
    sre = next(s for s in api["schedules"] if s["name"] == "sre")
    page = get(relay, "/ui/oncall").text
    section = page.split('id="schedule-sre"', 1)[1].split("</section>", 1)[0]
    assert f'class="n small who-now">{sre["now"]["user"]}' in section
    assert f'class="n small who-next">{sre["next"]["user"]}' in section
    assert section.count('<td class="day') == 28 and "Asia/Shanghai" in section
    assert 'class="seg ov"' not in section

    # An override through the API the page uses: listed, and marked in the calendar on its days.
    start = sre["shifts"][3]["start_local"][:16]  # the start of a shift some days ahead
    day = start[:10]
    added = httpx.post(
        f"{relay}/api/oncall/overrides",
        json={"schedule": "sre", "user": "zhaoliu", "start": start, "end": f"{day}T21:00"},
        auth=AUTH,
        headers={"Origin": relay},
        timeout=10,
    )
    assert added.status_code == 201, added.text
    page = get(relay, "/ui/oncall").text
    section = page.split('id="schedule-sre"', 1)[1].split("</section>", 1)[0]
    cell = section.split(f'data-date="{day}"', 1)[1].split("</td>", 1)[0]
    assert 'class="seg ov"' in cell and "zhaoliu" in cell and "21:00" in cell
    overrides = page.split('id="overrides"', 1)[1].split("</table>", 1)[0]
    assert f'data-id="{added.json()["id"]}"' in overrides and "zhaoliu" in overrides
    assert "<td>api</td>" in overrides  # made through the API, not the console
    dba = page.split('id="schedule-dba"', 1)[1].split("</section>", 1)[0]
    assert "zhaoliu" not in dba  # another schedule's calendar is not touched


def test_the_incidents_page_escapes_alert_data_and_shows_the_timeline_and_the_acknowledgement(
    relay: str, sim_state: Any
) -> None:
    assert httpx.post(f"{relay}/alerts/default", json=hostile_alert(), timeout=10).status_code == 200
    wait_until(lambda: any(e.recipient for e in sim_state.inbox), 15, "the first notification")
    wait_until(lambda: "notified" in [e["kind"] for e in incidents(relay)[0]["events"]], 15, "notified")
    [incident] = incidents(relay)
    page = get(relay, "/ui/incidents").text
    assert HOSTILE not in page  # the title is alert data: escaped everywhere, attributes included
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    article = page.split(f'<article class="incident open" data-id="{incident["id"]}">', 1)[1]
    article = article.split("</article>", 1)[0]
    assert "升级中" in article and 'class="ack"' in article
    timeline = re.findall(r'<li class="ev ev-(\w+)">', article)
    assert timeline == ["opened", "notified"]
    assert "zhangsan" in article or "lisi" in article or "wangwu" in article  # notified whom

    acked = httpx.post(
        f"{relay}/api/ack",
        json={"incident": incident["id"], "user": "张三", "how": "console"},
        auth=AUTH,
        headers={"Origin": relay},
        timeout=10,
    )
    assert acked.status_code == 200 and acked.json()["outcome"] == "acknowledged", acked.text
    page = get(relay, "/ui/incidents").text
    article = page.split(f'data-id="{incident["id"]}">', 1)[1].split("</article>", 1)[0]
    assert "已认领 · 张三 · 控制台" in article and 'class="ack"' not in article
    assert re.findall(r'<li class="ev ev-(\w+)">', article)[-1] == "acknowledged"
    # The chart: one receiver, one acknowledged incident this week.
    assert 'data-receiver="default"' in page and "n=1" in page
    english = get(relay, "/ui/incidents?lang=en").text
    assert "acknowledged · 张三 · console" in english


def test_the_pages_say_so_when_nothing_is_configured(simulator: str, tmp_path: Path) -> None:
    raw = raw_config(simulator, tmp_path, {"app": "ops", "to_user": ["zhangsan"]})
    raw["server"] = {"admin_auth": {"basic_auth": {"username": USER, "password": PASSWORD}}}
    with serve_in_thread(create_app(parse_config(raw))) as relay:
        assert "没有排班" in get(relay, "/ui/oncall").text
        page = get(relay, "/ui/incidents").text
        assert "还没有事件" in page and "<svg" not in page


def test_a_store_outage_is_a_503_with_the_reason(simulator: str, tmp_path: Path) -> None:
    app = create_app(parse_config(oncall_config(simulator, tmp_path)))
    with serve_in_thread(app) as relay:
        store = app.state.relay.oncall

        async def down(*args: object, **kwargs: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        store.incidents = down
        store.overrides = down
        for path in ("/ui/incidents", "/ui/oncall"):
            answer = httpx.get(f"{relay}{path}", auth=AUTH, timeout=10)
            assert answer.status_code == 503 and "store is unavailable" in answer.json()["error"]


def test_the_incidents_api_pages_past_the_newest(relay: str) -> None:
    """`limit` and `offset` page through the incidents, newest first; `next_offset` reads the next page
    (none after the last); a bad offset is a 400 with the reason."""
    for i in range(5):
        payload = samples.node_down(1, cluster=f"c{i}", receiver="default")
        payload["groupKey"] = f'{{}}:{{cluster="c{i}"}}'
        assert httpx.post(f"{relay}/alerts/default", json=payload, timeout=10).status_code == 200
    wait_until(lambda: len(incidents(relay)) == 5, 10, "five incidents")
    every = [i["id"] for i in incidents(relay)]
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = get(relay, f"/api/incidents?limit=2&offset={offset}").json()
        seen += [i["id"] for i in page["incidents"]]
        offset = page["next_offset"]
    assert seen == every  # each once, in order
    assert get(relay, "/api/incidents?limit=5").json()["next_offset"] == 5  # full: maybe more
    assert get(relay, "/api/incidents?offset=9").json() == {"incidents": [], "next_offset": None}
    for bad in ("-1", "x", "1e3", "9999999999"):
        answer = httpx.get(f"{relay}/api/incidents?offset={bad}", auth=AUTH, timeout=10)
        assert answer.status_code == 400 and "offset" in answer.json()["error"], bad


def test_the_incidents_page_pages_through_the_closed_ones(
    relay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The closed incidents a page at a time (older / newer links), the open ones on every page; each
    closed one on exactly one page, in the API's order."""
    monkeypatch.setattr(console_oncall, "RECENT_SHOWN", 2)
    for i in range(5):
        payload = samples.node_down(1, cluster=f"c{i}", receiver="default")
        payload["groupKey"] = f'{{}}:{{cluster="c{i}"}}'
        assert httpx.post(f"{relay}/alerts/default", json=payload, timeout=10).status_code == 200
        if i < 4:  # c4 stays open
            payload = samples.node_down(1, "resolved", cluster=f"c{i}", receiver="default")
            payload["groupKey"] = f'{{}}:{{cluster="c{i}"}}'
            assert httpx.post(f"{relay}/alerts/default", json=payload, timeout=10).status_code == 200
    wait_until(lambda: sum(not i["open"] for i in incidents(relay)) == 4, 10, "four closed incidents")
    listed = incidents(relay)
    [open_id] = [i["id"] for i in listed if i["open"]]
    closed_order = [i["id"] for i in listed if not i["open"]]

    def articles(page: str) -> tuple[list[str], list[str]]:
        found = re.findall(r'<article class="incident( open)?[^"]*" data-id="([^"]+)"', page)
        return [i for o, i in found if o], [i for o, i in found if not o]

    seen: list[str] = []
    path: str | None = "/ui/incidents"
    pages = 0
    while path is not None:
        page = get(relay, path).text
        opened, closed = articles(page)
        assert opened == [open_id]  # on every page
        seen += closed
        pages += 1
        older = re.search(r'<a id="older" href="\?offset=(\d+)"', page)
        path = f"/ui/incidents?offset={older.group(1)}" if older else None
        if pages > 1:
            assert re.search(r'<a id="newer" href="\?offset=\d+"', page)
    assert seen == closed_order and pages == 3  # 5 incidents, 2 a page
    assert articles(get(relay, "/ui/incidents?offset=x").text)[1] == seen[:1]  # a bad offset: page one
    # Past the end (typed by hand): nothing, and the way back to the first page.
    beyond = get(relay, "/ui/incidents?offset=999999").text
    assert articles(beyond)[1] == [] and '<a id="newer" href="?offset=0"' in beyond
    # Exactly one page's worth: no link to an empty older page.
    monkeypatch.setattr(console_oncall, "RECENT_SHOWN", 5)
    assert 'id="older"' not in get(relay, "/ui/incidents").text
    monkeypatch.setattr(console_oncall, "RECENT_SHOWN", 1)
    last = get(relay, "/ui/incidents?offset=4").text
    assert articles(last)[1] == closed_order[-1:] and 'id="older"' not in last
