"""The Redis outbox's acceptances alone (no HTTP, no dispatcher): `RedisOutbox.accept` of the ingest
benchmark's 10-alert payload (4.6 KB), `--concurrency` at a time for `--seconds`, each with a unique
dedup key, against a redis-server with appendonly yes and appendfsync always. Reported: acceptances a
second, latency, and the CPU each costs the client (the relay's event loop) and redis-server (which shares
the relay's cores).

Run: python bench/redis_accept.py [--seconds 4 --concurrency 16] [--before REF --rounds 2]
--before REF: the outbox of commit REF too (its src/, extracted with git archive), alternated with this
checkout's in one run, each in a process of its own, on the same redis-server; --before-python PY runs it
with another interpreter (a virtual environment with that commit's dependencies).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import cpu_seconds, dump, extract, free_port, machine, notification, redis_server, stop


async def measure(url: str, seconds: float, concurrency: int) -> dict[str, float]:
    from alertmanager_wecom.outbox import NewJob
    from alertmanager_wecom.outbox.redis import RedisOutbox

    outbox = RedisOutbox(url, key_prefix=f"b{uuid.uuid4().hex[:8]}")
    body = json.dumps(notification("g", 10), ensure_ascii=False)
    latencies: list[float] = []
    end = time.monotonic() + seconds
    cpu = time.process_time()

    async def client(k: int) -> None:
        i = 0
        while time.monotonic() < end:
            i += 1
            started = time.monotonic()
            job = NewJob("t", '{"app": "ops", "to_user": ["a"]}', body)
            await outbox.accept("default", [job], f"k{k}-{i}-{uuid.uuid4().hex}", 300, time.time())
            latencies.append(time.monotonic() - started)

    await asyncio.gather(*(client(k) for k in range(concurrency)))
    cpu = time.process_time() - cpu
    await outbox.close()
    latencies.sort()
    return {
        "per_second": round(len(latencies) / seconds),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        # The relay is CPU-bound under load (one event loop): what an acceptance costs it, client side.
        "cpu_us_per_accept": round(cpu / len(latencies) * 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--before", help="a commit to compare with (alternated with this checkout)")
    parser.add_argument("--before-python", help="the interpreter for --before (default: this one)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--url", help=argparse.SUPPRESS)  # the measuring child process
    args = parser.parse_args()
    if args.url:
        print(json.dumps(asyncio.run(measure(args.url, args.seconds, args.concurrency))))
        return
    work = Path(tempfile.mkdtemp(prefix="amw-bench-redis-accept-"))
    port = free_port()
    redis = redis_server(work, port)
    codes: list[tuple[str, Path | None]] = [("this", None)]
    if args.before:
        codes.insert(0, (args.before[:8], extract(args.before, work / "before")))
    runs = []
    try:
        time.sleep(0.5)
        for _ in range(args.rounds):
            for label, src in codes:
                env = {**os.environ, **({"PYTHONPATH": str(src)} if src else {})}
                python = args.before_python if src and args.before_python else sys.executable
                child = [python, __file__, "--url", f"redis://127.0.0.1:{port}/0"]
                child += ["--seconds", str(args.seconds), "--concurrency", str(args.concurrency)]
                server_cpu = cpu_seconds(redis.pid)
                out = subprocess.run(child, env=env, capture_output=True, text=True, check=True).stdout
                server_cpu = cpu_seconds(redis.pid) - server_cpu
                result = {"code": label, **json.loads(out.strip().splitlines()[-1])}
                # redis-server's CPU (its scripts, the AOF's writes and fsyncs) shares the relay's cores.
                accepts = result["per_second"] * args.seconds
                result["server_cpu_us_per_accept"] = round(server_cpu / accepts * 1e6)
                runs.append(result)
                print(
                    f"{label:<8} {result['per_second']:6.0f} accepts/s  p50 {result['p50_ms']:6.2f} ms"
                    f"  p99 {result['p99_ms']:6.2f} ms  CPU {result['cpu_us_per_accept']} µs per accept"
                    f" (redis-server {result['server_cpu_us_per_accept']} µs)",
                    flush=True,
                )
    finally:
        stop(redis)
    print(dump({"machine": machine(), "concurrency": args.concurrency, "runs": runs}))


if __name__ == "__main__":
    main()
