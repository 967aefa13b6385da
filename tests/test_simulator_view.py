import json

import httpx

from alertmanager_wecom.simulator import SimulatorState, create_simulator_app, sandbox_settings
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from alertmanager_wecom.simulator.view import render
from tests.servers import serve_in_thread


def test_markdown_is_shown_as_wecom_shows_it_and_nothing_else_runs() -> None:
    shown = render(
        "markdown",
        '## 【告警】NodeDown\n> <font color="warning">critical</font> **x** [图表](http://p/g?a=1&b=2)\n<@lisi>',
    )
    assert '<div class="h h2">【告警】NodeDown</div>' in shown
    assert '<div class="quote"><span style="color:#e8590c">critical</span> <b>x</b> ' in shown
    assert '<a href="http://p/g?a=1&amp;b=2" rel="noreferrer">图表</a>' in shown
    assert '<span class="mention">@lisi</span>' in shown
    hostile = render(
        "markdown", '<script>alert(1)</script> [x](javascript:alert(1)) <font color="red">y</font>'
    )
    assert "<script>" not in hostile and "javascript:" in hostile and 'href="javascript' not in hostile
    assert "&lt;font color=&quot;red&quot;&gt;" in hostile


def test_text_keeps_lines_and_only_http_links() -> None:
    shown = render("text", 'a\n<a href="https://am/x">Alertmanager</a> <b>no</b>')
    assert (
        '<a href="https://am/x" rel="noreferrer">Alertmanager</a>' in shown
        and "&lt;b&gt;no&lt;/b&gt;" in shown
    )


def test_a_textcard_looks_like_the_card_not_its_tags() -> None:
    shown = render(
        "textcard",
        '【告警】NodeDown\n<div class="gray">11-28 09:02</div><div class="highlight">critical</div>'
        '<div class="normal">10.0.0.1 <script>x</script></div><div class="gray">cut in the mid',
        "查看",
    )
    assert '<div class="card-title">【告警】NodeDown</div>' in shown
    assert '<div class="card-gray">11-28 09:02</div><div class="card-highlight">critical</div>' in shown
    assert '<div class="card-normal">10.0.0.1 &lt;script&gt;x&lt;/script&gt;</div>' in shown
    assert '<div class="card-gray">cut in the mid</div>' in shown  # a div the 512-byte cut left open
    assert '<div class="card-button">查看 ›</div>' in shown
    assert "&lt;div" not in shown and "<script>" not in shown
    # A tag the cut split in two is dropped, as WeCom does, not shown as text.
    assert "&lt;" not in render("textcard", 'T\n<div class="normal">a</div><div class="gr')


def test_the_inbox_page_shows_a_sent_textcard_with_its_button() -> None:
    state = SimulatorState(sandbox_settings())
    token = state.gettoken({"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET})["access_token"]
    description = '<div class="gray">2026-11-28</div>' + '<div class="normal">' + "长" * 200 + "</div>"
    body = {
        "touser": "zhangsan",
        "agentid": SANDBOX_AGENT_ID,
        "msgtype": "textcard",
        "textcard": {
            "title": "NodeDown",
            "description": description,
            "url": "https://am/x",
            "btntxt": "打开告警页面",
        },
    }
    assert state.message_send({"access_token": token}, json.dumps(body).encode(), "127.0.0.1")["errcode"] == 0
    [entry] = state.entries("zhangsan")
    assert entry["truncated"] and entry["button"] == "打开告警页"[:4]
    with serve_in_thread(create_simulator_app(state)) as url:  # real HTTP, as a person's browser
        page = httpx.get(f"{url}/inbox", timeout=10).text
    shown = page[page.index('<div class="body">') : page.index("<details>")]
    assert '<div class="card-button">打开告警 ›</div>' in shown
    assert '<div class="card-gray">2026-11-28</div>' in shown
    assert "&lt;div" not in shown  # the description's tags are styling, not text
