"""The on-call API over real HTTP (the service in a thread, a real SQLite on-call store under tmp_path):
now, next and four weeks of shifts; overrides added, listed, removed; bad input refused with a reason
(never a 500); the admin checks and the Origin check; the CLI and the service sharing the store."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from alertmanager_wecom.cli import main
from alertmanager_wecom.loading import load_config
from alertmanager_wecom.simulator.model import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET
from alertmanager_wecom.web.app import create_app
from tests.servers import serve_in_thread

PASSWORD = "oncall-admin-5e1f"
ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
DAY = 86400.0
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def write_config(tmp_path: Path, oncall: bool = True) -> Path:
    raw: dict[str, Any] = {
        "apps": {"ops": {"corp_id": SANDBOX_CORP_ID, "agent_id": SANDBOX_AGENT_ID, "secret": SANDBOX_SECRET}},
        "receivers": [{"name": "default", "targets": [{"app": "ops", "to_user": ["zhangsan"]}]}],
        "server": {"admin_auth": {"basic_auth": {"username": "admin", "password": PASSWORD}}},
        "storage": {"path": str(tmp_path / "outbox.db"), "synchronous": "normal"},
    }
    if oncall:
        raw["oncall"] = {
            "schedules": {
                "sre": {"members": ["zhangsan", "lisi", "wangwu"], "start": "2026-12-01"},
                "dba": {
                    "members": ["zhaoliu"],
                    "rotation": "12h",
                    "time_zone": "Europe/Berlin",
                    "start": "2026-12-01",
                },
            }
        }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    path = write_config(tmp_path)
    with serve_in_thread(create_app(load_config(str(path)), config_path=str(path))) as base:
        yield base, path


def iso(at: dt.datetime) -> str:
    return at.replace(microsecond=0).isoformat()


def add(base: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/api/oncall/overrides", json=body, headers=ADMIN | headers)


def test_now_next_and_four_weeks_of_shifts(service: tuple[str, Path]) -> None:
    base, _ = service
    assert httpx.get(f"{base}/api/oncall").status_code == 401
    answer = httpx.get(f"{base}/api/oncall", params={"at": "2026-12-02T10:00"}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    schedules = {s["name"]: s for s in answer.json()["schedules"]}
    sre = schedules["sre"]
    assert (sre["rotation"], sre["handoff"], sre["time_zone"]) == ("daily", "09:00", "Asia/Shanghai")
    assert sre["now"]["user"] == "lisi" and sre["now"]["override"] is None
    assert (sre["now"]["start_local"], sre["now"]["end_local"]) == (
        "2026-12-02T09:00:00+08:00",
        "2026-12-03T09:00:00+08:00",
    )
    assert sre["next"]["user"] == "wangwu" and sre["next"]["start"] == sre["now"]["end"]
    shifts = sre["shifts"]
    at = dt.datetime(2026, 12, 2, 10, tzinfo=SHANGHAI).timestamp()
    assert shifts[0]["start"] == at and shifts[-1]["end"] == at + 28 * DAY
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(shifts))
    assert [s["user"] for s in shifts[:4]] == ["lisi", "wangwu", "zhangsan", "lisi"]
    assert len(shifts) == 29  # a part of today's, 27 whole days, a part of the 29th
    # One member: one shift for the four weeks, on Berlin's clock.
    dba = schedules["dba"]
    assert [s["user"] for s in dba["shifts"]] == ["zhaoliu"]
    # 10:00 in Shanghai is 03:00 in Berlin: the 12 h shift that began at 21:00 (the hand-off 09:00 + 12 h).
    assert (dba["now"]["start_local"], dba["now"]["end_local"]) == (
        "2026-12-01T21:00:00+01:00",
        "2026-12-02T09:00:00+01:00",
    )


def test_an_override_is_added_shown_listed_and_removed(service: tuple[str, Path]) -> None:
    base, _ = service
    now = dt.datetime.now(dt.UTC)
    start, end = now + dt.timedelta(hours=2), now + dt.timedelta(hours=5)
    made = add(base, {"schedule": "sre", "user": "sunqi", "start": iso(start), "end": end.timestamp()})
    assert made.status_code == 201, made.text
    override = made.json()
    assert (override["schedule"], override["user"], override["created_by"]) == ("sre", "sunqi", "api")
    assert override["start"] == start.replace(microsecond=0).timestamp()
    assert override["start_local"].endswith("+08:00")

    during = httpx.get(f"{base}/api/oncall", params={"at": iso(now + dt.timedelta(hours=3))}, headers=ADMIN)
    sre = next(s for s in during.json()["schedules"] if s["name"] == "sre")
    assert sre["now"]["user"] == "sunqi" and sre["now"]["override"] == override["id"]
    assert sre["now"]["end"] == end.timestamp()
    calendar = next(
        s for s in httpx.get(f"{base}/api/oncall", headers=ADMIN).json()["schedules"] if s["name"] == "sre"
    )
    assert [s["user"] for s in calendar["shifts"] if s["override"] == override["id"]] == ["sunqi"]
    assert [o["id"] for o in calendar["overrides"]] == [override["id"]]

    listed = httpx.get(f"{base}/api/oncall/overrides", headers=ADMIN).json()["overrides"]
    assert [o["id"] for o in listed] == [override["id"]]
    assert httpx.get(f"{base}/api/oncall/overrides?schedule=dba", headers=ADMIN).json() == {"overrides": []}

    url = f"{base}/api/oncall/overrides/{override['id']}"
    assert httpx.delete(url, headers=ADMIN).status_code == 204
    assert httpx.delete(url, headers=ADMIN).status_code == 404
    assert httpx.get(f"{base}/api/oncall/overrides", headers=ADMIN).json() == {"overrides": []}


def test_bad_input_is_a_4xx_with_a_reason(service: tuple[str, Path]) -> None:
    base, _ = service
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    good = {"schedule": "sre", "user": "sunqi", "start": iso(soon), "end": iso(soon + dt.timedelta(hours=1))}
    cases: list[tuple[Any, str]] = [
        ([good], "send {"),
        ({"schedule": "sre"}, "send {"),
        (good | {"schedule": "ops"}, "unknown schedule 'ops' (schedules: dba, sre)"),
        (good | {"schedule": ["sre"]}, "schedule and user are text"),
        (good | {"user": "zhang san"}, "one WeCom userid"),
        (good | {"user": 7}, "schedule and user are text"),
        (good | {"start": good["end"], "end": good["start"]}, "must end after it starts"),
        (good | {"start": "tomorrow"}, "'tomorrow' is not a time"),
        (good | {"start": True}, "is not a time"),
        (good | {"start": 10**400}, "out of range"),
        (good | {"end": iso(soon + dt.timedelta(days=91))}, "at most 90 days"),
        (good | {"start": "2020-01-01", "end": "2020-01-02"}, "over already"),
        (good | {"start": {"at": 1}}, "ISO 8601 text or seconds"),
    ]
    for body, reason in cases:
        answer = add(base, body)
        assert answer.status_code == 400, (body, answer.text)
        assert reason in answer.json()["error"], (body, answer.text)
    for raw in (b"{not json", b"[" * 100000, b'{"start": NaN}'):
        answer = httpx.post(
            f"{base}/api/oncall/overrides", content=raw, headers=ADMIN | {"Content-Type": "application/json"}
        )
        assert answer.status_code == 400, (raw[:20], answer.text)
    assert httpx.get(f"{base}/api/oncall/overrides", headers=ADMIN).json() == {"overrides": []}
    assert httpx.get(f"{base}/api/oncall", params={"at": "soon"}, headers=ADMIN).status_code == 400
    assert httpx.get(f"{base}/api/oncall/overrides?schedule=ops", headers=ADMIN).status_code == 404
    assert httpx.delete(f"{base}/api/oncall/overrides/..%2Fetc", headers=ADMIN).status_code == 404
    assert httpx.delete(f"{base}/api/oncall/overrides/abcdefabcdef", headers=ADMIN).status_code == 404


def test_changes_need_admin_json_and_this_site(service: tuple[str, Path]) -> None:
    base, _ = service
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    good = {"schedule": "sre", "user": "sunqi", "start": iso(soon), "end": iso(soon + dt.timedelta(hours=1))}
    assert httpx.post(f"{base}/api/oncall/overrides", json=good).status_code == 401
    form = httpx.post(f"{base}/api/oncall/overrides", data=good, headers=ADMIN)
    assert form.status_code == 415
    assert add(base, good, Origin="https://evil.example").status_code == 403
    assert httpx.get(f"{base}/api/oncall/overrides", headers=ADMIN).json() == {"overrides": []}
    made = add(base, good, Origin=base)  # the console's own page
    assert made.status_code == 201
    url = f"{base}/api/oncall/overrides/{made.json()['id']}"
    assert httpx.delete(url, headers=ADMIN | {"Origin": "https://evil.example"}).status_code == 403
    assert httpx.delete(url, headers=ADMIN | {"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert httpx.delete(url).status_code == 401
    assert httpx.delete(url, headers=ADMIN).status_code == 204


def test_the_cli_and_the_service_share_the_store(service: tuple[str, Path]) -> None:
    base, path = service
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    result = CliRunner().invoke(
        main,
        [
            "oncall",
            "override",
            "add",
            "dba",
            "sunqi",
            "--config",
            str(path),
            "--from",
            iso(soon),
            "--to",
            iso(soon + dt.timedelta(hours=2)),
        ],
    )
    assert result.exit_code == 0, result.output
    listed = httpx.get(f"{base}/api/oncall/overrides", headers=ADMIN).json()["overrides"]
    assert [(o["schedule"], o["user"], o["created_by"]) for o in listed] == [("dba", "sunqi", "cli")]
    assert listed[0]["start_local"].endswith("+01:00")  # Berlin in December
    made = add(
        base,
        {"schedule": "sre", "user": "lisi", "start": iso(soon), "end": iso(soon + dt.timedelta(hours=1))},
    )
    shown = CliRunner().invoke(main, ["oncall", "override", "list", "sre", "--config", str(path)])
    assert made.json()["id"] in shown.output and "lisi" in shown.output


def test_without_schedules_the_answers_are_empty(tmp_path: Path) -> None:
    path = write_config(tmp_path, oncall=False)
    with serve_in_thread(create_app(load_config(str(path)))) as base:
        assert httpx.get(f"{base}/api/oncall", headers=ADMIN).json()["schedules"] == []
        assert httpx.get(f"{base}/api/oncall/overrides", headers=ADMIN).json() == {"overrides": []}
        answer = add(base, {"schedule": "sre", "user": "lisi", "start": "now", "end": "2099-01-01"})
        assert answer.status_code == 400 and "none defined" in answer.json()["error"]


def test_an_override_is_changed_in_place(service: tuple[str, Path]) -> None:
    """PUT /api/oncall/overrides/ID: the same override (its id) with a new person and times, in one step;
    the same checks as adding; 404 for an id that is not there."""
    base, _ = service
    now = dt.datetime.now(dt.UTC)
    start, end = now + dt.timedelta(hours=2), now + dt.timedelta(hours=5)
    made = add(base, {"schedule": "sre", "user": "sunqi", "start": iso(start), "end": iso(end)}).json()
    url = f"{base}/api/oncall/overrides/{made['id']}"
    later = now + dt.timedelta(hours=8)
    body = {"schedule": "sre", "user": "zhouba", "start": iso(start), "end": iso(later)}
    changed = httpx.put(url, json=body, headers=ADMIN)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["id"], changed.json()["user"]) == (made["id"], "zhouba")
    listed = httpx.get(f"{base}/api/oncall/overrides", headers=ADMIN).json()["overrides"]
    assert [(o["id"], o["user"], o["end"]) for o in listed] == [
        (made["id"], "zhouba", later.replace(microsecond=0).timestamp())
    ]
    during = httpx.get(f"{base}/api/oncall", params={"at": iso(now + dt.timedelta(hours=6))}, headers=ADMIN)
    sre = next(s for s in during.json()["schedules"] if s["name"] == "sre")
    assert sre["now"]["user"] == "zhouba" and sre["now"]["override"] == made["id"]

    bad = httpx.put(url, json=body | {"user": "zhou ba"}, headers=ADMIN)
    assert bad.status_code == 400 and "one WeCom userid" in bad.json()["error"]
    assert httpx.put(f"{base}/api/oncall/overrides/0123456789ab", json=body, headers=ADMIN).status_code == 404
    assert httpx.put(f"{base}/api/oncall/overrides/nope", json=body, headers=ADMIN).status_code == 404
    assert httpx.delete(url, headers=ADMIN).status_code == 204
    assert httpx.put(url, json=body, headers=ADMIN).status_code == 404  # removed: not brought back
    assert httpx.get(f"{base}/api/oncall/overrides", headers=ADMIN).json() == {"overrides": []}
