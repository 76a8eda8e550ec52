"""Isolation modes: under `user` each user gets instances of their own, with
their own secrets; under `session` each legacy session gets its own server.
One user's credentials never reach another user's instance."""

from __future__ import annotations

import json

import httpx
import pytest

from mcp_http import messages, modern_body, modern_headers
from test_catalog import first_party_manifest, post_manifest, serve
from test_oauth import PASSWORD, token_for

PER_USER = "dev.berth.test/per-user"
PER_SESSION = "dev.berth.test/per-session"


@pytest.fixture(scope="module")
def berth(tmp_path_factory):
    s = serve(tmp_path_factory.mktemp("isolation"), "--no-examples", "--auth", "oauth",
              "--dev-user", f"alice:{PASSWORD}", "--dev-user", f"bob:{PASSWORD}")
    for name, isolation in [(PER_USER, "user"), (PER_SESSION, "session")]:
        doc = first_party_manifest(name=name, isolation=isolation)
        doc["packages"][0]["environmentVariables"] = [{"name": "BERTH_TEST_TOKEN", "isSecret": True}]
        assert post_manifest(s, doc).status_code == 201
    yield s
    s.stop()


def modern(berth, name, token, tool, args=None):
    body = modern_body("tools/call", {"name": tool, "arguments": args or {}})
    res = httpx.post(berth.mcp(name), json=body, headers=modern_headers(body, Authorization=f"Bearer {token}"), timeout=30)
    (msg,) = [m for m in messages(res) if "id" in m]
    return msg["result"]["content"][0]["text"]


def test_each_user_has_instances_and_secrets_of_their_own(berth):
    secrets = f"{berth.base}/admin/v1/connectors/{PER_USER}/secrets/BERTH_TEST_TOKEN"
    for user in ["alice", "bob"]:
        res = httpx.put(secrets, params={"user": user}, json={"value": f"{user}-upstream-token"}, headers=berth.admin())
        assert res.status_code == 204
    alice = token_for(berth, "alice", berth.mcp(PER_USER))
    bob = token_for(berth, "bob", berth.mcp(PER_USER))
    assert json.loads(modern(berth, PER_USER, alice, "whoami"))["token"] == "alice-upstream-token"
    assert json.loads(modern(berth, PER_USER, bob, "whoami"))["token"] == "bob-upstream-token"
    # State does not cross users: each counts from one.
    assert [modern(berth, PER_USER, alice, "counter") for _ in range(3)] == ["1", "2", "3"]
    assert modern(berth, PER_USER, bob, "counter") == "1"
    pools = {row["pool"] for row in httpx.get(f"{berth.base}/admin/v1/instances", headers=berth.admin()).json()
             if row["connector"].startswith(PER_USER)}
    assert pools == {"user:alice", "user:bob"}
    listed = httpx.get(f"{berth.base}/admin/v1/connectors/{PER_USER}/secrets", headers=berth.admin()).json()
    assert sorted(x["user"] for x in listed) == ["alice", "bob"] and "upstream-token" not in json.dumps(listed)


def test_each_legacy_session_has_its_own_server(berth):
    alice = token_for(berth, "alice", berth.mcp(PER_SESSION))

    def counter(session, id):
        res = httpx.post(berth.mcp(PER_SESSION), json={"jsonrpc": "2.0", "id": id, "method": "tools/call",
                         "params": {"name": "counter", "arguments": {}}},
                         headers={"Authorization": f"Bearer {alice}", "Mcp-Session-Id": session,
                                  "MCP-Protocol-Version": "2025-11-25", "Content-Type": "application/json",
                                  "Accept": "application/json, text/event-stream"}, timeout=30)
        (msg,) = [m for m in messages(res) if "id" in m]
        return msg["result"]["content"][0]["text"]

    def session():
        res = httpx.post(berth.mcp(PER_SESSION), json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
            headers={"Authorization": f"Bearer {alice}", "Content-Type": "application/json",
                     "Accept": "application/json, text/event-stream"}, timeout=30)
        return res.headers["mcp-session-id"]

    a, b = session(), session()
    assert [counter(a, 1), counter(a, 2)] == ["1", "2"]
    assert counter(b, 3) == "1", "a second session shares no server state with the first"
    # Each session's server is an instance the admin API shows (and can stop).
    rows = [r for r in httpx.get(f"{berth.base}/admin/v1/instances", headers=berth.admin()).json()
            if r["connector"].startswith(PER_SESSION)]
    assert [r["pool"] for r in rows] == ["session:alice", "session:alice"], rows
    pids = {i["pid"] for r in rows for i in r["instances"]}
    assert len(pids) == 2, "one process per session"
