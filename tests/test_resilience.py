"""Pools under stress: a full instance queues requests up to a limit and a
deadline and refuses the rest at once; a server that keeps dying opens a
circuit that refuses requests fast and says why; a wedged server (alive,
answering nothing) fails its health check and is replaced, failing the call
it held at once rather than at its deadline."""

from __future__ import annotations

import contextlib
import time

import anyio
import httpx
import pytest

from conftest import wait_for
from mcp_http import messages, modern_body, modern_headers
from test_catalog import first_party_manifest, post_manifest, serve

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def rows(s, name: str) -> list[dict]:
    for row in httpx.get(f"{s.base}/admin/v1/instances", headers=s.admin()).json():
        if row["connector"].startswith(name + "@"):
            return row["instances"]
    return []


def counter(metrics: str, metric: str, connector: str, *labels: str) -> float:
    """A Prometheus sample of `metric` for `connector` with `labels`; 0 if absent."""
    for line in metrics.splitlines():
        if line.startswith(metric + "{") and f'connector="{connector}@' in line and all(l in line for l in labels):
            return float(line.rsplit(" ", 1)[1])
    return 0


async def tool_call(client: httpx.AsyncClient, url: str, tool: str, args: dict, i: int = 1) -> dict:
    """One modern tools/call; the final JSON-RPC message."""
    body = modern_body("tools/call", {"name": tool, "arguments": args}, id=i)
    res = await client.post(url, json=body, headers=modern_headers(body), timeout=60)
    return [m for m in messages(res) if "id" in m][-1]


async def test_a_full_instance_queues_then_refuses(tmp_path):
    name = "dev.berth.test/queue"
    s = serve(tmp_path, "--no-examples")
    try:
        scaling = {"max": 1, "targetConcurrency": 2, "maxConcurrency": 2, "queueLimit": 2, "queueTimeoutSeconds": 1}
        assert post_manifest(s, first_party_manifest(name=name, scaling=scaling)).status_code == 201
        url = s.mcp(name)
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=16)) as client:
            # Start the instance first, so every request below meets a running one.
            assert "result" in await tool_call(client, url, "echo", {"text": "up"})
            peak = 0
            done = False

            async def watch():
                nonlocal peak
                while not done:
                    peak = max([peak] + [i["in_flight"] for i in rows(s, name)])
                    await anyio.sleep(0.05)

            results: list[tuple[float, dict]] = []

            async def one(i: int):
                t0 = time.monotonic()
                msg = await tool_call(client, url, "sleep", {"ms": 2500}, i)
                results.append((time.monotonic() - t0, msg))

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(watch)
                    async with anyio.create_task_group() as calls:
                        for i in range(6):
                            calls.start_soon(one, i)
                            await anyio.sleep(0.05)
                    done = True
        ok = [m for _, m in results if "result" in m]
        full = [(t, m) for t, m in results if "error" in m and "already waiting" in m["error"]["message"]]
        late = [(t, m) for t, m in results if "error" in m and "no instance had room" in m["error"]["message"]]
        assert len(ok) == 2, results
        assert len(full) == 2 and all(t < 0.5 for t, _ in full), f"refused at once when the queue is full: {full}"
        assert len(late) == 2 and all(0.9 < t < 2.4 for t, _ in late), f"refused at the queue deadline: {late}"
        assert all(m["error"]["code"] == -32003 for _, m in full + late)
        assert peak <= 2, f"the instance had {peak} requests in flight, over its limit of 2"
        metrics = httpx.get(f"{s.base}/metrics").text
        assert counter(metrics, "berth_queue_rejections_total", name, 'reason="full"') == 2
        assert counter(metrics, "berth_queue_rejections_total", name, 'reason="deadline"') == 2
    finally:
        s.stop()


async def test_a_crash_looping_server_opens_the_circuit(tmp_path):
    name = "dev.berth.test/crashloop"
    s = serve(tmp_path, "--no-examples")
    try:
        doc = first_party_manifest(name=name)
        # The test server refuses an unknown flag and exits at once, every time.
        doc["packages"][0]["packageArguments"] = [{"type": "positional", "value": "--no-such-flag"}]
        assert post_manifest(s, doc).status_code == 201
        url = s.mcp(name)
        refused = None
        async with httpx.AsyncClient() as client:
            for i in range(12):
                t0 = time.monotonic()
                msg = await tool_call(client, url, "echo", {"text": "x"}, i)
                elapsed = time.monotonic() - t0
                assert "error" in msg, msg
                if "in a row" in msg["error"]["message"]:
                    refused = (elapsed, msg["error"]["message"])
                    break
        assert refused is not None, "the circuit never opened"
        elapsed, message = refused
        assert elapsed < 0.2, f"an open circuit answers at once, took {elapsed:.3f}s"
        assert "failed 5 times in a row" in message and "next attempt in" in message
        states = {i["state"] for i in rows(s, name)}
        assert "crash-loop" in states, rows(s, name)
        assert any(i.get("error") for i in rows(s, name)), "the admin API says why"
        assert counter(httpx.get(f"{s.base}/metrics").text, "berth_circuit_opened_total", name) == 1
    finally:
        s.stop()


@contextlib.asynccontextmanager
async def health_checked(tmp_path, name: str):
    """berth serving `name` with a health check every second (1 s to
    answer), its first instance up: yields berth, a client and the pids of
    the ready instances."""
    s = serve(tmp_path, "--no-examples")
    try:
        doc = first_party_manifest(name=name, health={"intervalSeconds": 1, "timeoutSeconds": 1})
        assert post_manifest(s, doc).status_code == 201
        async with httpx.AsyncClient() as client:
            assert "result" in await tool_call(client, s.mcp(name), "echo", {"text": "up"})
            yield s, client, ready_pids(s, name)
    finally:
        s.stop()


def ready_pids(s, name: str) -> list[int]:
    return [i["pid"] for i in rows(s, name) if i["state"] == "ready"]


def health_failures(s, name: str) -> float:
    return counter(httpx.get(f"{s.base}/metrics").text, "berth_health_check_failures_total", name)


async def test_a_wedged_server_is_replaced(tmp_path):
    name = "dev.berth.test/wedged"
    async with health_checked(tmp_path, name) as (s, client, before):
        url = s.mcp(name)
        t0 = time.monotonic()
        # The server stops itself (SIGSTOP): it is alive and answers nothing.
        msg = await tool_call(client, url, "freeze", {})
        elapsed = time.monotonic() - t0
        assert "error" in msg and "ended" in msg["error"]["message"], msg
        assert elapsed < 8, f"the wedged call failed only after {elapsed:.1f}s"
        after = await tool_call(client, url, "echo", {"text": "again"})
        assert after["result"]["content"][0]["text"] == "again"
        now = ready_pids(s, name)
        assert now and now != before, f"not replaced: {before} -> {now}"
        assert health_failures(s, name) >= 1


async def test_a_server_computing_past_its_health_timeout_is_kept(tmp_path):
    """A single-threaded server busy with one long call answers no ping; its
    sandbox charges it CPU time meanwhile, so it is computing, not wedged."""
    name = "dev.berth.test/busy"
    async with health_checked(tmp_path, name) as (s, client, before):
        # Health checks come and go unanswered while it computes.
        msg = await tool_call(client, s.mcp(name), "hog", {"ms": 6000})
        assert "result" in msg and not msg["result"].get("isError"), msg
        now = ready_pids(s, name)
        assert now == before, f"replaced while computing: {before} -> {now}"
        assert "is computing; keeping it" in "\n".join(s.log_lines)
        assert health_failures(s, name) == 0


async def test_instance_gauges_fall_to_zero_when_a_connector_stops_being_served(tmp_path):
    """A restart (a secret changed) drops the running version; its gauges
    must say so rather than keep showing its last instances."""
    name = "dev.berth.test/gauged"
    s = serve(tmp_path, "--no-examples")
    try:
        doc = first_party_manifest(name=name)
        doc["packages"][0]["environmentVariables"] = [{"name": "BERTH_TEST_TOKEN", "isSecret": False}]
        assert post_manifest(s, doc).status_code == 201
        ready = lambda: counter(httpx.get(f"{s.base}/metrics").text, "berth_instances", name, 'state="ready"')  # noqa: E731
        async with httpx.AsyncClient() as client:
            assert "result" in await tool_call(client, s.mcp(name), "echo", {"text": "up"})
        assert wait_for(lambda: ready() == 1, timeout=5), "the running instance was never counted"
        secret = f"{s.base}/admin/v1/connectors/{name}/secrets/BERTH_TEST_TOKEN"
        assert httpx.put(secret, json={"value": "v2"}, headers=s.admin()).status_code == 204
        assert wait_for(lambda: ready() == 0, timeout=5), "the gauge kept the stopped version's instance"
    finally:
        s.stop()
