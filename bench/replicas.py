"""Replicas on Redis: a storm through three replicas, and how long a dead replica's targets wait.

Run: python bench/replicas.py [--groups 200 --per-group 10] [--lease 3] [--skip-storm] [--kills 3]
Starts the simulator (WeCom's limits), a redis-server (appendfsync always) and three `serve` processes
sharing it (real processes on loopback, each with its own storage.path).
1. Storm: `groups` notifications of `per-group` alerts for one person, posted round-robin to the three
   replicas at once, each also to the next replica (two Alertmanagers): alerts visible, messages seen,
   dropped by WeCom's limits, time to the last delivery.
2. Takeover (`kills` rounds): a storm to three other people while WeCom answers slowly (1 s a call), so
   that every replica is in the middle of sending; the replica holding the most targets (read from
   their leases in Redis) is killed with -9 and started again; for each target it held, the time from
   the kill until that person's next message (another replica took the target over). Without --lease
   the service's default applies.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis
from common import (
    cli,
    dump,
    free_port,
    machine,
    notification,
    redis_server,
    spawn,
    stop,
    wait_http,
    write_yaml,
)

from alertmanager_wecom.config import target_spec
from alertmanager_wecom.ingest.routing import target_key
from alertmanager_wecom.loading import load_config

CORP, AGENT, SECRET = "wwsandbox0000001", 1000002, "sandbox-app-secret-0000000000000000000000"


def inbox(sim: str, user: str = "zhangsan") -> list[dict[str, Any]]:
    return list(httpx.get(f"{sim}/admin/inbox", params={"user": user}, timeout=10).json()["entries"])


PEOPLE = {"default": "zhangsan", "other": "lisi", "third": "wangwu", "fourth": "zhaoliu"}
PREFIX = "amw-bench"


def relay_config(work: Path, index: int, sim: str, redis_port: int, lease: float | None) -> Path:
    home = work / f"relay-{index}"
    home.mkdir(exist_ok=True)
    storage: dict[str, Any] = {
        "backend": "redis",
        "url": f"redis://127.0.0.1:{redis_port}/0",
        "key_prefix": PREFIX,
        "path": str(home / "outbox.db"),  # each replica its own disk, as pods have
    }
    if lease is not None:
        storage["lease"] = f"{lease}s"
    return write_yaml(
        home / "relay.yaml",
        {
            "wecom": {"api_url": f"{sim}/cgi-bin/"},
            "apps": {"ops": {"corp_id": CORP, "agent_id": AGENT, "secret": SECRET}},
            "receivers": [
                {"name": name, "targets": [{"app": "ops", "to_user": [user]}]}
                for name, user in PEOPLE.items()
            ],
            "storage": storage,
        },
    )


def start_relay(work: Path, index: int, config: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    proc = spawn(
        cli("serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"), work / f"relay-{index}.log"
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz")
    return url, proc


def held_targets(store: Any) -> dict[int, list[str]]:
    """pid → the target keys its leases hold now (the owner is "<host>-<pid>-<random>")."""
    held: dict[int, list[str]] = {}
    for key in store.scan_iter(f"{PREFIX}:lease:*"):
        owner = store.get(key)
        if owner is not None:
            held.setdefault(int(owner.rsplit("-", 2)[1]), []).append(key.rsplit(":", 1)[1])
    return held


def storm(sim: str, relays: list[str], groups: int, per_group: int) -> dict[str, Any]:
    names = [f"host-g{g}-{i}" for g in range(groups) for i in range(per_group)]
    t0 = time.time()
    with httpx.Client(timeout=30) as client:
        for g in range(groups):
            body = notification(f"g{g}", per_group)
            for copy in (0, 1):
                client.post(f"{relays[(g + copy) % 3]}/alerts/default", json=body).raise_for_status()
    # Until every alert is visible (the person's limit may hold a part back to the next minute).
    while time.time() - t0 < 300:
        text = "\n".join(e["visible"] for e in inbox(sim) if e["dropped"] is None)
        if set(names) <= set(re.findall(r"host-g\d+-\d+", text)):
            break
        time.sleep(1)
    time.sleep(5)  # duplicates, if any, would arrive now
    entries = inbox(sim)
    shown = [e for e in entries if e["dropped"] is None]
    found = set(re.findall(r"host-g\d+-\d+", "\n".join(e["visible"] for e in shown)))
    return {
        "alerts": len(names),
        "alerts_visible": len(found & set(names)),
        "messages_seen": len(shown),
        "messages_dropped": len(entries) - len(shown),
        "seconds_to_last_delivery": round(max(e["at"] for e in shown) - t0, 1) if shown else None,
    }


def takeover(
    sim: str,
    work: Path,
    relays: list[tuple[str, subprocess.Popen[bytes]]],
    configs: list[Path],
    store: Any,
    round_: int,
) -> dict[str, Any]:
    """One kill during a storm to lisi, wangwu and zhaoliu; see the module's docstring."""
    httpx.post(f"{sim}/admin/faults", json={"rate": 1.0, "kinds": ["slow"], "slow_seconds": 1}, timeout=10)
    receivers = ["other", "third", "fourth"]
    with httpx.Client(timeout=30) as client:
        for g in range(6):
            for n, receiver in enumerate(receivers):
                body = notification(f"k{round_}-{g}", 2, receiver=receiver, prefix=f"kill{round_}")
                client.post(f"{relays[(g + n) % 3][0]}/alerts/{receiver}", json=body).raise_for_status()
    time.sleep(1.5)  # every replica in the middle of a slow send
    config = load_config(configs[0])
    keys = {target_key(r.name, target_spec(t)): r.name for r in config.receivers for t in r.targets}
    held = held_targets(store)
    pids = {proc.pid: i for i, (_url, proc) in enumerate(relays)}
    victim = max((i for i in pids.values()), key=lambda i: len(held.get(relays[i][1].pid, [])))
    people = [PEOPLE[keys[k]] for k in held.get(relays[victim][1].pid, []) if k in keys]
    relays[victim][1].send_signal(signal.SIGKILL)
    killed = time.time()
    relays[victim][1].wait(10)
    httpx.post(f"{sim}/admin/faults", json={"rate": 0.0}, timeout=10)
    waits: dict[str, float | None] = {}
    while time.time() - killed < 120 and len(waits) < len(people):
        for user in people:
            if user not in waits:
                late = [e["at"] for e in inbox(sim, user) if e["at"] > killed]
                if late:
                    waits[user] = round(min(late) - killed, 1)
        time.sleep(0.1)
    relays[victim] = start_relay(work, victim, configs[victim])
    # The backlog drains before the next round, so that each round starts alike.
    while time.time() - killed < 180 and any(pending(store).values()):
        time.sleep(0.5)
    return {"victim_targets": people, "seconds_from_kill_to_next_message": waits}


def pending(store: Any) -> dict[str, int]:
    return {key: int(store.zcard(key)) for key in store.scan_iter(f"{PREFIX}:q:*")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--per-group", type=int, default=10)
    parser.add_argument("--lease", type=float, default=None, help="storage.lease (default: the service's)")
    parser.add_argument("--skip-storm", action="store_true")
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amw-bench-replicas-"))
    procs: list[subprocess.Popen[bytes]] = []
    relays: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        sim_port, redis_port = free_port(), free_port()
        # Every message is counted: the inbox keeps them all, not the newest 500.
        sim_args = cli("simulator", "--listen", f"127.0.0.1:{sim_port}", "--inbox-per-recipient", "10000000")
        procs.append(spawn(sim_args, work / "sim.log"))
        procs.append(redis_server(work, redis_port))
        sim = f"http://127.0.0.1:{sim_port}"
        wait_http(f"{sim}/admin/stats")
        configs = [relay_config(work, i, sim, redis_port, args.lease) for i in range(3)]
        relays = [start_relay(work, i, configs[i]) for i in range(3)]
        store = redis.Redis(port=redis_port, decode_responses=True)
        results: dict[str, Any] = {"machine": machine(), "lease": args.lease or "default"}
        if not args.skip_storm:
            results["storm"] = storm(sim, [url for url, _ in relays], args.groups, args.per_group)
            print(f"storm: {results['storm']}", flush=True)
        rounds = []
        for round_ in range(args.kills):
            rounds.append(takeover(sim, work, relays, configs, store, round_))
            print(f"takeover {round_ + 1}: {rounds[-1]}", flush=True)
        waits = [w for r in rounds for w in r["seconds_from_kill_to_next_message"].values() if w is not None]
        missing = sum(len(r["victim_targets"]) - len(r["seconds_from_kill_to_next_message"]) for r in rounds)
        results["takeover"] = {
            "rounds": rounds,
            "targets_taken_over": len(waits),
            "targets_never_taken_over": missing,
            "max_seconds": max(waits, default=None),
        }
        print(dump(results))
    finally:
        for _url, proc in relays:
            stop(proc)
        for proc in reversed(procs):
            stop(proc)


if __name__ == "__main__":
    main()
