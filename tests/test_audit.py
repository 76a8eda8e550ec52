"""Every tool call leaves an audit record — who, which tool, the policy's
decision, the outcome — queryable and exportable through the admin API and
counted in /metrics; and a legacy session belongs to the user who opened it."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from test_catalog import first_party_manifest, post_manifest, serve
from test_oauth import PASSWORD, token_for

CONNECTOR = "dev.berth.test/audited"


@pytest.fixture(scope="module")
def berth(tmp_path_factory):
    s = serve(tmp_path_factory.mktemp("audit"), "--no-examples", "--auth", "oauth",
              "--dev-user", f"alice:{PASSWORD}", "--dev-user", f"bob:{PASSWORD}")
    assert post_manifest(s, first_party_manifest(name=CONNECTOR, policy={"deny": ["whoami"]})).status_code == 201
    yield s
    s.stop()


def rpc(berth, token, method, params=None, session=None, id=1):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}
    if session:
        headers |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    body = {"jsonrpc": "2.0", "id": id, "method": method, "params": params or {}}
    return httpx.post(berth.mcp(CONNECTOR), json=body, headers=headers, timeout=30)


def legacy_session(berth, token) -> str:
    res = rpc(berth, token, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}})
    assert res.status_code == 200, res.text
    sid = res.headers["mcp-session-id"]
    rpc(berth, token, "notifications/initialized", session=sid)
    return sid


def audit(berth, **q):
    return httpx.get(f"{berth.base}/admin/v1/audit", params=q, headers=berth.admin()).json()


def test_calls_are_audited_per_user_with_decision_and_outcome(berth):
    alice = token_for(berth, "alice", berth.mcp(CONNECTOR))
    bob = token_for(berth, "bob", berth.mcp(CONNECTOR))
    sa = legacy_session(berth, alice)
    assert "ok ✓" in rpc(berth, alice, "tools/call", {"name": "echo", "arguments": {"text": "ok ✓"}}, session=sa).text
    assert "refused by policy" in rpc(berth, alice, "tools/call", {"name": "whoami", "arguments": {}}, session=sa, id=2).text
    rpc(berth, alice, "tools/call", {"name": "no_such_tool", "arguments": {}}, session=sa, id=3)
    sb = legacy_session(berth, bob)
    rpc(berth, bob, "tools/call", {"name": "echo", "arguments": {"text": "bob"}}, session=sb)

    deadline = time.monotonic() + 10
    while len(audit(berth, user="alice")) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    mine = {r["tool"]: r for r in audit(berth, user="alice")}
    assert set(mine) == {"echo", "whoami", "no_such_tool"}
    assert mine["echo"]["decision"] == "allow" and mine["echo"]["outcome"] == "ok"
    assert mine["whoami"]["decision"] == "deny" and mine["whoami"]["outcome"] == "denied"
    assert mine["no_such_tool"]["outcome"] in {"error", "tool_error"}
    assert all(r["connector"] == f"{CONNECTOR}@1.0.0" and r["client_id"] for r in mine.values())
    assert [r["user"] for r in audit(berth, user="bob")] == ["bob"]
    assert [r["tool"] for r in audit(berth, decision="deny")] == ["whoami"]
    export = httpx.get(f"{berth.base}/admin/v1/audit", params={"format": "jsonl", "connector": CONNECTOR}, headers=berth.admin())
    lines = [json.loads(l) for l in export.text.splitlines()]
    assert len(lines) == 4 and export.headers["content-type"].startswith("application/jsonl")
    assert "ok ✓" not in export.text, "argument values are not recorded"
    ndjson = httpx.get(f"{berth.base}/admin/v1/audit/export", params={"connector": CONNECTOR}, headers=berth.admin())
    assert ndjson.status_code == 200 and ndjson.headers["content-type"] == "application/x-ndjson"
    exported = [json.loads(l) for l in ndjson.text.splitlines()]
    assert exported == lines[::-1], "the export is the same records, oldest first"
    assert [r["at_ms"] for r in exported] == sorted(r["at_ms"] for r in exported)
    assert httpx.get(f"{berth.base}/admin/v1/audit/export").status_code == 401
    assert httpx.get(f"{berth.base}/admin/v1/audit").status_code == 401

    metrics = httpx.get(f"{berth.base}/metrics").text
    denied = [l for l in metrics.splitlines() if l.startswith("berth_tool_calls_total") and 'decision="deny"' in l]
    assert denied and float(denied[0].rsplit(" ", 1)[1]) >= 1
    assert "berth_cold_starts_total" in metrics and "alice" not in metrics


def test_a_session_belongs_to_the_user_who_opened_it(berth):
    alice = token_for(berth, "alice", berth.mcp(CONNECTOR))
    bob = token_for(berth, "bob", berth.mcp(CONNECTOR))
    sa = legacy_session(berth, alice)
    stolen = rpc(berth, bob, "tools/call", {"name": "echo", "arguments": {"text": "hijack"}}, session=sa)
    assert stolen.status_code == 404 and "hijack" not in stolen.text
    delete = httpx.delete(berth.mcp(CONNECTOR), headers={"Authorization": f"Bearer {bob}", "Mcp-Session-Id": sa})
    assert delete.status_code == 404
    assert "still mine" in rpc(berth, alice, "tools/call", {"name": "echo", "arguments": {"text": "still mine"}}, session=sa).text


def settings(berth, patch=None) -> httpx.Response:
    if patch is None:
        return httpx.get(f"{berth.base}/admin/v1/settings", headers=berth.admin())
    return httpx.patch(f"{berth.base}/admin/v1/settings", json=patch, headers=berth.admin())


def newest(berth, since_ms: int) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for r in audit(berth, user="alice", tool="echo", since_ms=since_ms):
            return r
        time.sleep(0.1)
    raise AssertionError("no audit record")


def test_records_name_the_instance_and_carry_arguments_only_when_switched_on(berth):
    alice = token_for(berth, "alice", berth.mcp(CONNECTOR))
    sa = legacy_session(berth, alice)
    shown = settings(berth)
    assert shown.status_code == 200 and shown.json()["runtime"] == {"auditArguments": False}
    assert shown.json()["fixed"]["auth"] == "oauth" and berth.token not in shown.text

    def call(text: str) -> dict:
        since = int(time.time() * 1000)
        assert rpc(berth, alice, "tools/call", {"name": "echo", "arguments": {"text": text}}, session=sa).status_code == 200
        return newest(berth, since)

    off = call("not recorded")
    assert "arguments" not in off
    instances = httpx.get(f"{berth.base}/admin/v1/instances", headers=berth.admin()).json()
    ids = {i["id"] for p in instances if p["connector"].startswith(CONNECTOR) for i in p["instances"]}
    assert off["instance"] in ids, (off, instances)

    on = settings(berth, {"auditArguments": True})
    assert on.status_code == 200 and on.json()["runtime"]["auditArguments"] is True
    try:
        assert call("plain words")["arguments"] == {"text": "plain words"}
        assert call("Bearer sekrit-123")["arguments"] == {"text": "[redacted]"}
        export = httpx.get(f"{berth.base}/admin/v1/audit/export", params={"connector": CONNECTOR}, headers=berth.admin())
        assert "sekrit-123" not in export.text and "not recorded" not in export.text
    finally:
        assert settings(berth, {"auditArguments": False}).json()["runtime"]["auditArguments"] is False


@pytest.mark.parametrize(
    "patch, said",
    [
        ({"listen": "0.0.0.0:1"}, "listen is set at start"),
        ({"auditArguments": True, "auth": "none"}, "auth is set at start"),
        ({"auditArgs": True}, "unknown field `auditArgs`"),
        ({"auditArguments": "yes"}, "expected {\"auditArguments\": true|false}"),
        ([], "expected a JSON object"),
    ],
)
def test_settings_fixed_at_start_are_refused_by_name(berth, patch, said):
    res = settings(berth, patch)
    assert res.status_code == 400 and said in res.json()["error"], res.text
    assert settings(berth).json()["runtime"]["auditArguments"] is False, "nothing changed"


def test_run_time_settings_survive_a_restart(tmp_path):
    first = serve(tmp_path, "--no-examples")
    try:
        assert settings(first, {"auditArguments": True}).status_code == 200
    finally:
        first.stop()
    second = serve(tmp_path, "--no-examples")
    try:
        assert settings(second).json()["runtime"]["auditArguments"] is True
        assert settings(second).json()["fixed"]["auth"] == "none", "loopback without --auth"
    finally:
        second.stop()
