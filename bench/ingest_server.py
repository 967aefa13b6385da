"""The relay's own app plus a no-op endpoint, on one uvicorn server: the ingest benchmark's target."""

from __future__ import annotations

import sys

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alertmanager_wecom.loading import load_config
from alertmanager_wecom.logsetup import setup_logging
from alertmanager_wecom.web.app import create_app


async def noop(request: Request) -> Response:
    await request.body()
    return JSONResponse({"status": "accepted"})


def main() -> None:
    config_path, port = sys.argv[1], int(sys.argv[2])
    fast = len(sys.argv) > 3 and sys.argv[3] == "fast"
    setup_logging("warning")
    app = create_app(load_config(config_path), extra_routes=[Route("/noop", noop, methods=["POST"])])
    # standard: what `pip install alertmanager-wecom` brings (asyncio, h11); fast: uvloop and httptools.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        log_level="warning",
        loop="uvloop" if fast else "asyncio",
        http="httptools" if fast else "h11",
    )


if __name__ == "__main__":
    main()
