from alertmanager_wecom.simulator.view import render


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
