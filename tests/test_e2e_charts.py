"""A chart end to end: a real Prometheus (Debian package) scrapes a target and evaluates a rule, the real
Alertmanager sends the alert to this service, the simulator's inbox shows the text and then a PNG of the
rule's expression, drawn from Prometheus's data."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from matplotlib import image as mpimg

from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.rendering import chart
from alertmanager_wecom.simulator.state import SimulatorState
from alertmanager_wecom.web.app import create_app
from tests.alertmanager import run_alertmanager, webhook_config
from tests.helpers import raw_config, wait_until
from tests.prometheus import run_prometheus
from tests.servers import free_port, serve_in_thread

pytestmark = pytest.mark.e2e

RULE = {
    "alert": "RelayConfigLoaded",
    "expr": "alertmanager_wecom_config_last_reload_successful > 0.5",
    "labels": {"severity": "warning"},
    "annotations": {"summary": "配置已加载 (a rule that fires at once)"},
}


def test_prometheus_rule_to_a_chart_in_the_inbox(
    simulator: str, sim_state: SimulatorState, tmp_path: Path
) -> None:
    relay_port = free_port()
    with (
        run_alertmanager(tmp_path, webhook_config(f"http://127.0.0.1:{relay_port}/alerts/default")) as am,
        run_prometheus(tmp_path, f"127.0.0.1:{relay_port}", am, [RULE]) as prometheus,
    ):
        raw = raw_config(
            simulator,
            tmp_path,
            {"app": "ops", "to_user": ["zhangsan"], "chart": True},
            {"robot": "sre", "chart": True},
        )
        raw["prometheus"] = {"url": prometheus}
        raw["charts"] = {"before": "1m"}  # Prometheus has only just started: a short window has data
        with serve_in_thread(create_app(parse_config(raw)), port=relay_port) as relay:

            def both_charts() -> list[Any] | None:
                shown = [e for e in sim_state.inbox if e.image]
                return shown if len(shown) >= 2 else None

            images = wait_until(
                both_charts,
                90,
                "the charts in zhangsan's inbox and the robot's chat",
            )
            for entry in images:
                before = [e for e in sim_state.inbox if e.recipient == entry.recipient and e.id < entry.id]
                assert before and "RelayConfigLoaded" in before[-1].visible  # the text came first
                served = httpx.get(f"{simulator}/admin/media/{entry.image}", timeout=5)
                assert served.headers["content-type"] == "image/png"
                png = served.content
                assert png.startswith(b"\x89PNG") and len(png) <= 2 * 1024 * 1024
                pixels = mpimg.imread(io.BytesIO(png), format="png")
                assert pixels.shape[1] >= 600 and pixels[:, :, :3].std() > 0.01  # not blank
                rgb = [int(chart.COLORS[0][i : i + 2], 16) / 255 for i in (1, 3, 5)]
                line = (abs(pixels[:, :, 0] - rgb[0]) < 0.02) & (abs(pixels[:, :, 1] - rgb[1]) < 0.02)
                line &= abs(pixels[:, :, 2] - rgb[2]) < 0.02
                assert int(line.sum()) >= 30, "the series' line is drawn"
            assert {e.recipient for e in images} == {"zhangsan", "robot:sre"}
            metrics = httpx.get(f"{relay}/metrics", timeout=5).text
            assert 'alertmanager_wecom_charts_total{channel="app",outcome="sent"} 1.0' in metrics
