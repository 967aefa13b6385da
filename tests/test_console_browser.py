"""The console (/ui) in a real browser (Playwright + Debian's chromium): log in, find what zhangsan got,
a dead letter from a simulated 81013 fixed and retried, a template edited with its byte count changing;
plus what must be refused (no credentials, cross-site posts) and alert data shown as text, never run.
Screenshots of each page: tests/artifacts/console-*.png."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError

from alertmanager_wecom import samples
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator.model import SANDBOX_SECRET
from alertmanager_wecom.simulator.state import SimulatorState
from alertmanager_wecom.web.app import create_app
from tests.browser import console_page, screenshot
from tests.helpers import raw_config, wait_until
from tests.servers import serve_in_thread

pytestmark = pytest.mark.e2e

USER, PASSWORD = "ops", "console-password-7"


@pytest.fixture
def relay(simulator: str, sim_state: SimulatorState, tmp_path: Path) -> Iterator[str]:
    raw = raw_config(
        simulator,
        tmp_path,
        {"app": "ops", "to_user": ["zhangsan"]},
        {"app": "ops", "to_user": ["newhire"], "msgtype": "text"},  # not in the corp yet: 81013
    )
    raw["server"] = {"admin_auth": {"basic_auth": {"username": USER, "password": PASSWORD}}}
    with serve_in_thread(create_app(parse_config(raw))) as url:
        yield url


@pytest.fixture
def page(browser: Any, relay: str) -> Iterator[Any]:
    with console_page(browser, relay, USER, PASSWORD) as opened:
        yield opened


def test_an_operator_finds_a_delivery_fixes_a_dead_letter_and_edits_a_template(
    page: Any, relay: str, sim_state: SimulatorState
) -> None:
    hostile = samples.node_down(2)
    hostile["alerts"][0]["labels"]["instance"] = "<script>alert('x')</script>"
    hostile["alerts"][0]["annotations"]["summary"] = '<img src=x onerror="alert(1)">'
    assert httpx.post(f"{relay}/alerts/default", json=hostile, timeout=10).status_code == 200
    wait_until(lambda: any(e.recipient == "zhangsan" for e in sim_state.inbox), 15, "zhangsan's message")

    page.goto("/ui")
    assert page.title().endswith("告警通道控制台")

    def dead_letter_counted() -> bool:
        page.reload()
        return bool(page.locator(".tile.bad").count() >= 1)

    wait_until(dead_letter_counted, 15, "the dead letter counted")
    screenshot(page, "console-overview")

    # "Did zhangsan get it?": search, open the notification, see the message as WeCom shows it.
    page.goto("/ui/deliveries")
    page.fill("input[name=q]", "zhangsan")
    page.click("form.search button")
    page.click("table#rows tr[data-id] a")
    message = page.locator(".msg").first
    assert "NodeDown" in message.inner_text()
    assert "<script>alert('x')</script>" in page.locator("body").inner_text()  # shown as text
    assert page.evaluate("document.querySelectorAll('main script, main img[src=x]').length") == 0
    screenshot(page, "console-delivery")

    # The dead letter: WeCom's 81013 with its fix; the person is added in WeCom; retry; delivered.
    page.goto("/ui/dead")
    row = page.locator("table#rows tr[data-id]").first
    assert "81013" in row.inner_text() and "可见范围" in row.inner_text()
    screenshot(page, "console-dead-letters")
    sim_state.settings.corps[0].users.append("newhire")
    row.locator("button", has_text="重试").click()
    wait_until(lambda: any(e.recipient == "newhire" for e in sim_state.inbox), 15, "the retried message")
    assert page.dialogs and "重试" in page.dialogs[-1]  # asked first

    def no_dead_letters_left() -> bool:
        try:
            page.goto("/ui/dead")
        except PlaywrightError:
            return False  # the page's own reload after the retry was still under way
        return bool(page.locator("table#rows tr[data-id]").count() == 0)

    wait_until(no_dead_letters_left, 15, "the dead letters page empty")

    # The template preview: an edit changes the messages and their byte count, live.
    page.goto("/ui/preview")
    page.wait_for_selector("#messages .msg")
    before = int(page.locator("#messages .bytes").first.inner_text())
    page.locator("#template").press("End")
    page.locator("#template").type("\n加一行说明 (one more line)")
    wait_until(lambda: int(page.locator("#messages .bytes").first.inner_text()) != before, 10, "a new count")
    after = int(page.locator("#messages .bytes").first.inner_text())
    assert after == before + len("\n加一行说明 (one more line)".encode()) or after > before
    screenshot(page, "console-preview")
    page.fill("#template", "{{ broken")
    wait_until(lambda: page.locator("#error").inner_text() != "", 10, "the template's error shown")

    for name in ("actions", "setup", "config"):
        page.goto(f"/ui/{name}")
        screenshot(page, f"console-{name}")
    assert SANDBOX_SECRET not in page.content() and PASSWORD not in page.content()
    page.goto("/ui?lang=en")
    assert "Dead letters" in page.locator("header").inner_text()


def test_the_console_refuses_strangers_and_cross_site_posts(relay: str) -> None:
    assert httpx.get(f"{relay}/ui", timeout=5).status_code == 401
    assert httpx.get(f"{relay}/ui/dead", timeout=5).headers["www-authenticate"].startswith("Basic")
    auth = (USER, PASSWORD)
    assert httpx.get(f"{relay}/ui", auth=auth, timeout=5).status_code == 200
    forged = httpx.post(
        f"{relay}/api/outbox/retry",
        json={"all_dead": True},
        auth=auth,
        headers={"Origin": "https://evil.example"},
        timeout=5,
    )
    assert forged.status_code == 403
    form = httpx.post(f"{relay}/api/outbox/purge", data={"all_dead": "true"}, auth=auth, timeout=5)
    assert form.status_code == 415  # an HTML form cannot send JSON
    same_site = httpx.post(
        f"{relay}/api/outbox/purge",
        content=json.dumps({"all_dead": True}),
        headers={"Content-Type": "application/json", "Origin": relay},
        auth=auth,
        timeout=5,
    )
    assert same_site.status_code == 200 and same_site.json() == {"purged": 0}
    started = time.monotonic()
    for path in (
        "/ui",
        "/ui/deliveries",
        "/ui/dead",
        "/ui/preview",
        "/ui/actions",
        "/ui/setup",
        "/ui/config",
    ):
        assert httpx.get(f"{relay}{path}", auth=auth, timeout=5).status_code == 200
    assert time.monotonic() - started < 30
