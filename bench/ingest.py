"""Ingest: requests/s and latency of POST /alerts/{receiver} (durable commit included) vs a no-op endpoint.

Run: python bench/ingest.py [--seconds 10] [--backend redis] [--before REF]   (needs wrk: apt-get install wrk)
--before REF: the same measurements on the relay of commit REF too (its src/, extracted with git archive),
alternated with this checkout's in one run; --before-python PY runs it with another interpreter (a virtual
environment with that commit's dependencies, e.g. without a parser this checkout adds).
--backend redis starts a redis-server (appendonly, appendfsync always) in the work directory;
--backend redis sqlite measures both, alternated in each round (on a shared machine only figures of one
run compare).
Besides requests/s, the relay's CPU per request (its process and children: SQLite's ingest child,
counted from its start when it started during the run) while wrk ran, and its own process's alone
(`own`: its event loop and threads): when the relay's loop is what limits, the ratio to the no-op is
about the inverse of theirs, and it moves less than requests/s with what else the machine runs.
Each request carries a realistic 10-alert payload with a unique groupKey (so HA dedup never short-cuts).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    cli,
    cpu_seconds,
    dump,
    extract,
    free_port,
    machine,
    notification,
    redis_server,
    spawn,
    stop,
    wait_http,
    with_children,
    write_yaml,
)

# Every request's groupKey is unique across runs too (RUNTAG is new for each wrk run): a key seen in an
# earlier run would be answered as an HA duplicate, which skips the commit and flatters the figures.
LUA = """
counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
template = [[%s]]
request = function()
  counter = counter + 1
  local body = string.gsub(template, "GROUPKEY", "RUNTAG-" .. tostring(counter))
  return wrk.format(nil, nil, nil, body)
end
"""


def run_wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        match = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"])
    parser.add_argument(
        "--stack",
        default="standard",
        choices=["standard", "fast"],
        help="standard: asyncio + h11 (the default install); fast: uvloop + httptools",
    )
    parser.add_argument("--data-dir", help="where the outbox file goes (default: a temporary directory)")
    parser.add_argument("--no-delivery", action="store_true", help="WeCom unreachable: measure ingest alone")
    parser.add_argument("--backend", nargs="+", default=["sqlite"], choices=["sqlite", "redis"])
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 16, 64])
    parser.add_argument("--before", help="a commit to compare with (alternated with this checkout)")
    parser.add_argument("--before-python", help="the interpreter for --before (default: this one)")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amw-bench-ingest-"))
    codes: list[tuple[str, Path | None]] = [("this", None)]
    if args.before:
        codes.insert(0, (args.before[:8], extract(args.before, work / "before")))
    python = {"this": sys.executable, (args.before or "")[:8]: args.before_python or sys.executable}
    runs = []
    for round_ in range(args.rounds):
        for backend in args.backend:
            for label, src in codes:
                print(f"== {label} ({backend})", flush=True)
                run = one_run(args, backend, work / f"{label}-{backend}-{round_}", src, python[label])
                runs.append({"code": label, **run})
    print(dump({"machine": machine(), "runs": runs}))


def one_run(
    args: argparse.Namespace, backend: str, work: Path, src: Path | None, python: str
) -> dict[str, Any]:
    work.mkdir(parents=True)
    storage: dict[str, object] = {
        "path": str(Path(args.data_dir or work) / "outbox.db"),
        "synchronous": args.synchronous,
    }
    redis = None
    if backend == "redis":
        redis_port = free_port()
        redis = redis_server(work, redis_port)
        storage = {"backend": "redis", "url": f"redis://127.0.0.1:{redis_port}/0"}
    sim_port, relay_port = free_port(), free_port()
    sim = spawn(cli("simulator", "--listen", f"127.0.0.1:{sim_port}"), work / "sim.log")
    config = write_yaml(
        work / "relay.yaml",
        {
            "wecom": {"api_url": f"http://127.0.0.1:{sim_port if not args.no_delivery else 9}/cgi-bin/"},
            "apps": {
                "ops": {
                    "corp_id": "wwsandbox0000001",
                    "agent_id": 1000002,
                    "secret": "sandbox-app-secret-0000000000000000000000",
                }
            },
            "receivers": [{"name": "default", "targets": [{"app": "ops", "to_user": ["zhangsan"]}]}],
            "storage": storage,
        },
    )
    relay = spawn(
        [
            python,
            str(Path(__file__).with_name("ingest_server.py")),
            str(config),
            str(relay_port),
            args.stack,
        ],
        work / "relay.log",
        env={"PYTHONPATH": str(src)} if src else None,
    )
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/admin/stats")
        wait_http(f"http://127.0.0.1:{relay_port}/healthz")
        body = json.dumps(notification("GROUPKEY", 10), ensure_ascii=False)
        script = work / "post.lua"
        results: dict[str, Any] = {
            "machine": machine(),
            "payload_bytes": len(body.encode()),
            "synchronous": args.synchronous,
            "backend": backend,
            "runs": [],
        }
        for connections in args.concurrency:
            for name, path in (("noop", "/noop"), ("alerts", "/alerts/default")):
                script.write_text((LUA % body).replace("RUNTAG", f"{name}-c{connections}"), encoding="utf-8")
                # A child started during the run (SQLite's ingest child starts with the first webhook) counts
                # from its start: the processes are listed again afterwards.
                before = {pid: cpu_seconds(pid) for pid in with_children(relay.pid)}
                result = run_wrk(f"http://127.0.0.1:{relay_port}{path}", script, connections, args.seconds)
                after = {pid: cpu_seconds(pid) for pid in with_children(relay.pid)}
                requests = result["rps"] * args.seconds
                cpu = sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
                result["cpu_us_per_request"] = round(cpu / requests * 1e6)
                # The relay's own process (its event loop and threads) alone: what limits ingest when the
                # loop is busy all the time.
                own = after[relay.pid] - before[relay.pid]
                result["own_cpu_us_per_request"] = round(own / requests * 1e6)
                results["runs"].append({"endpoint": name, "concurrency": connections, **result})
                print(
                    f"{name:<7} c={connections:<3} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.2f} ms  "
                    f"p99 {result['p99_ms']:6.2f} ms  non-2xx {result['non_2xx']}  relay CPU"
                    f" {result['cpu_us_per_request']} µs/request (own {result['own_cpu_us_per_request']})",
                    flush=True,
                )
        for connections in args.concurrency:
            noop = next(
                r for r in results["runs"] if r["endpoint"] == "noop" and r["concurrency"] == connections
            )
            real = next(
                r for r in results["runs"] if r["endpoint"] == "alerts" and r["concurrency"] == connections
            )
            print(
                f"c={connections}: /alerts throughput = {real['rps'] / noop['rps']:.0%} of no-op"
                f" (relay CPU per request: no-op {noop['cpu_us_per_request'] / real['cpu_us_per_request']:.0%}"
                " of /alerts)",
                flush=True,
            )
        return results
    finally:
        stop(relay)
        stop(sim)
        if redis is not None:
            stop(redis)


if __name__ == "__main__":
    main()
