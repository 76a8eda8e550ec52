"""Pools: a burst of 200 concurrent callers on a `shared` connector starts
more instances (up to the manifest's max), every call is answered, the
admin API and /metrics both see the instances, and idle instances stop
until none is left; a legacy session stays on the instance it started on."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from mcp_http import messages, modern_body, modern_headers
from test_catalog import call, first_party_manifest, post_manifest, serve

pytestmark = pytest.mark.anyio
NAME = "dev.berth.test/scaling"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def instances(s, name=NAME) -> list[dict]:
    for row in httpx.get(f"{s.base}/admin/v1/instances", headers=s.admin()).json():
        if row["connector"].startswith(name + "@"):
            return [i for i in row["instances"] if i["state"] == "ready"]
    return []


def ready_gauge(s, name=NAME) -> int:
    """Ready instances of `name` as /metrics reports them."""
    for line in httpx.get(f"{s.base}/metrics").text.splitlines():
        if line.startswith("berth_instances{") and f'connector="{name}@' in line and 'state="ready"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


async def test_a_burst_scales_out_and_idleness_scales_to_zero(tmp_path):
    s = serve(tmp_path, "--no-examples")
    try:
        doc = first_party_manifest(name=NAME, scaling={"max": 4, "targetConcurrency": 2, "idleTimeoutSeconds": 5})
        assert post_manifest(s, doc).status_code == 201
        url = s.mcp(NAME)
        answers: list[str] = []
        seen = 0
        seen_metric = 0
        callers = 200

        async def one(client: httpx.AsyncClient, i: int):
            body = modern_body("tools/call", {"name": "sleep", "arguments": {"ms": 400}}, id=i)
            res = await client.post(url, json=body, headers=modern_headers(body), timeout=60)
            answers.extend(m["result"]["content"][0]["text"] for m in messages(res) if "result" in m)

        async def watch():
            nonlocal seen, seen_metric
            while len(answers) < callers:
                seen = max(seen, len(instances(s)))
                seen_metric = max(seen_metric, ready_gauge(s))
                await anyio.sleep(0.1)

        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=callers)) as client:
            with anyio.fail_after(120):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(watch)
                    for i in range(callers):
                        tg.start_soon(one, client, i)
        assert answers == ["slept 400 ms"] * callers
        assert seen >= 2, f"the pool never grew beyond {seen} instance(s)"
        assert seen <= 4, "the pool grew beyond its max"
        # The gauges are refreshed once a second, and the burst may be shorter:
        # the instances stay ready for the idle timeout after it.
        deadline = time.monotonic() + 4
        while seen_metric < 2 and time.monotonic() < deadline:
            seen_metric = max(seen_metric, ready_gauge(s))
            time.sleep(0.1)
        assert seen_metric >= 2, f"/metrics never showed more than {seen_metric} ready instance(s)"
        deadline = time.monotonic() + 30
        while instances(s) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert instances(s) == [], "idle instances were not stopped"
        time.sleep(1.5)  # the gauges are refreshed once a second
        assert ready_gauge(s) == 0, "/metrics still counts ready instances"
        # And from zero, the next call starts one again.
        _, text, _ = await call(url, "2026-07-28", "echo", {"text": "back"})
        assert text == "back" and len(instances(s)) == 1
        scale = [l for l in httpx.get(f"{s.base}/metrics").text.splitlines() if l.startswith("berth_scale_events_total")]
        assert any('direction="up"' in l for l in scale) and any('direction="down"' in l for l in scale)
    finally:
        s.stop()


async def test_a_legacy_session_stays_on_its_instance(tmp_path):
    s = serve(tmp_path, "--no-examples")
    try:
        doc = first_party_manifest(name=NAME, scaling={"max": 3, "targetConcurrency": 1, "idleTimeoutSeconds": 60})
        assert post_manifest(s, doc).status_code == 201
        from mcp.client import Client

        # Grow the pool with concurrent stateless calls first.
        async with httpx.AsyncClient() as client:
            async def busy(i):
                body = modern_body("tools/call", {"name": "sleep", "arguments": {"ms": 300}}, id=i)
                await client.post(s.mcp(NAME), json=body, headers=modern_headers(body), timeout=60)
            async with anyio.create_task_group() as tg:
                for i in range(12):
                    tg.start_soon(busy, i)
        assert len(instances(s)) >= 2
        # The counter tool keeps state in the server process: one session sees its own count rise.
        async with Client(s.mcp(NAME), mode="legacy") as c:
            counts = [int((await c.call_tool("counter", {})).content[0].text) for _ in range(6)]
        assert counts == sorted(counts) and counts[-1] - counts[0] == 5, counts
    finally:
        s.stop()


def test_berth_run_scales_between_its_bounds(berth_factory):
    """`berth run` with a pool: concurrent calls start a second instance, and
    with --min-instances 0 both stop after the idle timeout."""
    from concurrent.futures import ThreadPoolExecutor

    from conftest import wait_for
    from mcp_http import modern_call

    b = berth_factory("first-party", "--min-instances", "0", "--max-instances", "2", "--target-concurrency", "1", "--idle-timeout", "1s")
    ready = lambda: sum("server ready" in l for l in b.log_lines)
    assert wait_for(lambda: ready() == 1), "berth run starts one server at once"
    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(modern_call, b.url, "tools/call", {"name": "sleep", "arguments": {"ms": 1500}}, id=i) for i in range(4)]
        answers = [messages(c.result())[-1]["result"]["content"][0]["text"] for c in calls]
    assert answers == ["slept 1500 ms"] * 4
    assert ready() == 2, "a second instance started for the concurrent calls, and no third"
    assert wait_for(lambda: any("scaled down" in l and "instances=0" in l for l in b.log_lines), timeout=15), b.logs()
    res = modern_call(b.url, "tools/call", {"name": "echo", "arguments": {"text": "back"}})
    assert messages(res)[-1]["result"]["content"][0]["text"] == "back" and ready() == 3
