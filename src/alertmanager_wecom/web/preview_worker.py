"""The console's template preview renders in a worker process that can be stopped.

A template posted to the preview is code chosen by whoever reaches the console. It renders in Jinja's
sandbox with a deadline (template_sandbox.py), but one C-level step (``'x'|center(10**9)``, a huge
``format``) is beyond any check made between steps. So it renders here: a child process with a memory
limit, one request at a time, killed when it has not answered within `PREVIEW_SECONDS` and started again
for the next preview. No request can keep a core busy, or memory taken, after its answer.

The parent sends the request pickled (its own data: the config and the page's fields); the child answers
with one line of JSON, so nothing the template produced is ever unpickled by the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import pickle
import struct
import sys
from typing import Any

from alertmanager_wecom.config import Config

log = logging.getLogger(__name__)

PREVIEW_SECONDS = 5.0
# Starting the worker (a Python process importing the renderer) is not the template's time: it has its
# own, longer deadline (a loaded machine takes seconds).
STARTUP_SECONDS = 60.0
_READY = b"ready\n"
# The sandbox's own deadline, under the kill: a plain runaway loop ends with the sandbox's reason.
SANDBOX_SECONDS = 3.0
MEMORY_BYTES = 1536 * 1024 * 1024  # address space of the child: a bomb fails with MemoryError
_HEADER = struct.Struct(">I")


class WorkerUnavailable(Exception):
    """The worker process could not be started."""


class PreviewWorker:
    """One worker process, started on first use, used one request at a time."""

    def __init__(self, seconds: float | None = None) -> None:
        self._seconds = seconds
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    @property
    def seconds(self) -> float:
        return self._seconds if self._seconds is not None else PREVIEW_SECONDS

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def _started(self) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ")}
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,  # the service's environment holds its secrets (${ENV} in the config): not passed
        )
        assert self._process.stdout is not None
        try:
            async with asyncio.timeout(STARTUP_SECONDS):
                ready = await self._process.stdout.readline()
        except TimeoutError:
            ready = b""
        if ready != _READY:
            await self.stop()
            raise WorkerUnavailable("the preview worker did not start")
        return self._process

    async def warm(self) -> None:
        """Start the process ahead of the first preview (its imports take a moment)."""
        async with self._lock:
            with contextlib.suppress(WorkerUnavailable):
                await self._started()

    async def preview(
        self, config: Config, payload: str, receiver: str, index: int, template: str | None
    ) -> dict[str, Any]:
        """The preview as `delivery.preview.Preview` fields (JSON), or an error when the worker was
        killed at its deadline or died."""
        request = pickle.dumps((config, payload, receiver, index, template))
        try:
            async with self._lock:
                process = await self._started()
                assert process.stdin is not None and process.stdout is not None
                async with asyncio.timeout(self.seconds):
                    process.stdin.write(_HEADER.pack(len(request)) + request)
                    await process.stdin.drain()
                    line = await process.stdout.readline()
        except WorkerUnavailable as exc:
            return {"messages": [], "error": f"{exc}; try again"}
        except TimeoutError:
            await self.stop()
            return {
                "messages": [],
                "error": f"the preview took longer than {self.seconds:g}s and was stopped",
            }
        except (ConnectionError, BrokenPipeError):
            line = b""
        if not line:
            await self.stop()
            return {"messages": [], "error": "the preview worker stopped (out of memory?); try again"}
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        """Kill the worker (SIGKILL: a template in a C-level loop does not see SIGTERM) and reap it."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _limit_memory() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    except (ImportError, ValueError, OSError):  # not on this platform: the deadline still holds
        pass


def main() -> None:
    """The child: read pickled requests on stdin, answer each with one line of JSON on stdout."""
    from alertmanager_wecom.delivery.preview import preview

    _limit_memory()
    logging.disable(logging.CRITICAL)  # a preview's warnings are the answer's, not the service's log
    # The answers go to the real stdout; anything else that prints goes to stderr, not into the answers.
    read, write = sys.stdin.buffer, os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr
    write.write(_READY)  # imported and limited: the parent's deadlines start now
    write.flush()
    while header := read.read(_HEADER.size):
        request = read.read(_HEADER.unpack(header)[0])
        config, payload, receiver, index, template = pickle.loads(request)  # noqa: S301 - from the parent
        render = config.render.model_copy(
            update={"template_timeout": min(config.render.template_timeout, SANDBOX_SECONDS)}
        )
        config = config.model_copy(update={"render": render})
        try:
            result = preview(config, payload, receiver, index, template)
            answer = {"messages": [dataclasses.asdict(m) for m in result.messages], "error": result.error}
        except MemoryError:
            answer = {"messages": [], "error": "the template took more memory than a preview may"}
        write.write(json.dumps(answer, ensure_ascii=False).encode("utf-8") + b"\n")
        write.flush()


if __name__ == "__main__":
    main()
