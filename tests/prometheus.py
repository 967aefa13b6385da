"""Run the real Prometheus binary (Debian package prometheus) for end-to-end tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers import free_port, stop_process, wait_http


@contextmanager
def run_prometheus(
    tmp_path: Path, scrape: str, alertmanager: str | None = None, rules: list[dict[str, Any]] | None = None
) -> Iterator[str]:
    """A real Prometheus scraping `scrape` (host:port) every second; with `rules` evaluated every second
    and sent to `alertmanager`. Yields its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Prometheus is not installed: run ./test.sh (it installs the Debian package prometheus)")
    settings: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "alertmanager-wecom", "static_configs": [{"targets": [scrape]}]}],
    }
    if rules:
        rule_file = tmp_path / "rules.yml"
        rule_file.write_text(
            yaml.safe_dump({"groups": [{"name": "relay", "rules": rules}]}, allow_unicode=True),
            encoding="utf-8",
        )
        settings["rule_files"] = [str(rule_file)]
    if alertmanager:
        target = alertmanager.removeprefix("http://")
        settings["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=60, proc=proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(proc)
