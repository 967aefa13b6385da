"""The simulator's inbox in a real browser (Playwright + Debian's chromium): a textcard drawn as WeCom
draws it (grey, normal and highlighted lines, the button; no raw tags), and an alert card whose button a
person presses in the page, which reaches the relay's callback and redraws the card.
Screenshots: tests/artifacts/inbox-*.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError

from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from alertmanager_wecom.simulator.state import SimulatorState
from alertmanager_wecom.web.app import create_app
from tests.browser import screenshot
from tests.helpers import SAMPLES, raw_config, wait_until
from tests.servers import serve_in_thread

pytestmark = pytest.mark.e2e


def _send(simulator: str, body: dict[str, Any]) -> dict[str, Any]:
    token = httpx.get(
        f"{simulator}/cgi-bin/gettoken", params={"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET}
    ).json()["access_token"]
    reply = httpx.post(f"{simulator}/cgi-bin/message/send", params={"access_token": token}, json=body).json()
    assert reply["errcode"] == 0, reply
    return dict(reply)


def test_a_textcard_shows_as_wecom_draws_it(browser: Any, simulator: str) -> None:
    description = (
        '<div class="gray">2026-11-28 17:02 开始</div><div class="normal">节点 10.0.0.1 宕机，已持续 5 分钟</div>'
        '<div class="highlight">严重级别：critical</div>'
    )
    _send(
        simulator,
        {
            "agentid": SANDBOX_AGENT_ID,
            "touser": "wangwu",
            "msgtype": "textcard",
            "textcard": {
                "title": "【告警】NodeDown",
                "description": description,
                "url": "http://am/",
                "btntxt": "查看详情",
            },
        },
    )
    page = browser.new_page(locale="zh-CN")
    try:
        page.goto(f"{simulator}/inbox?user=wangwu")
        card = page.locator(".card").first
        text = card.inner_text()
        assert "<div" not in text and "</div>" not in text
        assert (
            "节点 10.0.0.1 宕机" in text and "【告警】NodeDown" in text and "查看详情 ›" in text
        )  # 4 characters
        colour = "el => getComputedStyle(el).color"
        grey, highlight = (
            card.locator(".card-gray").evaluate(colour),
            card.locator(".card-highlight").evaluate(colour),
        )
        normal = card.locator(".card-normal").evaluate(colour)
        assert len({grey, highlight, normal}) == 3
        screenshot(page, "inbox-textcard")
    finally:
        page.close()


def test_a_person_presses_a_card_button_in_the_inbox(
    browser: Any,
    simulator: str,
    sim_state: SimulatorState,
    tmp_path: Path,
) -> None:
    vector = json.loads((SAMPLES / "wecom-callback-vectors.json").read_text(encoding="utf-8"))["vectors"][0]
    callback = {"token": vector["token"], "encoding_aes_key": vector["encoding_aes_key"]}
    raw = raw_config(
        simulator,
        tmp_path,
        {
            "app": "ops",
            "to_user": ["zhangsan"],
            "msgtype": "template_card",
            "card": {"buttons": [{"action": "ack"}]},
        },
    )
    raw["apps"]["ops"]["callback"] = callback
    firing = json.loads((SAMPLES / "am-0.25-firing-nodedown.json").read_text(encoding="utf-8"))
    with serve_in_thread(create_app(parse_config(raw))) as relay:
        saved = httpx.post(
            f"{simulator}/admin/callback",
            json={"agent_id": SANDBOX_AGENT_ID, "url": f"{relay}/wecom/callback/ops", **callback},
        )
        assert saved.json()["saved"]
        assert httpx.post(f"{relay}/alerts/default", json=firing, timeout=10).status_code == 200
        wait_until(lambda: any(e.card for e in sim_state.inbox), 15, "the card")
        page = browser.new_page(locale="zh-CN")
        try:
            page.goto(f"{simulator}/inbox?user=zhangsan")
            screenshot(page, "inbox-card")
            page.locator(".tcard button", has_text="认领").first.click()

            def acknowledged() -> bool:
                try:
                    page.reload()
                except PlaywrightError:
                    return False  # the page reloads itself after a press: one of the two gives way
                return "已认领 · zhangsan" in page.locator(".tcard").first.inner_text()

            wait_until(acknowledged, 15, "the card redrawn in the page")
            screenshot(page, "inbox-card-acknowledged")
        finally:
            page.close()
