"""Charts from alert data are bounded (issue 20): the query_range a chart sends carries Prometheus's own
`timeout`, a range the alert's start cannot stretch and a step that keeps it to `charts.points`; with
`prometheus.queries_from: generator_url` a query written in an annotation is never run. A loopback HTTP
server stands in for Prometheus and records each query string; the relay and the simulator are real.
(The real Prometheus takes these parameters: tests/test_e2e_charts.py draws its chart through them.)"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from alertmanager_wecom import samples
from alertmanager_wecom.config import Config
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.rendering import chart
from alertmanager_wecom.simulator.state import SimulatorState
from alertmanager_wecom.web.app import create_app
from tests.helpers import post, raw_config, wait_until
from tests.servers import serve_in_thread

DAY = 86400.0


@pytest.fixture
def prometheus() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A Prometheus stand-in: records every query_range's parameters, answers one short series."""
    asked: list[dict[str, str]] = []

    async def query_range(request: Request) -> Response:
        params = dict(request.query_params)
        asked.append(params)
        end = float(params["end"])
        values = [[end - 60 * k, f"{1 + k % 3}"] for k in range(10, -1, -1)]
        return JSONResponse(
            {
                "status": "success",
                "data": {"resultType": "matrix", "result": [{"metric": {"job": "x"}, "values": values}]},
            }
        )

    app = Starlette(routes=[Route("/api/v1/query_range", query_range)])
    with serve_in_thread(app) as url:
        yield url, asked


def _payload(started: datetime, annotation: str | None, link: bool = True) -> dict[str, Any]:
    payload = samples.node_down(1, started=started)
    alert = payload["alerts"][0]
    if annotation is not None:
        alert["annotations"]["chart_query"] = annotation
    if not link:
        alert["generatorURL"] = "http://grafana.example/d/abc"
    return payload


def _config(simulator: str, tmp_path: Path, url: str, **prometheus: Any) -> Config:
    raw = raw_config(simulator, tmp_path, {"app": "ops", "to_user": ["zhangsan"], "chart": True})
    raw["prometheus"] = {"url": url, "timeout": "2500ms", **prometheus}
    raw["charts"] = {"points": 50, "max_range": "2d"}
    return parse_config(raw)


def test_the_query_carries_a_timeout_and_a_bounded_range_and_step(
    simulator: str,
    sim_state: SimulatorState,
    tmp_path: Path,
    prometheus: tuple[str, list[dict[str, str]]],
) -> None:
    url, asked = prometheus
    # The alert says it started 40 days ago: the chart still asks for the last 2 days (max_range).
    started = datetime.now(UTC) - timedelta(days=40)
    with serve_in_thread(create_app(_config(simulator, tmp_path, url))) as relay:
        assert post(relay, _payload(started, "sum(rate(x_total[5m]))")).status_code == 200
        wait_until(lambda: [e for e in sim_state.inbox if e.image], 20, "the chart")
    [params] = asked
    assert params["query"] == "sum(rate(x_total[5m]))"
    assert params["timeout"] == "2.5"  # Prometheus reads plain seconds
    start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
    assert abs(end - time.time()) < 60
    assert 2 * DAY - 1 <= end - start <= 2 * DAY + 1
    assert int((end - start) // step) + 1 <= 50  # the points Prometheus computes per series


def test_with_queries_from_generator_url_an_annotation_query_is_never_run(
    simulator: str,
    sim_state: SimulatorState,
    tmp_path: Path,
    prometheus: tuple[str, list[dict[str, str]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, asked = prometheus
    caplog.set_level(logging.INFO)
    config = _config(simulator, tmp_path, url, queries_from="generator_url")
    started = datetime.now(UTC) - timedelta(minutes=5)
    expensive = 'count_values("x", {__name__=~".+"})'
    with serve_in_thread(create_app(config)) as relay:
        # The annotation and the rule's link: the rule's expression is run, not the annotation.
        assert post(relay, _payload(started, expensive)).status_code == 200
        wait_until(lambda: [e for e in sim_state.inbox if e.image], 20, "the chart of the rule")
        # The annotation alone: no chart, and Prometheus is not asked.
        other = _payload(started, expensive, link=False)
        other["groupKey"] = '{}:{alertname="Other"}'
        other["alerts"][0]["labels"]["alertname"] = "Other"
        assert post(relay, other).status_code == 200
        wait_until(lambda: "annotations choose no query" in caplog.text, 20, "the chart skipped")
    assert [params["query"] for params in asked] == ['up{job="node"}']
    assert all(expensive not in json.dumps(params) for params in asked)


def test_an_answer_too_large_for_a_chart_is_not_read(
    simulator: str, sim_state: SimulatorState, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A query that matches a huge number of series: its answer is not read into memory past 16 MB."""
    caplog.set_level(logging.INFO)

    async def huge(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"status":"success","data":{"resultType":"matrix","result":['
            for _ in range(40):  # 40 MB, if all of it were read
                yield b'{"metric":{},"values":[]},' * 40_000
            yield b'{"metric":{},"values":[]}]}}'

        return StreamingResponse(chunks(), media_type="application/json")

    with serve_in_thread(Starlette(routes=[Route("/api/v1/query_range", huge)])) as url:
        config = _config(simulator, tmp_path, url)
        with serve_in_thread(create_app(config)) as relay:
            assert post(relay, _payload(datetime.now(UTC), "count(up)")).status_code == 200
            wait_until(lambda: "answer is over 16 MB" in caplog.text, 20, "the chart skipped")
    assert not [e for e in sim_state.inbox if e.image]


@given(
    started=st.floats(-1e12, 1e12),
    before=st.floats(1, 1e7),
    max_range=st.floats(60, 31 * DAY),
    points=st.integers(10, 11000),
)
def test_the_window_is_bounded_whatever_the_alert_says(
    started: float, before: float, max_range: float, points: int
) -> None:
    now = 1.8e9
    start, end, step = chart.query_window(started, now, before, max_range, points)
    assert end == now and chart.MIN_RANGE - 1e-3 <= end - start <= max_range + 1e-3  # float rounding
    assert step >= 1 and int((end - start) // step) + 1 <= points
