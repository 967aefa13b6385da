"""A real browser for the tests: Playwright driving Debian's chromium (Playwright's own browser download
is not available here; ./test.sh installs the Debian package). The `browser` fixture (conftest.py) is a
chromium for one test. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def console_page(browser: Any, base_url: str, user: str, password: str) -> Iterator[Any]:
    """A page of the console at `base_url`, logged in, in Chinese, 1280 wide; every dialog (a
    confirmation) is accepted and its message kept in `page.dialogs`."""
    context = browser.new_context(
        http_credentials={"username": user, "password": password},
        locale="zh-CN",
        viewport={"width": 1280, "height": 900},
        base_url=base_url,
    )
    opened = context.new_page()
    dialogs: list[str] = []

    def answer(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    opened.on("dialog", answer)
    opened.dialogs = dialogs
    try:
        yield opened
    finally:
        context.close()
