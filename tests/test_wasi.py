"""The WASI backend end to end: `berth run --sandbox wasi` hosting the
first-party wasip2 server (connectors/wasi-echo), called by the official
Python SDK in both eras, then attacked from inside: a loop that never yields,
an allocation past the memory limit, reads and writes outside its preopens
(it has none unless berth mounts a directory), its environment, and the
network (it has none: no sockets are granted, so egress allowlists do not
apply to WASI guests).

scripts/test.sh builds the guest and names it in BERTH_WASI_SERVER."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from mcp.client import Client

from conftest import TARGET, start_berth
from mcp_http import messages
from test_failures import call, result_text

WASM = os.environ.get("BERTH_WASI_SERVER", str(TARGET / "wasm32-wasip2" / "wasm" / "berth-wasi-echo.wasm"))
MODES = ["legacy", "2026-07-28"]
UNICODE = "héllo ✓ 世界 🚢 — wasm"


@pytest.fixture(scope="module")
def wasm_cache(tmp_path_factory) -> Path:
    """One compiled-module cache for the module: the guest compiles once."""
    return tmp_path_factory.mktemp("wasm-cache")


@pytest.fixture
def wasi_berth(wasm_cache):
    started = []

    def make(*extra: str):
        b = start_berth([WASM], "--sandbox", "wasi", *extra, env={"BERTH_WASM_CACHE": str(wasm_cache)})
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


def only_message(resp) -> dict:
    (msg,) = [m for m in messages(resp) if "id" in m]
    return msg


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_sdk_calls_echo_and_add(wasi_berth, mode):
    b = wasi_berth()
    async with Client(b.url, mode=mode) as c:
        tools = {t.name for t in (await c.list_tools()).tools}
        assert {"echo", "add", "spin", "read_file", "alloc"} <= tools, tools
        res = await c.call_tool("echo", {"text": UNICODE})
        assert not res.is_error and res.content[0].text == UNICODE
        res = await c.call_tool("add", {"a": 40.5, "b": 1.5})
        assert not res.is_error and res.content[0].text == "42"
        if mode != "legacy":
            assert c.protocol_version == "2026-07-28"


def test_compiled_guest_is_cached_on_disk(wasi_berth, wasm_cache):
    b = wasi_berth()
    assert result_text(call(b.url, "echo", {"text": "x"})) == "x"
    entries = [p.name for p in wasm_cache.iterdir()]
    assert any(n.endswith(".component.cwasm") for n in entries), entries
    assert not any(n.startswith(".tmp") for n in entries), entries


def test_runaway_guest_hits_its_cpu_deadline_and_berth_relaunches(wasi_berth):
    b = wasi_berth("--cpu-deadline", "500ms")
    assert result_text(call(b.url, "echo", {"text": "before"})) == "before"
    t0 = time.monotonic()
    msg = only_message(call(b.url, "spin", id=5, timeout=60))
    took = time.monotonic() - t0
    assert "error" in msg, msg
    assert "CPU deadline" in msg["error"]["message"], msg
    assert 0.4 < took < 15, took
    # The next call gets a fresh instance.
    assert result_text(call(b.url, "echo", {"text": "after"}, id=6)) == "after"


def test_reading_outside_the_preopens_fails(wasi_berth, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "note.txt").write_text("visible through the mount")
    b = wasi_berth("--mount", str(shared))
    # The control: the same tool reads a mounted file.
    assert result_text(call(b.url, "read_file", {"path": str(shared / "note.txt")})) == "visible through the mount"
    for path in ["/etc/passwd", str(shared / ".." / ".." / ".." / "etc" / "passwd"), str(tmp_path)]:
        msg = only_message(call(b.url, "read_file", {"path": path}))
        result = msg["result"]
        text = " ".join(c.get("text", "") for c in result["content"])
        assert result.get("isError") is True, (path, msg)
        assert "root:" not in text, (path, text)


def tool_error(url: str, tool: str, args: dict) -> str:
    """Calls a tool that must fail inside the guest: its error text."""
    msg = only_message(call(url, tool, args))
    assert msg["result"].get("isError") is True, msg
    return " ".join(c.get("text", "") for c in msg["result"]["content"])


def test_writes_go_only_where_a_writable_mount_allows(wasi_berth, tmp_path):
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    b = wasi_berth("--mount", str(ro), "--mount", f"{rw}:rw")
    # The control: a writable mount takes the write.
    assert result_text(call(b.url, "write_file", {"path": str(rw / "out.txt"), "text": "mine"})) == "written"
    assert (rw / "out.txt").read_text() == "mine"
    for path in [str(ro / "x.txt"), "/tmp/x.txt", str(rw / ".." / "escaped.txt"), "/etc/cron.d/x"]:
        tool_error(b.url, "write_file", {"path": path, "text": "nope"})
    assert not (ro / "x.txt").exists() and not (tmp_path / "escaped.txt").exists()


def test_the_guest_sees_only_its_own_environment(wasi_berth):
    b = wasi_berth("--env", "GREETING=hi")
    names = result_text(call(b.url, "env", {})).split()
    assert names == ["GREETING"], names


@pytest.mark.parametrize("addr", ["169.254.169.254:80", "10.0.0.1:80", "1.1.1.1:443", "127.0.0.1:{berth}"])
def test_the_guest_has_no_network(wasi_berth, addr):
    b = wasi_berth()
    addr = addr.format(berth=b.url.split(":")[2].split("/")[0])
    said = tool_error(b.url, "connect", {"addr": addr})
    assert "cannot connect" in said and "Permission denied" in said, said  # refused by the host, not unreachable


def test_memory_limit_is_enforced(wasi_berth):
    small = wasi_berth("--memory", "64M")
    assert result_text(call(small.url, "alloc", {"mib": 8})) == str(8 << 20)
    msg = only_message(call(small.url, "alloc", {"mib": 256}, id=2))
    assert "error" in msg and "memory limit" in msg["error"]["message"], msg
    # Still serving, on a fresh instance.
    assert result_text(call(small.url, "echo", {"text": "alive"}, id=3)) == "alive"
    # The control: the same allocation fits a larger limit.
    large = wasi_berth("--memory", "512M")
    assert result_text(call(large.url, "alloc", {"mib": 256})) == str(256 << 20)


def test_a_file_that_is_not_wasm_gets_a_clear_error(berth_factory, tmp_path):
    script = tmp_path / "server.wasm"
    script.write_text("#!/bin/sh\necho hi\n")
    b = berth_factory([str(script)], "--sandbox", "wasi")
    msg = only_message(call(b.url, "echo", {"text": "x"}))
    assert msg["error"]["code"] == -32001, msg
    assert "not a WebAssembly module or component" in msg["error"]["message"], msg
