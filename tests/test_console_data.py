"""What the console gathers for its pages (web/console_data.py), through the real relay: opening a
delivery renders its job again for display, and that render is not a delivery (it logs nothing)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import pytest

from alertmanager_wecom import samples
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.simulator.state import SimulatorState
from alertmanager_wecom.web.app import create_app
from tests.helpers import post, raw_config, wait_until
from tests.servers import serve_in_thread

AUTH = ("ops", "console-data-pass-5")


def test_opening_a_delivery_does_not_log_its_warnings_again(
    simulator: str, sim_state: SimulatorState, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    template = tmp_path / "team.j2"
    # Fails for an alert with env=prod and no team label: the delivery falls back and logs it.
    template.write_text(
        "{% for a in alerts %}{% if a.labels.get('env') == 'prod' %}{{ a.labels.team }}{% endif %}"
        "{{ a.name }}\n{% endfor %}",
        encoding="utf-8",
    )
    raw = raw_config(
        simulator,
        tmp_path,
        {"app": "ops", "to_user": ["zhangsan"], "msgtype": "text", "template": str(template)},
        {"robot": "sre", "msgtype": "markdown", "mention_from": ["labels.owner"]},
    )
    raw["server"] = {"admin_auth": {"basic_auth": {"username": AUTH[0], "password": AUTH[1]}}}
    payload = samples.node_down(1, cluster="prod-cluster")
    payload["alerts"][0]["labels"].update({"env": "prod", "owner": "@all"})  # a mention that is refused
    caplog.set_level(logging.INFO)
    with serve_in_thread(create_app(parse_config(raw))) as relay:
        assert post(relay, payload).status_code == 200
        wait_until(lambda: len(sim_state.inbox) >= 2, 15, "both targets' messages")

        def logged() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

        # The delivery itself says both: the render is the same code, so the test can fail.
        wait_until(lambda: len(logged()) >= 2, 10, "the delivery's warnings")
        assert any("its template failed" in line for line in logged())
        assert any("mentions from alert data refused" in line for line in logged())

        listing = httpx.get(f"{relay}/ui/deliveries", auth=AUTH, timeout=10)
        ids = sorted(set(re.findall(r'href="/ui/deliveries/(\d+)"', listing.text)))
        assert len(ids) == 2, listing.text
        caplog.clear()
        for job_id in ids:
            page = httpx.get(f"{relay}/ui/deliveries/{job_id}", auth=AUTH, timeout=10)
            assert page.status_code == 200
            assert "NodeDown" in page.text  # it was rendered, with the fallback where the delivery had it
        assert logged() == []
