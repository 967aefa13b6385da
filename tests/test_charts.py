"""Charts (issue 14) without Prometheus: the drawing (decoded and its pixels read), where the query comes
from, the threshold, what the config refuses; delivery through the simulator with a Prometheus stand-in
that is down (text on time, chart skipped, the reason logged); robot images checked by the simulator."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib import image as mpimg

from alertmanager_wecom.config import ConfigError
from alertmanager_wecom.delivery.charts import chart_query
from alertmanager_wecom.ingest.payload import Alert
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.rendering import chart
from alertmanager_wecom.simulator.model import SANDBOX_ROBOT_KEY
from alertmanager_wecom.simulator.state import SimulatorState
from alertmanager_wecom.web.app import create_app
from tests.helpers import SAMPLES, metric, post, raw_config, wait_until
from tests.servers import free_port, serve_in_thread


def pixels(png: bytes) -> Any:
    return mpimg.imread(io.BytesIO(png), format="png")


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def has_colour(png: bytes, hex_colour: str, at_least: int = 50) -> bool:
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    image = pixels(png)
    close = (abs(image[:, :, 0] - rgb[0]) < 0.02) & (abs(image[:, :, 1] - rgb[1]) < 0.02)
    close &= abs(image[:, :, 2] - rgb[2]) < 0.02
    return int(close.sum()) >= at_least


def test_a_chart_shows_its_series_the_start_and_the_threshold() -> None:
    now = time.time()
    series = [
        chart.Series(
            f'node_load1{{instance="10.0.0.{i}:9100"}}',
            [(now - 3600 + k * 12, 2 + math.sin(k / 20 + i)) for k in range(300)],
        )
        for i in range(12)
    ]
    png = chart.draw("NodeLoad 节点负载", series, now - 1200, chart.threshold("node_load1 > 1.5"))
    assert png.startswith(b"\x89PNG") and len(png) <= chart.MAX_BYTES
    image = pixels(png)
    assert image.shape[0] >= 300 and image.shape[1] >= 600
    assert has_colour(png, chart.COLORS[0])  # the first series' line
    assert has_colour(png, "#c92a2a")  # the start and the threshold
    # 12 series: 7 kept, the rest summed as one "others" line in the 8th colour.
    # No 9th line: a line is hundreds of pixels; a few anti-aliased pixels of text or grid can come within
    # 2 % of its grey by chance (this failed once in CI with at_least=1).
    assert has_colour(png, chart.COLORS[7]) and not has_colour(png, chart.COLORS[8], at_least=20)
    empty = chart.draw("nothing", [chart.Series("x", [])], now, None)
    assert not has_colour(empty, chart.COLORS[0], at_least=1)


def test_others_sum_the_rest() -> None:
    series = [chart.Series(str(i), [(0.0, float(i)), (1.0, 1.0)]) for i in range(10)]
    kept = chart.keep_series(series, 8)
    assert [s.name for s in kept[:7]] == ["9", "8", "7", "6", "5", "4", "3"]
    assert kept[7].name == "others (3)" and kept[7].points == [(0.0, 3.0), (1.0, 3.0)]


@pytest.mark.parametrize(
    ("expr", "line", "curve"),
    [
        ("node_load1 > 1.5", (">", 1.5), "node_load1"),
        (
            'rate(http_errors_total{job="api"}[5m]) >= 0.05',
            (">=", 0.05),
            'rate(http_errors_total{job="api"}[5m])',
        ),
        ("up == 0", ("==", 0.0), "up"),
        ("up", None, "up"),
        ("a > b", None, "a > b"),
        ("x < bool 3e2", ("<", 300.0), "x"),
    ],
)
def test_the_threshold_is_read_from_the_expression(expr: str, line: Any, curve: str) -> None:
    assert chart.threshold(expr) == line
    assert chart.strip_comparison(expr) == curve


@given(st.text(max_size=200))
def test_reading_a_threshold_never_fails(expr: str) -> None:
    found = chart.threshold(expr)
    assert found is None or math.isfinite(found[1])


def _alert(**fields: Any) -> Alert:
    return Alert.model_validate({"status": "firing", "startsAt": "2026-11-28T10:00:00Z", **fields})


def test_the_query_comes_from_the_annotation_else_the_graph_link() -> None:
    link = "http://evil.example:9090/graph?g0.expr=node_load1+%3E+1.5&g0.tab=1"
    assert chart_query(_alert(generatorURL=link), "chart_query") == "node_load1 > 1.5"
    given_query = _alert(generatorURL=link, annotations={"chart_query": "sum(rate(x[5m]))"})
    assert chart_query(given_query, "chart_query") == "sum(rate(x[5m]))"
    assert chart_query(_alert(generatorURL="http://grafana/d/abc"), "chart_query") is None
    assert chart_query(_alert(generatorURL="http://[::1"), "chart_query") is None


def _raw(simulator: str, tmp_path: Path, *targets: dict[str, Any]) -> dict[str, Any]:
    raw = raw_config(simulator, tmp_path, *targets)
    raw["prometheus"] = {"url": f"http://127.0.0.1:{free_port()}", "timeout": "1s"}  # nothing listens
    return raw


def test_the_config_refuses_charts_it_cannot_draw(
    simulator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = {"app": "ops", "to_user": ["zhangsan"], "chart": True}
    no_prometheus = raw_config(simulator, tmp_path, target)
    with pytest.raises(ConfigError, match=r"chart: set prometheus\.url"):
        parse_config(no_prometheus)
    with pytest.raises(ConfigError, match="app chats get no charts"):
        parse_config(_raw(simulator, tmp_path, {"app": "ops", "chat": "c1", "chart": True}))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a),
    )
    with pytest.raises(ConfigError, match=r"pip install 'alertmanager-wecom\[charts\]'"):
        parse_config(_raw(simulator, tmp_path, target))


def test_prometheus_down_the_text_goes_out_and_the_chart_is_skipped(
    simulator: str, sim_state: SimulatorState, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    raw = _raw(
        simulator,
        tmp_path,
        {"app": "ops", "to_user": ["zhangsan"], "chart": True},
        {"robot": "sre", "chart": True},
    )
    firing = json.loads((SAMPLES / "am-0.25-firing-nodedown.json").read_text(encoding="utf-8"))
    with serve_in_thread(create_app(parse_config(raw))) as relay:
        started = time.monotonic()
        assert post(relay, firing).status_code == 200
        wait_until(lambda: len(sim_state.inbox) >= 2, 15, "the text of both targets")
        assert time.monotonic() - started < 5
        wait_until(lambda: "Prometheus unreachable" in caplog.text, 15, "the reason logged")
        # Each target's chart is counted once it is over (sent, skipped or failed): then none is coming.
        charts = "alertmanager_wecom_charts_total"
        wait_until(lambda: metric(relay, charts) >= 2, 15, "both targets' charts over")
        assert [e.msgtype for e in sim_state.inbox if e.image] == []
        for channel in ("app", "robot"):
            assert (
                metric(relay, charts, channel=channel)
                == metric(relay, charts, channel=channel, outcome="skipped")
                == 1
            )


def test_the_simulator_checks_robot_images() -> None:
    from alertmanager_wecom.simulator.model import sandbox_settings

    state = SimulatorState(sandbox_settings())
    png = chart.draw("x", [chart.Series("s", [(0.0, 1.0), (60.0, 2.0)])], 0.0, None)

    def send(image: dict[str, Any]) -> int:
        body = json.dumps({"msgtype": "image", "image": image}).encode()
        return int(state.robot_send({"key": SANDBOX_ROBOT_KEY}, body)["errcode"])

    good = {"base64": base64.b64encode(png).decode(), "md5": md5(png)}
    assert send(good) == 0
    assert send({**good, "md5": "0" * 32}) == 40058
    assert send({**good, "base64": "not base64!"}) == 40058
    gif = b"GIF89a" + b"0" * 50
    assert send({"base64": base64.b64encode(gif).decode(), "md5": md5(gif)}) == 40005
    big = b"\x89PNG\r\n\x1a\n" + b"0" * (2 * 1024 * 1024)
    assert send({"base64": base64.b64encode(big).decode(), "md5": md5(big)}) == 40009
    shown = [e for e in state.inbox if e.image]
    assert len(shown) == 1 and state.media_bytes(shown[0].image) == (png, "image/png")


def test_the_sandbox_demo_shows_a_chart_without_prometheus(tmp_path: Path) -> None:
    from starlette.routing import Mount

    from alertmanager_wecom import samples
    from alertmanager_wecom.sandbox import SIMULATOR_PREFIX, sandbox_callbacks, sandbox_config
    from alertmanager_wecom.simulator import create_simulator_app, sandbox_settings

    port = free_port()
    config = sandbox_config("127.0.0.1", port, str(tmp_path))
    state = SimulatorState(sandbox_settings())
    simulator = create_simulator_app(state, sandbox_callbacks("127.0.0.1", port))
    app = create_app(config, extra_routes=[Mount(SIMULATOR_PREFIX, app=simulator)])
    with serve_in_thread(app, port=port) as relay:
        assert (
            httpx.post(
                f"{relay}/alerts/demo", json=samples.node_down(3, receiver="demo"), timeout=10
            ).status_code
            == 200
        )
        shown = wait_until(
            lambda: [e for e in state.inbox if e.image and e.recipient == "zhangsan"], 20, "the chart"
        )
        png = httpx.get(f"{relay}{SIMULATOR_PREFIX}/admin/media/{shown[0].image}", timeout=5).content
        assert has_colour(png, chart.COLORS[0])
        assert (
            f'src="admin/media/{shown[0].image}'
            in httpx.get(f"{relay}{SIMULATOR_PREFIX}/inbox", timeout=5).text
        )


def test_chinese_labels_render_with_the_cjk_font() -> None:
    """./test.sh installs fonts-noto-cjk: found (even installed after matplotlib's font cache was
    made), Chinese titles and series draw without a missing glyph (a box)."""
    assert chart._cjk_font() is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = chart.draw(
            "磁盘使用率 告警", [chart.Series('使用率{实例="一号机"}', [(0.0, 1.0), (60.0, 2.0)])], 30.0, None
        )
    assert png.startswith(b"\x89PNG")
    assert not [w for w in caught if "missing from" in str(w.message)], [str(w.message) for w in caught]
