"""The control experiment: the same modern client that works through berth
fails against server-everything exposed by a plain bridge (supergateway),
because a legacy server's results are not valid 2026-07-28 results."""

from __future__ import annotations

import socket
import subprocess
import time

import anyio
import pytest
from mcp.client import Client

from conftest import NODE_MODULES, SERVERS

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def supergateway():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["node", str(NODE_MODULES / "supergateway" / "dist" / "index.js"), "--stdio", " ".join(SERVERS["everything"]),
         "--outputTransport", "streamableHttp", "--stateful", "--port", str(port), "--logLevel", "none"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(10)


async def outcomes(url: str) -> dict[str, bool]:
    ok: dict[str, bool] = {}
    async with Client(url, mode="2026-07-28") as c:
        for name, fn in {
            "tools/list": lambda: c.list_tools(),
            "tools/call": lambda: c.call_tool("echo", {"message": "x"}),
            "resources/list": lambda: c.list_resources(),
            "prompts/list": lambda: c.list_prompts(),
        }.items():
            try:
                with anyio.fail_after(20):
                    await fn()
                ok[name] = True
            except Exception:  # noqa: BLE001 - any failure counts as failure here
                ok[name] = False
    return ok


async def test_modern_client_fails_without_berth_and_works_with_it(supergateway, shared_berth):
    direct = await outcomes(supergateway)
    via_berth = await outcomes(shared_berth("everything").url)
    assert all(via_berth.values()), via_berth
    assert sum(direct.values()) <= 1, f"expected the plain bridge to fail most calls: {direct}"
