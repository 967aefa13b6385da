"""Tracing's cost on ingest: POST /alerts/{receiver} with tracing off, and on but not sampled (an
endpoint set, sampling_fraction 0, no sampled traceparent: what most webhooks meet in production with
tracing on), in alternating rounds so that the shared machine's drift falls on both alike.

Run: python bench/tracing.py [--seconds 10] [--rounds 3] [--concurrency 16] [--modes off unsampled caller sampled]
(needs wrk: apt-get install wrk); --cpu-only: only the first part below.

Two figures: first the relay's CPU per webhook, in this process (the app called through httpx's ASGI
transport, `time.process_time`, the ingest child's commits not counted): what tracing adds to the
webhook's own work, and steadier than throughput on a shared machine. Then requests/s and latency with wrk
against `serve`-like processes. WeCom is unreachable on purpose: this measures ingest alone (the
target is held back after its first failure, so delivery takes no CPU from the webhooks). `caller`: on,
each webhook carrying a traceparent its caller did not sample (Alertmanager with tracing, unsampled).
`sampled` (sampling_fraction 1, spans exported to a sink in this process) is there for information.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from common import dump, free_port, machine, notification, spawn, stop, wait_http, write_yaml
from ingest import LUA, run_wrk

from alertmanager_wecom.config.tracing import TracingSettings
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.tracing import OFF, Tracing, start_tracing
from alertmanager_wecom.web.app import create_app

# What Alertmanager 0.30+ sends when its tracing did not sample the notification.
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
NOT_SAMPLED = f'wrk.headers["traceparent"] = "{TRACEPARENT}"\n'
WEBHOOK = "POST /alerts/{receiver}"


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that keeps nothing (an empty ExportTraceServiceResponse is an empty body)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def config(work: Path, mode: str, sink: str) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "wecom": {"api_url": "http://127.0.0.1:9/cgi-bin/"},  # nothing listens: ingest alone
        "apps": {
            "ops": {
                "corp_id": "wwsandbox0000001",
                "agent_id": 1000002,
                "secret": "sandbox-app-secret-0000000000000000000000",
            }
        },
        "receivers": [{"name": "default", "targets": [{"app": "ops", "to_user": ["zhangsan"]}]}],
        "storage": {"path": str(work / "outbox.db")},
    }
    if mode != "off":
        fraction = 1.0 if mode == "sampled" else 0.0
        raw["tracing"] = {"endpoint": sink, "insecure": True, "sampling_fraction": fraction}
    return raw


def span_cost(tracing: Tracing, traceparent: str | None, count: int = 20000) -> float:
    """Microseconds of the webhook's span alone: made, given attributes, its traceparent read."""
    attributes = {"http.request.method": "POST", "http.route": "/alerts/{receiver}"}
    started = time.perf_counter()
    for _ in range(count):
        with tracing.span(WEBHOOK, traceparent, kind="server", attributes=attributes) as span:
            span.set("alertmanager_wecom.receiver", "default")
            _ = span.traceparent
            span.set("http.response.status_code", 200)
    return (time.perf_counter() - started) / count * 1e6


async def cpu_per_webhook(work: Path, mode: str, sink: str, count: int) -> float:
    """Microseconds of this process's CPU per webhook (accepted and committed), over `count` of them."""
    app = create_app(parse_config(config(work, mode, sink)))
    headers = {"traceparent": TRACEPARENT} if mode == "caller" else {}
    bodies = [json.dumps(notification(f"{mode}-{i}", 10)).encode() for i in range(count)]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost"
        ) as client:  # a host the relay serves
            for body in bodies[:50]:  # warm-up (the ingest child starts): not counted
                await client.post("/alerts/default", content=body, headers=headers)
            started = time.process_time()
            for body in bodies[50:]:
                answer = await client.post("/alerts/default", content=body, headers=headers)
                assert answer.status_code == 200, answer.text
            return (time.process_time() - started) / (count - 50) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--webhooks", type=int, default=2000, help="per CPU measurement")
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument(
        "--modes", nargs="+", default=["off", "unsampled"], choices=["off", "unsampled", "caller", "sampled"]
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amw-bench-tracing-"))
    sink_server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink_server.serve_forever, daemon=True).start()
    sink = f"127.0.0.1:{sink_server.server_address[1]}"
    body = json.dumps(notification("GROUPKEY", 10), ensure_ascii=False)
    runs: list[dict[str, Any]] = []
    cpu: dict[str, list[float]] = {mode: [] for mode in args.modes}
    spans: dict[str, float] = {}
    try:
        for mode in args.modes:
            settings = config(work, mode, sink).get("tracing", {})
            tracing = start_tracing(TracingSettings(**settings)) if settings else OFF
            spans[mode] = round(span_cost(tracing, TRACEPARENT if mode == "caller" else None), 2)
            tracing.shutdown()
            print(f"{mode:<9} {spans[mode]:7.2f} µs for the webhook's span alone", flush=True)
        for round_ in range(1, args.rounds + 1):
            for mode in args.modes:
                here = work / f"cpu-{mode}-{round_}"
                here.mkdir()
                micros = asyncio.run(cpu_per_webhook(here, mode, sink, args.webhooks))
                cpu[mode].append(round(micros, 1))
                print(f"round {round_} {mode:<9} {micros:7.1f} µs of CPU per webhook", flush=True)
        for mode in args.modes:
            print(f"{mode:<9} median {statistics.median(cpu[mode]):7.1f} µs of CPU per webhook")
        if args.cpu_only:
            print(dump({"machine": machine(), "span_us": spans, "cpu_us_per_webhook": cpu}))
            return
        for round_ in range(1, args.rounds + 1):
            for mode in args.modes:
                here = work / f"{mode}-{round_}"
                here.mkdir()
                port = free_port()
                relay = spawn(
                    [
                        sys.executable,
                        str(Path(__file__).with_name("ingest_server.py")),
                        str(write_yaml(here / "relay.yaml", config(here, mode, sink))),
                        str(port),
                    ],
                    here / "relay.log",
                )
                try:
                    wait_http(f"http://127.0.0.1:{port}/healthz")
                    script = here / "post.lua"
                    url = f"http://127.0.0.1:{port}/alerts/default"
                    script.write_text(
                        (LUA % body).replace("RUNTAG", f"warm-{mode}-{round_}"), encoding="utf-8"
                    )
                    run_wrk(url, script, args.concurrency, 2)  # warm-up: not counted
                    script.write_text((LUA % body).replace("RUNTAG", f"{mode}-{round_}"), encoding="utf-8")
                    result = run_wrk(url, script, args.concurrency, args.seconds)
                finally:
                    stop(relay)
                runs.append({"mode": mode, "round": round_, **result})
                print(
                    f"round {round_} {mode:<9} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.2f} ms  "
                    f"p99 {result['p99_ms']:6.2f} ms  non-2xx {result['non_2xx']}",
                    flush=True,
                )
        summary = {}
        for mode in args.modes:
            mine = [r for r in runs if r["mode"] == mode]
            summary[mode] = {
                "median_rps": statistics.median(r["rps"] for r in mine),
                "median_p99_ms": statistics.median(r["p99_ms"] for r in mine),
            }
            print(
                f"{mode:<9} median {summary[mode]['median_rps']:8.0f} req/s, p99 {summary[mode]['median_p99_ms']:.2f} ms"
            )
        result = {"machine": machine(), "span_us": spans, "cpu_us_per_webhook": cpu}
        result["concurrency"] = args.concurrency
        print(dump({**result, "summary": summary, "runs": runs}))
    finally:
        sink_server.shutdown()


if __name__ == "__main__":
    main()
