"""A real browser for the tests: Playwright driving Debian's chromium (Playwright's own browser download
is not available here; ./test.sh installs the Debian package). The `browser` fixture (conftest.py) is a
chromium for one test. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run ./test.sh (it installs the Debian package chromium)")
    return found


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
