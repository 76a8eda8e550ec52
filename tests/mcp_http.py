"""Raw MCP-over-HTTP helpers for tests that need to see the wire (headers,
status codes, SSE framing) rather than what an SDK makes of it."""

from __future__ import annotations

import json
from typing import Any

import httpx

MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"


def modern_body(method: str, params: dict | None = None, id: Any = 1, caps: dict | None = None, **meta) -> dict:
    p = dict(params or {})
    p["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "berth-tests", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": caps if caps is not None else {},
        **meta,
    }
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": p}


def modern_headers(body: dict, **extra: str) -> dict:
    h = {"Content-Type": "application/json", "Accept": ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": body["method"]}
    name = body.get("params", {}).get("name") or body.get("params", {}).get("uri")
    if name and body["method"] in ("tools/call", "prompts/get", "resources/read"):
        h["Mcp-Name"] = name
    h.update(extra)
    return h


def sse_messages(text: str) -> list[dict]:
    """The JSON messages of an SSE body, in order."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [l[5:].lstrip() for l in block.split("\n") if l.startswith("data:")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out


def iter_sse(resp: httpx.Response):
    """Yields the JSON messages of a streaming SSE response as they arrive."""
    buf = ""
    for chunk in resp.iter_text():
        buf += chunk
        while "\n\n" in buf:
            block, buf = buf.split("\n\n", 1)
            yield from sse_messages(block + "\n\n")


def messages(resp: httpx.Response) -> list[dict]:
    ct = resp.headers.get("content-type", "")
    if ct.startswith("text/event-stream"):
        return sse_messages(resp.text)
    if not resp.content:
        return []
    body = resp.json()
    return body if isinstance(body, list) else [body]


def modern_call(url: str, method: str, params: dict | None = None, client: httpx.Client | None = None, **kw) -> httpx.Response:
    body = modern_body(method, params, **kw)
    c = client or httpx
    return c.post(url, json=body, headers=modern_headers(body), timeout=30)


class LegacySession:
    """A hand-driven legacy session (2025-03-26 … 2025-11-25)."""

    def __init__(self, url: str, version: str = "2025-11-25", caps: dict | None = None):
        self.url = url
        self.version = version
        self.client = httpx.Client(timeout=30)
        r = self.client.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {"protocolVersion": version, "capabilities": caps or {}, "clientInfo": {"name": "raw", "version": "0"}},
            },
            headers={"Content-Type": "application/json", "Accept": ACCEPT},
        )
        r.raise_for_status()
        self.init = r.json()["result"]
        self.id = r.headers["mcp-session-id"]
        self.next_id = 1
        self.notify("notifications/initialized")

    def headers(self, **extra) -> dict:
        h = {"Content-Type": "application/json", "Accept": ACCEPT, "Mcp-Session-Id": self.id}
        if self.version != "2025-03-26":
            h["MCP-Protocol-Version"] = self.version
        h.update(extra)
        return h

    def post(self, body: Any, **extra) -> httpx.Response:
        return self.client.post(self.url, content=json.dumps(body), headers=self.headers(**extra))

    def request(self, method: str, params: dict | None = None) -> httpx.Response:
        self.next_id += 1
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            body["params"] = params
        return self.post(body)

    def notify(self, method: str, params: dict | None = None) -> httpx.Response:
        body = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            body["params"] = params
        return self.post(body)
