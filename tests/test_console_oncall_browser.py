"""The console's 值班 and 事件 pages in a real browser (Playwright + Debian's chromium), against a real relay
with schedules and an escalation policy: an override added (after a confirmation) shows in the calendar
and is removed again; an incident escalates, its timeline is shown, and 认领 from the console (after a
confirmation) acknowledges it. Weeks of past incidents are in the store for the time-to-acknowledge
chart. Screenshots: tests/artifacts/console-oncall*.png, console-incidents*.png."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.oncall.sqlite_store import SQLiteOncallStore, oncall_path
from alertmanager_wecom.web.app import create_app
from tests.browser import console_page, screenshot
from tests.helpers import wait_until
from tests.servers import serve_in_thread
from tests.test_console_oncall import AUTH, PASSWORD, USER, oncall_config

pytestmark = pytest.mark.e2e

WEEK = 7 * 86400
HOSTILE = "<img src=x onerror=alert(1)>NodeDown"


async def _seed(path: Path, now: float) -> None:
    """Eight weeks of acknowledged, resolved incidents of two receivers: default gets faster, db slower."""
    store = SQLiteOncallStore(path)
    try:
        for week in range(8):
            for k, (receiver, minutes) in enumerate(
                [("default", 30 - 3 * week), ("default", 20 - 2 * week), ("db", 5 + 2 * week)]
            ):
                started = now - (8 - week) * WEEK + 86400 + k * 3600
                incident, _ = await store.open_incident(
                    receiver, f"{receiver}-{week}-{k}", f"Seeded {receiver} {week}", receiver, started
                )
                await store.acknowledge(incident.id, "lisi", "card", started + minutes * 60)
                await store.resolve(receiver, incident.group_id, started + 3600)
    finally:
        await store.close()


def seed(path: Path, now: float) -> None:
    # In a thread of its own: Playwright's sync API may hold an event loop in this one.
    worker = threading.Thread(target=asyncio.run, args=(_seed(path, now),))
    worker.start()
    worker.join(30)
    assert not worker.is_alive()


@pytest.fixture
def relay(simulator: str, tmp_path: Path) -> Iterator[str]:
    raw = oncall_config(simulator, tmp_path, step_after="2s")
    config = parse_config(raw)
    seed(oncall_path(config.storage.path), time.time())
    with serve_in_thread(create_app(config)) as url:
        yield url


@pytest.fixture
def page(browser: Any, relay: str) -> Iterator[Any]:
    with console_page(browser, relay, USER, PASSWORD) as opened:
        yield opened


def test_an_override_is_added_after_a_confirmation_shown_in_the_calendar_and_removed(
    page: Any, relay: str
) -> None:
    api = httpx.get(f"{relay}/api/oncall", auth=AUTH, timeout=10).json()
    sre = next(s for s in api["schedules"] if s["name"] == "sre")
    page.goto("/ui/oncall")
    section = page.locator("#schedule-sre")
    assert section.locator(".who-now").inner_text() == sre["now"]["user"]
    assert section.locator("td.day").count() == 28
    assert section.locator(".seg.ov").count() == 0
    screenshot(page, "console-oncall")

    day = sre["shifts"][4]["start_local"][:10]
    page.select_option("#add select[name=schedule]", "sre")
    page.fill("#add input[name=user]", "zhaoliu")
    page.fill("#add input[name=start]", f"{day}T12:00")
    page.fill("#add input[name=end]", f"{day}T20:00")
    page.click("#add button[type=submit]")
    cell = section.locator(f'td.day[data-date="{day}"]')
    cell.locator(".seg.ov", has_text="zhaoliu").wait_for()
    assert "12:00" in cell.inner_text() and "20:00" in cell.inner_text()  # taken over, and handed back
    assert page.dialogs and "zhaoliu" in page.dialogs[-1] and "确定添加替班" in page.dialogs[-1]
    assert page.locator("#overrides tr[data-id]").count() == 1
    assert "console" in page.locator("#overrides tr[data-id]").inner_text()  # who made it
    screenshot(page, "console-oncall-override")

    # Removed, after its own confirmation: gone from the list and the calendar.
    page.locator("#overrides button.remove").click()
    page.locator("#overrides tr[data-id]").first.wait_for(state="detached")
    assert "确定移除" in page.dialogs[-1]
    assert section.locator(".seg.ov").count() == 0
    page.goto("/ui/oncall?lang=en")
    assert "On call now" in page.locator("main").inner_text()


def test_an_incident_escalates_shows_its_timeline_and_is_acknowledged_from_the_console(
    page: Any, relay: str
) -> None:
    payload = samples.node_down(1, receiver="default")
    payload["groupLabels"] = {"alertname": HOSTILE}
    assert httpx.post(f"{relay}/alerts/default", json=payload, timeout=10).status_code == 200

    def escalated() -> bool:
        found = httpx.get(f"{relay}/api/incidents?open=1", auth=AUTH, timeout=10).json()["incidents"]
        return bool(found) and "escalated" in [e["kind"] for e in found[0]["events"]]

    wait_until(escalated, 30, "the escalation step taken")
    page.goto("/ui/incidents")
    incident = page.locator("article.incident.open").first
    assert incident.locator("h3").inner_text() == HOSTILE  # shown as text
    assert page.evaluate("document.querySelectorAll('main img').length") == 0
    kinds = incident.locator("ol.timeline li b").all_inner_texts()
    assert kinds[:1] == ["开始"] and "已通知" in kinds and "升级" in kinds
    assert "至第 2 级 → wangwu" in incident.locator("li.ev-escalated").inner_text()
    assert incident.locator(".st-escalating").count() == 1
    # The chart: both receivers, a line each, from the seeded weeks (and this one).
    assert page.locator("svg#tta g.series").count() == 2
    assert page.locator("#tta-table tr[data-receiver=db] td.num").count() == 8
    screenshot(page, "console-incidents")

    assert page.locator("#me").input_value() == USER  # who logged in acknowledges, unless changed
    page.fill("#me", "张三")
    incident.locator("button.ack").click()
    acknowledged = page.locator("article.incident.open.acked").first
    acknowledged.wait_for()
    assert "已认领 · 张三 · 控制台" in acknowledged.locator(".status").inner_text()
    assert acknowledged.locator("button.ack").count() == 0
    assert acknowledged.locator("ol.timeline li b").all_inner_texts()[-1] == "认领"
    assert page.dialogs and HOSTILE in page.dialogs[-1] and "张三" in page.dialogs[-1]
    assert not any(d == "1" for d in page.dialogs)  # nothing of the title ran
    found = httpx.get(f"{relay}/api/incidents?open=1", auth=AUTH, timeout=10).json()["incidents"][0]
    assert (found["acknowledged_by"], found["acknowledged_how"]) == ("张三", "console")
    screenshot(page, "console-incidents-acked")
    page.goto("/ui/incidents?lang=en")
    screenshot(page, "console-incidents-en")
