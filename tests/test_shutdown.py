"""Shutdown: open streams do not hold berth up, subscriptions end gracefully,
and the server goes with it."""

from __future__ import annotations

import signal
import threading
import time

import httpx

from conftest import wait_for
from mcp_http import LegacySession, iter_sse, modern_body, modern_headers
from test_failures import pid_alive, whoami


def test_sigterm_with_open_streams_exits_and_closes_subscriptions_gracefully(berth_factory):
    b = berth_factory("first-party")
    pid = whoami(b.url)["pid"]
    legacy = LegacySession(b.url)
    got: list[dict] = []
    opened = threading.Event()

    def get_stream():
        try:
            with legacy.client.stream("GET", b.url, headers={**legacy.headers(), "Accept": "text/event-stream"}, timeout=30) as r:
                for _ in r.iter_text():
                    pass
        except Exception:  # noqa: BLE001 - the stream ends when berth exits
            pass

    def listen():
        body = modern_body("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, id="sub-1")
        with httpx.stream("POST", b.url, json=body, headers=modern_headers(body), timeout=30) as r:
            for m in iter_sse(r):
                got.append(m)
                opened.set()

    threads = [threading.Thread(target=get_stream, daemon=True), threading.Thread(target=listen, daemon=True)]
    for t in threads:
        t.start()
    assert opened.wait(10)
    time.sleep(0.3)
    t0 = time.monotonic()
    b.proc.send_signal(signal.SIGTERM)
    b.proc.wait(15)
    assert time.monotonic() - t0 < 5, "open streams held berth up"
    for t in threads:
        t.join(5)
    assert got[0]["method"] == "notifications/subscriptions/acknowledged"
    assert got[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"
    final = got[-1]
    assert final["id"] == "sub-1" and final["result"]["resultType"] == "complete"
    assert final["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"
    assert wait_for(lambda: not pid_alive(pid), 5)
