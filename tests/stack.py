"""The simulator and the relay as real processes, for end-to-end tests that kill and restart them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from alertmanager_wecom.simulator.model import SANDBOX_ROBOT_KEY
from tests.alertmanager import relay_env, write_relay_config
from tests.servers import free_port, stop_process, wait_http


class Stack:
    def __init__(
        self,
        tmp_path: Path,
        sim_args: list[str] | None = None,
        delivery: dict[str, Any] | None = None,
        receivers: list[dict[str, Any]] | None = None,
        **target: Any,
    ) -> None:
        self.tmp_path = tmp_path
        self.sim_port, self.relay_port = free_port(), free_port()
        self.sim = f"http://127.0.0.1:{self.sim_port}"
        self.relay = f"http://127.0.0.1:{self.relay_port}"
        self.sim_args = sim_args or []
        self.config = write_relay_config(tmp_path, self.sim, delivery, **target)
        if receivers is not None:  # several receivers: replace the generated ones
            raw = yaml.safe_load(self.config.read_text(encoding="utf-8"))
            raw["receivers"] = receivers
            raw["robots"] = {"sre": {"key": SANDBOX_ROBOT_KEY}}
            self.config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        self.sim_proc: subprocess.Popen[bytes] | None = None
        self.relay_proc: subprocess.Popen[bytes] | None = None
        self.relay_starts = 0

    def _spawn(self, args: list[str], log: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with (self.tmp_path / log).open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "alertmanager_wecom", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )

    def start_sim(self) -> None:
        self.sim_proc = self._spawn(
            ["simulator", "--listen", f"127.0.0.1:{self.sim_port}", *self.sim_args], "sim.log"
        )
        wait_http(f"{self.sim}/admin/stats", proc=self.sim_proc)

    def start_relay(self) -> None:
        self.relay_starts += 1
        self.relay_proc = self._spawn(
            ["serve", "--config", str(self.config), "--listen", f"127.0.0.1:{self.relay_port}"],
            "relay.log",
            relay_env(),
        )
        wait_http(f"{self.relay}/healthz", proc=self.relay_proc)

    def kill_relay(self) -> None:
        assert self.relay_proc is not None
        self.relay_proc.send_signal(signal.SIGKILL)
        self.relay_proc.wait()

    def relay_children(self) -> list[int]:
        """The relay's child processes (its ingest writer)."""
        assert self.relay_proc is not None
        parent = str(self.relay_proc.pid)
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == parent:  # the field after the state is the parent's pid
                children.append(int(stat.parent.name))
        return children

    def stop_sim(self) -> None:
        if self.sim_proc is not None:
            self.sim_proc.terminate()
            self.sim_proc.wait(10)
            self.sim_proc = None

    def __enter__(self) -> Stack:
        self.start_sim()
        self.start_relay()
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in (self.relay_proc, self.sim_proc):
            if proc is not None:
                stop_process(proc, grace=15)

    # -- looking at what people see ------------------------------------------------------------------

    def inbox(self, user: str = "zhangsan") -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.sim}/admin/inbox", params={"user": user}, timeout=10).json()["entries"])

    def visible_text(self, user: str = "zhangsan") -> str:
        return "\n".join(e["visible"] for e in self.inbox(user) if e["dropped"] is None)

    def sim_stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.sim}/admin/stats", timeout=10).json())

    def relay_log(self) -> str:
        return (self.tmp_path / "relay.log").read_text(encoding="utf-8", errors="replace")

    def pending(self) -> int:
        """Jobs the relay has still to send (its /readyz): at 0, nothing more reaches WeCom."""
        return int(httpx.get(f"{self.relay}/readyz", timeout=10).json()["pending"])

    def received(self, status: str, receiver: str = "default") -> int:
        """The relay's alertmanager_wecom_notifications_received_total{receiver, status}."""
        text = httpx.get(f"{self.relay}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.endswith("_notifications_received_total") and sample.labels == {
                    "receiver": receiver,
                    "status": status,
                }:
                    return int(sample.value)
        return 0

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "alertmanager_wecom", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **relay_env()},
        )
