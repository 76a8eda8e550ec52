"""Bundles: one URL (`/mcp/bundle/{name}`) exposing chosen tools of several
connectors under prefixed names or aliases, with a policy of its own, in
both eras. Calls are relayed to the members as the caller, so the members'
own policies and audit still apply; progress and input requests pass
through; a bad definition is refused with every problem named."""

from __future__ import annotations

import time

import httpx
import httpx2
import pytest
from mcp import types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from test_catalog import first_party_manifest, post_manifest, serve

pytestmark = pytest.mark.anyio
MODES = ["legacy", "2026-07-28"]
ALPHA, BETA = "dev.berth.test/alpha", "dev.berth.test/beta"
SUPPORT = {
    "description": "Tools for the support rota",
    "members": [
        {"connector": ALPHA, "tools": ["echo", "add", "meta"], "aliases": {"add": "sum"}},
        {"connector": BETA, "prefix": "b"},
    ],
    "policy": {"deny": ["b__crash", "b__freeze"]},
}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def berth(tmp_path_factory):
    b = serve(tmp_path_factory.mktemp("bundles"), "--no-examples")
    try:
        for name in (ALPHA, BETA):
            assert post_manifest(b, first_party_manifest(name=name)).status_code == 201
        assert put_bundle(b, "support", SUPPORT).status_code in (200, 201)
        yield b
    finally:
        assert b.stop() == 0


def put_bundle(b, name: str, doc) -> httpx.Response:
    return httpx.put(f"{b.base}/admin/v1/bundles/{name}", json=doc, headers=b.admin())


def text_of(res) -> str:
    return " ".join(getattr(x, "text", "") for x in res.content)


async def outcome(c: Client, tool: str, args: dict) -> tuple[str, str]:
    try:
        res = await c.call_tool(tool, args)
    except MCPError as e:  # a JSON-RPC error from berth
        return "refused", e.error.message
    return ("error" if res.is_error else "ok"), text_of(res)


@pytest.mark.parametrize("mode", MODES)
async def test_a_bundle_serves_chosen_tools_of_two_connectors(berth, mode):
    async with Client(berth.mcp("bundle/support"), mode=mode) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        # alpha: only the tools taken, `add` under its alias; beta: all, prefixed, less the bundle's denials.
        assert {"alpha__echo", "sum", "alpha__meta", "b__echo", "b__add", "b__whoami"} <= names, names
        assert not {"alpha__add", "alpha__crash", "alpha__whoami", "echo", "b__crash", "b__freeze"} & names, names
        assert await outcome(c, "sum", {"a": 2, "b": 3}) == ("ok", "5")
        assert await outcome(c, "b__echo", {"text": "héllo ✓"}) == ("ok", "héllo ✓")
        kind, msg = await outcome(c, "b__crash", {})
        assert kind == "refused" and "refused by policy" in msg, msg
        kind, msg = await outcome(c, "alpha__crash", {})
        assert kind == "refused" and "has no tool 'alpha__crash'" in msg, msg


async def test_the_members_are_separate_servers_reached_through_their_own_endpoints(berth):
    import json

    async with Client(berth.mcp("bundle/support"), mode="2026-07-28") as c:
        via_bundle = json.loads(text_of(await c.call_tool("b__whoami", {})))["pid"]
    async with Client(berth.mcp(BETA), mode="2026-07-28") as c:
        direct = json.loads(text_of(await c.call_tool("whoami", {})))["pid"]
    assert via_bundle == direct, "the bundle relays to beta's own (shared) instance"
    instances = httpx.get(f"{berth.base}/admin/v1/instances", headers=berth.admin()).json()
    connectors = {p["connector"] for p in instances}
    assert "bundle/support" in connectors and any(c.startswith(f"{BETA}@") for c in connectors), connectors


@pytest.mark.parametrize("mode", MODES)
async def test_progress_and_input_requests_pass_through(berth, mode):
    seen: list[float] = []
    asked: list[str] = []

    async def on_progress(progress, total, message):
        seen.append(progress)

    async def on_elicit(ctx, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async with Client(berth.mcp("bundle/support"), mode=mode, elicitation_callback=on_elicit) as c:
        res = await c.call_tool("b__progress", {"steps": 3, "delay_ms": 20}, progress_callback=on_progress)
        assert text_of(res) == "done 3"
        res = await c.call_tool("b__elicit", {"message": "who are you?"})
        assert text_of(res) == "hello Ada"
    assert seen == [1, 2, 3]
    assert asked == ["who are you?"]


async def test_trace_context_reaches_the_member(berth):
    import json

    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with Client(berth.mcp("bundle/support"), mode="2026-07-28") as c:
        res = await c.call_tool("alpha__meta", {}, meta={"traceparent": parent})
    got = json.loads(text_of(res))["traceparent"]
    assert got.split("-")[1] == parent.split("-")[1], "same trace"
    assert got.split("-")[2] != parent.split("-")[2], "a child span, not the caller's"


async def test_a_changed_bundle_applies_from_the_next_request(berth):
    doc = {"members": [{"connector": ALPHA, "tools": ["echo"], "aliases": {"echo": "say"}}]}
    assert put_bundle(berth, "rota", doc).status_code == 201
    async with Client(berth.mcp("bundle/rota"), mode="2026-07-28") as c:
        assert {t.name for t in (await c.list_tools()).tools} == {"say"}
    doc["members"][0]["tools"] = ["echo", "add"]
    res = put_bundle(berth, "rota", doc)
    assert res.status_code == 200 and res.json()["name"] == "rota"
    async with Client(berth.mcp("bundle/rota"), mode="2026-07-28") as c:
        assert {t.name for t in (await c.list_tools()).tools} == {"say", "alpha__add"}
    listed = httpx.get(f"{berth.base}/admin/v1/bundles", headers=berth.admin()).json()
    assert [b["name"] for b in listed] == ["rota", "support"]
    assert httpx.delete(f"{berth.base}/admin/v1/bundles/rota", headers=berth.admin()).status_code == 204
    gone = httpx.post(berth.mcp("bundle/rota"), json={}, headers={"Accept": "application/json, text/event-stream"})
    assert gone.status_code == 404 and "no bundle rota" in gone.text
    assert httpx.delete(f"{berth.base}/admin/v1/bundles/rota", headers=berth.admin()).status_code == 404


@pytest.mark.parametrize(
    "doc, status, wanted",
    [
        ({"members": [{"connector": "dev.berth.test/nobody"}]}, 422, ["members[0]: ", "dev.berth.test/nobody"]),
        ({"members": [{"connector": ALPHA, "version": "9.9.9"}]}, 422, ["members[0]: ", "9.9.9"]),
        (
            {"members": [{"connector": ALPHA, "prefix": "x y"}, {"connector": BETA, "prefix": "x y"}]},
            422,
            ["members[0].prefix \"x y\"", "members[1].prefix"],
        ),
        ({"members": [{"connector": ALPHA, "tools": ["echo"], "aliases": {"add": "plus"}}]}, 422, ["do not take \"add\""]),
        ({"members": []}, 422, ["at least one member"]),
        ({"name": "other", "members": [{"connector": ALPHA}]}, 400, ["the path bad"]),
        ({"members": [[ALPHA]]}, 400, ["members: expected objects"]),
        ({"members": [{"connector": ALPHA, "tool": ["echo"]}]}, 400, ["unknown field `tool`"]),
        ([], 400, ["expected a JSON object"]),
    ],
)
def test_bad_bundles_are_refused_with_every_problem(berth, doc, status, wanted):
    res = put_bundle(berth, "bad", doc)
    assert res.status_code == status, res.text
    body = res.json()
    said = "\n".join([body["error"], *(body.get("details") or [])])
    for w in wanted:
        assert w in said, said
    assert httpx.get(f"{berth.base}/admin/v1/bundles/bad", headers=berth.admin()).status_code == 404, "nothing stored"


def test_bundles_need_the_admin_token(berth):
    assert httpx.get(f"{berth.base}/admin/v1/bundles").status_code == 401
    assert httpx.put(f"{berth.base}/admin/v1/bundles/x", json=SUPPORT).status_code == 401


async def test_member_policies_and_audit_apply_per_caller(tmp_path):
    """With OAuth on, the bundle relays as the caller: an admin's policy
    for alice on a member hides that tool from her through the bundle too,
    and the member's audit names her."""
    b = serve(tmp_path, "--no-examples", "--auth", "oauth")
    try:
        assert post_manifest(b, first_party_manifest(name=ALPHA)).status_code == 201
        assert put_bundle(b, "team", {"members": [{"connector": ALPHA, "tools": ["echo", "add"]}]}).status_code == 201
        policy = httpx.put(f"{b.base}/admin/v1/connectors/{ALPHA}/policies/alice", json={"deny": ["echo"]}, headers=b.admin())
        assert policy.status_code == 204

        def pat(user):
            res = httpx.post(f"{b.base}/admin/v1/tokens", json={"user": user, "name": "bundle test"}, headers=b.admin())
            assert res.status_code == 201, res.text
            return res.json()["token"]

        async def as_user(user):
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {pat(user)}"})
            async with Client(streamable_http_client(b.mcp("bundle/team"), http_client=http), mode="2026-07-28") as c:
                names = {t.name for t in (await c.list_tools()).tools}
                return names, await outcome(c, "alpha__echo", {"text": "hi"})

        names, (kind, msg) = await as_user("alice")
        assert names == {"alpha__add"} and kind == "refused" and "refused by policy" in msg, (names, msg)
        names, got = await as_user("bob")
        assert names == {"alpha__echo", "alpha__add"} and got == ("ok", "hi")
        assert httpx.post(b.mcp("bundle/team"), json={}).status_code == 401, "a bundle needs a token like any connector"
        for _ in range(50):
            audit = httpx.get(f"{b.base}/admin/v1/audit", params={"tool": "echo"}, headers=b.admin()).json()
            if {r["user"] for r in audit} >= {"alice", "bob"}:
                break
            time.sleep(0.1)
        member = {(r["user"], r["decision"], r["client_id"]) for r in audit if r["connector"].startswith(ALPHA)}
        assert ("alice", "deny", "bundle:team") in member and ("bob", "allow", "bundle:team") in member, audit
    finally:
        assert b.stop() == 0
