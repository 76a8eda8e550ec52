"""The official Python SDK (`mcp` 2.x) in each of its modes against berth in
front of real STDIO servers: legacy ones (which the SDK's 2026-07-28 mode
cannot use without berth) and a modern one (which its legacy mode cannot)."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import mcp_types as types
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError

MODES = ["legacy", "2026-07-28", "auto"]
UNICODE = "héllo ✓ 世界 🚢 — ünïcödé"


@dataclass
class Profile:
    """What each server offers, so one test body covers all of them."""

    echo: tuple[str, dict, str]  # tool, arguments, text expected in the reply
    structured: tuple[str, dict, str] | None = None  # tool, arguments, key in structured content
    progress: tuple[str, dict, int] | None = None  # tool, arguments, number of notifications
    elicit: str | None = None  # tool that asks the client for input
    prompt: tuple[str, dict] | None = None
    resources: bool = False
    list_changed: tuple[str, dict] | None = None  # tool call that changes the tool list
    resource_updates: tuple[str, str] | None = None  # (uri, tool that starts updates)


PROFILES: dict[str, Profile] = {
    "everything": Profile(
        echo=("echo", {"message": UNICODE}, UNICODE),
        structured=("get-structured-content", {"location": "Chicago"}, "temperature"),
        progress=("trigger-long-running-operation", {"duration": 0.6, "steps": 3}, 3),
        elicit="trigger-elicitation-request",
        prompt=("args-prompt", {"city": "Zürich", "state": "ZH"}),
        resources=True,
        resource_updates=("demo://resource/static/document/architecture.md", "toggle-subscriber-updates"),
    ),
    "time": Profile(
        echo=("convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}, "Asia/Tokyo"),
        structured=("get_current_time", {"timezone": "Europe/Paris"}, "timezone"),
    ),
    # Same server, started the way the README's quick start starts it.
    "everything-npx": None,  # filled in below
    "first-party": Profile(
        echo=("echo", {"text": UNICODE}, UNICODE),
        structured=("add", {"a": 40, "b": 2}, "sum"),
        progress=("progress", {"steps": 4, "delay_ms": 20}, 4),
        elicit="elicit",
        prompt=("greet", {"name": "Zürich"}),
        resources=True,
        list_changed=("change_tools", {}),
    ),
    "modern": Profile(
        echo=("shout", {"text": UNICODE}, UNICODE.upper()),
        elicit="ask_name",
        structured=("add", {"a": 40, "b": 2}, "result"),
        prompt=("greet", {"name": "Zürich"}),
        resources=True,
    ),
}

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


PROFILES["everything-npx"] = PROFILES["everything"]


def having(feature: str | None = None):
    """Parametrizes a test over every (server, mode) whose server has `feature`."""
    names = [n for n, p in PROFILES.items() if feature is None or getattr(p, feature)]
    return pytest.mark.parametrize("server_name, mode", [(n, m) for n in names for m in MODES])


@pytest.fixture
def server(server_name, shared_berth):
    return server_name, shared_berth(server_name)


def text_of(result: types.CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


@having()
async def test_tools_list_and_unicode_call(server, mode):
    name, b = server
    p = PROFILES[name]
    async with Client(b.url, mode=mode) as c:
        tools = await c.list_tools()
        tool, args, want = p.echo
        assert tool in {t.name for t in tools.tools}
        res = await c.call_tool(tool, args)
        assert not res.is_error, text_of(res)
        assert want in text_of(res)
        if mode != "legacy":
            assert c.protocol_version == "2026-07-28"


@having()
async def test_fifty_concurrent_calls(server, mode):
    name, b = server
    tool, args, want = PROFILES[name].echo
    results: list[str] = []
    async with Client(b.url, mode=mode) as c:

        async def one():
            res = await c.call_tool(tool, args)
            results.append(text_of(res))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(one)
    assert len(results) == 50 and all(want in r for r in results)


@having("structured")
async def test_structured_content(server, mode):
    name, b = server
    p = PROFILES[name]
    tool, args, key = p.structured
    async with Client(b.url, mode=mode) as c:
        res = await c.call_tool(tool, args)
        assert isinstance(res.structured_content, dict) and key in res.structured_content, res


@having()
async def test_unknown_tool_is_an_error(server, mode):
    _, b = server
    async with Client(b.url, mode=mode) as c:
        try:
            res = await c.call_tool("no-such-tool-anywhere", {})
        except MCPError as e:
            assert e.code in (-32602, -32601)
        else:
            assert res.is_error and "no-such-tool-anywhere" in text_of(res)


@having("progress")
async def test_progress_notifications(server, mode):
    name, b = server
    p = PROFILES[name]
    tool, args, n = p.progress
    seen: list[float] = []

    async def on_progress(progress, total, message):
        seen.append(progress)

    async with Client(b.url, mode=mode) as c:
        res = await c.call_tool(tool, args, progress_callback=on_progress)
        assert not res.is_error
    assert len(seen) == n and seen == sorted(seen)


@having("resources")
async def test_resources_and_prompts(server, mode):
    name, b = server
    p = PROFILES[name]
    async with Client(b.url, mode=mode) as c:
        if p.resources:
            listed = await c.list_resources()
            assert listed.resources
            uri = str(listed.resources[0].uri)
            read = await c.read_resource(uri)
            assert read.contents and str(read.contents[0].uri) == uri
        if p.prompt:
            prompts = await c.list_prompts()
            pname, pargs = p.prompt
            assert pname in {x.name for x in prompts.prompts}
            got = await c.get_prompt(pname, pargs)
            assert "Zürich" in str(got.messages)


@having("elicit")
async def test_elicitation_round_trip(server, mode):
    name, b = server
    p = PROFILES[name]
    asked: list[str] = []

    async def on_elicit(ctx, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "Grace Hopper", "check": True, "email": "grace@example.com"})

    async with Client(b.url, mode=mode, elicitation_callback=on_elicit) as c:
        res = await c.call_tool(p.elicit, {})
    assert asked, "the client was never asked"
    assert "Grace Hopper" in text_of(res)


@having("resource_updates")
async def test_subscription_receives_notification(server, mode):
    name, b = server
    p = PROFILES[name]
    uri, toggle = p.resource_updates
    got = anyio.Event()

    async def on_message(msg):
        if isinstance(msg, types.ServerNotification) and getattr(msg, "method", "") == "notifications/resources/updated":
            got.set()

    if mode == "legacy":
        async with Client(b.url, mode=mode, message_handler=on_message) as c:
            await c.subscribe_resource(uri)
            await c.call_tool(toggle, {})
            try:
                with anyio.fail_after(15):
                    await got.wait()
            finally:
                await c.call_tool(toggle, {})
    else:
        async with Client(b.url, mode=mode) as c:
            async with c.listen(resource_subscriptions=[uri]) as sub:
                assert uri in (sub.honored.resource_subscriptions or [])
                await c.call_tool(toggle, {})
                try:
                    with anyio.fail_after(15):
                        async for event in sub:
                            assert str(event.uri) == uri
                            break
                finally:
                    await c.call_tool(toggle, {})


@having("list_changed")
async def test_tools_list_changed_reaches_listener(server, mode):
    name, b = server
    p = PROFILES[name]
    tool, args = p.list_changed
    got = anyio.Event()

    async def on_message(msg):
        if getattr(msg, "method", "") == "notifications/tools/list_changed":
            got.set()

    if mode == "legacy":
        async with Client(b.url, mode=mode, message_handler=on_message) as c:
            await anyio.sleep(0.3)  # the SDK opens its GET stream in the background
            await c.call_tool(tool, args)
            with anyio.fail_after(10):
                await got.wait()
    else:
        async with Client(b.url, mode=mode) as c:
            async with c.listen(tools_list_changed=True) as sub:
                assert sub.honored.tools_list_changed
                await c.call_tool(tool, args)
                with anyio.fail_after(10):
                    async for event in sub:
                        assert type(event).__name__ == "ToolsListChanged"
                        break
