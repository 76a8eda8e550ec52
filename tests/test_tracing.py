"""W3C trace context: a client's `_meta.traceparent` reaches the server in
the same trace with berth's own span as its parent (both eras), berth's log
lines for the request carry the trace id, and a malformed one is dropped."""

from __future__ import annotations

import json

import httpx

from conftest import wait_for
from mcp_http import ACCEPT, messages, modern_body, modern_headers

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{CALLER_SPAN}-01"


def seen(msg: dict) -> dict:
    """The `_meta` the server received, as the `meta` tool reports it."""
    return json.loads(msg["result"]["content"][0]["text"])


def assert_child_of_berth(meta: dict):
    version, trace, parent, flags = meta["traceparent"].split("-")
    assert (version, trace, flags) == ("00", TRACE, "01")
    assert parent != CALLER_SPAN and len(parent) == 16 and int(parent, 16) != 0
    assert meta.get("tracestate") == "vendor=1"


def test_modern_and_legacy_calls_carry_the_trace(berth_factory):
    b = berth_factory("first-party")
    body = modern_body("tools/call", {"name": "meta", "arguments": {}}, traceparent=TRACEPARENT, tracestate="vendor=1")
    res = httpx.post(b.url, json=body, headers=modern_headers(body), timeout=30)
    assert_child_of_berth(seen(messages(res)[-1]))

    with httpx.Client(timeout=30) as c:
        h = {"Content-Type": "application/json", "Accept": ACCEPT, "MCP-Protocol-Version": "2025-06-18"}
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
        r = c.post(b.url, json=init, headers=h)
        h["Mcp-Session-Id"] = r.headers["mcp-session-id"]
        c.post(b.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=h)
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "meta", "arguments": {}, "_meta": {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}}}
        legacy = seen(messages(c.post(b.url, json=call, headers=h))[-1])
    assert_child_of_berth(legacy)
    assert wait_for(lambda: sum(f"trace_id={TRACE}" in l for l in b.log_lines) >= 2), b.logs()


def test_a_malformed_traceparent_is_not_passed_on(berth_factory):
    b = berth_factory("first-party")
    body = modern_body("tools/call", {"name": "meta", "arguments": {}}, traceparent="00-zz-nope-01", tracestate="vendor=1")
    meta = seen(messages(httpx.post(b.url, json=body, headers=modern_headers(body), timeout=30))[-1])
    assert "traceparent" not in meta and "tracestate" not in meta
