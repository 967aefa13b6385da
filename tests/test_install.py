"""A fresh install, as README.md's first command does it: the wheel alone, in a clean virtual environment,
with only the dependencies pyproject.toml declares (from the package index or pip's cache), no test extras.

A module the package imports but does not declare, a module or data file missing from the wheel, or a
declared dependency that a default config needs at run time fails here, whatever the test machine has
installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from alertmanager_wecom import samples
from tests.helpers import wait_until
from tests.servers import free_port, stop_process, wait_http

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "alertmanager_wecom"
# What the Dockerfile's build stage copies: the wheel is built from these alone, as the image is.
BUILD_INPUTS = ("pyproject.toml", "README.md", "src")

IMPORT_EVERY_MODULE = """
import importlib, json, pkgutil, alertmanager_wecom
names = ["alertmanager_wecom"] + [
    m.name for m in pkgutil.walk_packages(alertmanager_wecom.__path__, "alertmanager_wecom.")
]
for name in names:
    if name != "alertmanager_wecom.__main__":  # runs the CLI: started below as `python -m`
        importlib.import_module(name)
print(json.dumps({"names": names, "file": alertmanager_wecom.__file__}))
"""

# wecom.proxy_url accepts socks5:// (one trusted egress IP): building the service's client needs socksio.
SOCKS_CLIENT = """
from alertmanager_wecom.loading import parse_config
from alertmanager_wecom.web.app import wecom_client
config = parse_config({
    "wecom": {"proxy_url": "socks5://127.0.0.1:1080"},
    "apps": {"ops": {"corp_id": "ww0123456789abcdef", "agent_id": 1000003, "secret": "s"}},
    "receivers": [{"name": "default", "targets": [{"app": "ops", "to_user": ["zhangsan"]}]}],
})
wecom_client(config)
print("client built")
"""


def _clean_env(venv: Path) -> dict[str, str]:
    """The environment of a new shell with the fresh venv activated: nothing of the test run's venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != Path(sys.prefix) / "bin"]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    env["VIRTUAL_ENV"] = str(venv)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # No system time zone database (as in slim container images): zoneinfo must find the zones in the
    # declared tzdata package.
    env["PYTHONTZPATH"] = ""
    return env


def _run(args: list[str | Path], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, env=env, cwd=cwd
    )
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    wheels = work / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, source])
    [wheel] = wheels.glob("alertmanager_wecom-*.whl")
    venv = work / "venv"
    # The base interpreter, not this venv's: `python -m venv` from inside a venv makes a clean one.
    _run([sys.executable, "-m", "venv", venv])
    env = _clean_env(venv)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel], env=env, cwd=work)
    yield venv, env


@pytest.mark.e2e
def test_the_wheel_alone_imports_every_module(fresh_venv: tuple[Path, dict[str, str]]) -> None:
    venv, env = fresh_venv
    found = json.loads(_run([venv / "bin" / "python", "-c", IMPORT_EVERY_MODULE], env=env, cwd=venv))
    # Imported from the fresh venv, not from this checkout.
    assert Path(found["file"]).is_relative_to(venv), found["file"]
    # Every module of the source tree is in the wheel (a folder without __init__.py would be left out).
    in_source = {
        ".".join(("alertmanager_wecom", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for p in PACKAGE.rglob("*.py")
    }
    assert set(found["names"]) == in_source
    out = _run([venv / "bin" / "python", "-m", "alertmanager_wecom", "--version"], env=env, cwd=venv)
    assert "alertmanager-wecom" in out
    assert "client built" in _run([venv / "bin" / "python", "-c", SOCKS_CLIENT], env=env, cwd=venv)


@pytest.mark.e2e
def test_serve_in_sandbox_mode_answers_and_delivers(
    fresh_venv: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, env = fresh_venv
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [venv / "bin" / "alertmanager-wecom", "serve", "--listen", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
        try:
            wait_http(f"{base}/healthz", timeout=60, proc=proc)
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
            payload = samples.node_down(2, receiver="demo")
            response = httpx.post(f"{base}/alerts/demo", json=payload, timeout=30)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "accepted"
            # Delivered through the in-process simulator: the templates and pages are in the wheel too.
            wait_until(
                lambda: any(
                    "NodeDown" in entry["visible"]
                    for entry in httpx.get(f"{base}/sim/admin/inbox?user=zhangsan", timeout=10).json()[
                        "entries"
                    ]
                ),
                60,
                "the alert in zhangsan's inbox",
            )
            assert httpx.get(f"{base}/sim/inbox", timeout=10).status_code == 200
            console = httpx.get(
                f"{base}/ui/deliveries?q=zhangsan", timeout=10
            )  # the templates are in the wheel
            assert console.status_code == 200 and "NodeDown" in console.text
            # zhaoliu gets alert cards: pressing 认领 in the sandbox's inbox redraws the card.
            card = wait_until(
                lambda: [
                    e
                    for e in httpx.get(f"{base}/sim/admin/inbox?user=zhaoliu", timeout=10).json()["entries"]
                    if e["card"]
                ],
                60,
                "zhaoliu's card",
            )[0]
            assert 'onclick="press(this)"' in httpx.get(f"{base}/sim/inbox?user=zhaoliu", timeout=10).text
            press = {
                "agent_id": 1000002,
                "userid": "zhaoliu",
                "event_key": "ack",
                "task_id": card["card"]["task_id"],
            }
            assert httpx.post(f"{base}/sim/admin/click", json=press, timeout=30).json()["sent"]
            wait_until(
                lambda: (
                    "已认领 · zhaoliu"
                    in httpx.get(f"{base}/sim/admin/inbox?user=zhaoliu", timeout=10).json()["entries"][0][
                        "visible"
                    ]
                ),
                30,
                "the card showing zhaoliu's acknowledgement",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nserve's log:\n{log.read_text(errors='replace')[-4000:]}") from None
        finally:
            stop_process(proc)
    assert proc.returncode == 0, log.read_text(errors="replace")
    assert "Traceback" not in log.read_text(errors="replace")


def test_the_image_installs_the_same_way() -> None:
    """The Dockerfile builds from the files the wheel above is built from, with a plain `pip install .`:
    what the image gets is what pyproject.toml declares, nothing installed beside it."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    build_stage = dockerfile.split("\nFROM ", 2)[1]
    copied = [
        line.split()[1:-1]
        for line in build_stage.splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]
    assert sorted(name for names in copied for name in names) == sorted(BUILD_INPUTS)
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs == ["RUN pip install --no-cache-dir --prefix=/install '.[charts]'"]
