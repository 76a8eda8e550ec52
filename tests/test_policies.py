"""Per-user tool policies: an admin narrows one user's tools on a
connector; that user no longer sees the tool (in either era) and a call is
refused and audited, while another user keeps it. Policies survive a
restart and layer on the manifest's own policy."""

from __future__ import annotations

import time

import httpx
import pytest
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_http import messages, modern_body, modern_headers
from test_catalog import first_party_manifest, post_manifest, serve

pytestmark = pytest.mark.anyio
CONNECTOR = "dev.berth.test/policed"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def start(data_dir):
    return serve(data_dir, "--no-examples", "--auth", "oauth")


def pat(berth, user: str) -> str:
    res = httpx.post(f"{berth.base}/admin/v1/tokens", json={"user": user, "name": "policy test"}, headers=berth.admin())
    assert res.status_code == 201, res.text
    return res.json()["token"]


async def tools_and_call(berth, token: str, mode: str, tool: str, args: dict):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    async with Client(streamable_http_client(berth.mcp(CONNECTOR), http_client=http), mode=mode) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        try:
            res = await c.call_tool(tool, args)
            return names, ("error" if res.is_error else "ok"), " ".join(getattr(x, "text", "") for x in res.content)
        except Exception as e:  # a JSON-RPC error from berth
            return names, "refused", repr(e)


def set_policy(berth, user: str, **doc) -> httpx.Response:
    return httpx.put(f"{berth.base}/admin/v1/connectors/{CONNECTOR}/policies/{user}", json=doc, headers=berth.admin())


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_policy_narrows_one_user_only(tmp_path, mode):
    berth = start(tmp_path)
    try:
        # The manifest already denies `crash` to everyone.
        assert post_manifest(berth, first_party_manifest(name=CONNECTOR, policy={"deny": ["crash"]})).status_code == 201
        alice, bob = pat(berth, "alice"), pat(berth, "bob")
        assert set_policy(berth, "alice", deny=["echo"]).status_code == 204
        names, outcome, text = await tools_and_call(berth, alice, mode, "echo", {"text": "hi"})
        assert "echo" not in names and "add" in names and "crash" not in names
        assert outcome == "refused" and "refused by policy" in text
        names, outcome, text = await tools_and_call(berth, bob, mode, "echo", {"text": "hi"})
        assert "echo" in names and "crash" not in names and outcome == "ok" and text == "hi"
        # An allow-list policy: alice gets `add` and nothing else.
        assert set_policy(berth, "alice", default="deny", allow=["add", "crash"]).status_code == 204
        names, outcome, _ = await tools_and_call(berth, alice, mode, "add", {"a": 1, "b": 2})
        assert names == {"add"} and outcome == "ok", "the manifest's deny of crash still wins"
        # The refusal is audited (written off the request path: poll briefly).
        for _ in range(50):
            audit = httpx.get(f"{berth.base}/admin/v1/audit", params={"user": "alice", "decision": "deny"}, headers=berth.admin()).json()
            if any(r["tool"] == "echo" for r in audit):
                break
            time.sleep(0.1)
        assert any(r["tool"] == "echo" and r["user"] == "alice" for r in audit), audit
        listed = httpx.get(f"{berth.base}/admin/v1/connectors/{CONNECTOR}/policies", headers=berth.admin()).json()
        assert listed["users"]["alice"]["default"] == "deny"
    finally:
        assert berth.stop() == 0
    again = start(tmp_path)
    try:
        names, outcome, _ = await tools_and_call(again, alice, mode, "echo", {"text": "hi"})
        assert names == {"add"} and outcome == "refused", "the policy survived the restart"
        assert httpx.delete(f"{again.base}/admin/v1/connectors/{CONNECTOR}/policies/alice", headers=again.admin()).status_code == 204
        names, outcome, _ = await tools_and_call(again, alice, mode, "echo", {"text": "hi"})
        assert "echo" in names and outcome == "ok"
    finally:
        again.stop()


def test_bad_policies_are_refused(tmp_path):
    berth = start(tmp_path)
    try:
        assert set_policy(berth, "alice", deny=["x"]).status_code == 404, "no such connector"
        assert post_manifest(berth, first_party_manifest(name=CONNECTOR)).status_code == 201
        bad = set_policy(berth, "alice", default="maybe")
        assert bad.status_code == 400 and "default" in bad.json()["error"]
        assert set_policy(berth, "alice", deny=["x"], extra=1).status_code == 400
        assert httpx.put(f"{berth.base}/admin/v1/connectors/{CONNECTOR}/policies/alice", json={}).status_code == 401
    finally:
        berth.stop()


def raw_call(berth, token: str, tool: str, args: dict) -> dict:
    """One modern tools/call with no tools/list before it."""
    body = modern_body("tools/call", {"name": tool, "arguments": args})
    res = httpx.post(berth.mcp(CONNECTOR), json=body, headers={**modern_headers(body), "Authorization": f"Bearer {token}"}, timeout=60)
    return [m for m in messages(res) if "id" in m][-1]


async def test_annotation_rules_and_name_patterns(tmp_path):
    berth = start(tmp_path)
    try:
        assert post_manifest(berth, first_party_manifest(name=CONNECTOR)).status_code == 201
        alice, bob = pat(berth, "alice"), pat(berth, "bob")
        # Alice may use read-only tools only (the test server marks `echo` so).
        assert set_policy(berth, "alice", annotations={"readOnlyHint": True}).status_code == 204
        # A call before any tools/list: berth learns the tool's annotations from the server itself.
        refused = raw_call(berth, alice, "add", {"a": 1, "b": 2})
        assert "refused by policy" in refused["error"]["message"], refused
        allowed = raw_call(berth, alice, "echo", {"text": "ro"})
        assert allowed["result"]["content"][0]["text"] == "ro", allowed
        assert "refused by policy" in raw_call(berth, alice, "no_such_tool", {})["error"]["message"]
        names, outcome, _ = await tools_and_call(berth, alice, "2026-07-28", "sleep", {"ms": 1})
        assert "echo" in names and "sleep" not in names and "add" not in names and outcome == "refused"
        # Bob loses every tool whose name starts with "s", and keeps the rest.
        assert set_policy(berth, "bob", deny=["s*"]).status_code == 204
        names, outcome, _ = await tools_and_call(berth, bob, "legacy", "sleep", {"ms": 1})
        assert names and not any(n.startswith("s") for n in names) and {"echo", "add"} <= names
        assert outcome == "refused"
        assert set_policy(berth, "alice", annotations={"fastHint": True}).status_code == 400
        assert set_policy(berth, "alice", annotations={"readOnlyHint": "yes"}).status_code == 400
    finally:
        berth.stop()


async def test_group_policies_apply_to_members(tmp_path):
    berth = start(tmp_path)
    groups = f"{berth.base}/admin/v1/groups"
    try:
        assert post_manifest(berth, first_party_manifest(name=CONNECTOR)).status_code == 201
        alice, bob = pat(berth, "alice"), pat(berth, "bob")
        assert httpx.put(f"{groups}/contractors/members/alice", headers=berth.admin()).status_code == 204
        assert set_policy(berth, "group:contractors", deny=["add"]).status_code == 204
        names, outcome, _ = await tools_and_call(berth, alice, "2026-07-28", "add", {"a": 1, "b": 2})
        assert "add" not in names and outcome == "refused"
        names, outcome, _ = await tools_and_call(berth, bob, "legacy", "add", {"a": 1, "b": 2})
        assert "add" in names and outcome == "ok", "bob is in no group"
        # Her own policy and her group's both apply.
        assert set_policy(berth, "alice", deny=["echo"]).status_code == 204
        names, outcome, _ = await tools_and_call(berth, alice, "legacy", "sleep", {"ms": 1})
        assert "add" not in names and "echo" not in names and "sleep" in names and outcome == "ok"
        assert httpx.get(groups, headers=berth.admin()).json() == {"contractors": {"alice": ["admin"]}}
        assert httpx.put(f"{groups}/contractors/members/alice").status_code == 401
        assert set_policy(berth, "group:", deny=["x"]).status_code == 400
        assert httpx.put(f"{groups}/{'x' * 129}/members/alice", headers=berth.admin()).status_code == 400
    finally:
        assert berth.stop() == 0
    again = start(tmp_path)
    groups = f"{again.base}/admin/v1/groups"
    try:
        names, outcome, _ = await tools_and_call(again, alice, "2026-07-28", "add", {"a": 1, "b": 2})
        assert "add" not in names and outcome == "refused", "the membership survived the restart"
        assert httpx.delete(f"{groups}/contractors/members/alice", headers=again.admin()).status_code == 204
        assert httpx.delete(f"{groups}/contractors/members/alice", headers=again.admin()).status_code == 404
        names, outcome, _ = await tools_and_call(again, alice, "2026-07-28", "add", {"a": 1, "b": 2})
        assert "add" in names and outcome == "ok"
    finally:
        again.stop()


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_prompts_and_resources_follow_their_own_rules(tmp_path, mode):
    berth = start(tmp_path)
    try:
        # The manifest lets only the static resource through (the echo template and its reads are out)…
        manifest = first_party_manifest(name=CONNECTOR, policy={"resources": {"default": "deny", "allow": ["test://static/*"]}})
        assert post_manifest(berth, manifest).status_code == 201
        # …and an admin takes the greet prompt from alice only.
        assert set_policy(berth, "alice", prompts={"deny": ["gree?"]}).status_code == 204
        listed = httpx.get(f"{berth.base}/admin/v1/connectors/{CONNECTOR}/policies", headers=berth.admin()).json()
        assert listed["users"]["alice"]["prompts"] == {"default": "allow", "allow": [], "deny": ["gree?"]}

        async def view(user: str):
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {pat(berth, user)}"})
            async with Client(streamable_http_client(berth.mcp(CONNECTOR), http_client=http), mode=mode) as c:
                prompts = {p.name for p in (await c.list_prompts()).prompts}
                resources = {str(r.uri) for r in (await c.list_resources()).resources}
                templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
                outcomes = {}
                for name, use in [("greet", lambda: c.get_prompt("greet", {"name": "Zoë"})),
                                  ("static", lambda: c.read_resource("test://static/hello")),
                                  ("echo", lambda: c.read_resource("test://echo/hi"))]:
                    try:
                        await use()
                        outcomes[name] = "ok"
                    except Exception as e:  # berth's JSON-RPC refusal
                        outcomes[name] = "refused" if "refused by policy" in str(e) else repr(e)
                return prompts, resources, templates, outcomes

        prompts, resources, templates, outcomes = await view("alice")
        assert prompts == set() and resources == {"test://static/hello"} and templates == set()
        assert outcomes == {"greet": "refused", "static": "ok", "echo": "refused"}, outcomes
        prompts, _, _, outcomes = await view("bob")
        assert prompts == {"greet"} and outcomes == {"greet": "ok", "static": "ok", "echo": "refused"}, outcomes
    finally:
        assert berth.stop() == 0
