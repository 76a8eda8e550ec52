"""berth as the era translator, seen on the wire: a legacy server's
server-to-client requests become InputRequiredResults for modern clients and
SSE requests for legacy ones; legacy streams resume from the session log."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from mcp_http import LegacySession, iter_sse, messages, modern_body, modern_headers

SERVER = "everything"
ELICIT_CAPS = {"elicitation": {"form": {}}}
ANSWER = {"action": "accept", "content": {"name": "Ada Lovelace", "check": True, "email": "ada@example.com"}}


@pytest.fixture(scope="module")
def url(shared_berth):
    return shared_berth(SERVER).url


def call(url, params, id=1, caps=ELICIT_CAPS, **meta):
    body = modern_body("tools/call", params, id=id, caps=caps, **meta)
    return httpx.post(url, json=body, headers=modern_headers(body), timeout=30)


def elicit_params(**extra):
    return {"name": "trigger-elicitation-request", "arguments": {}, **extra}


def test_server_request_becomes_input_required_and_retry_completes(url):
    (first,) = messages(call(url, elicit_params()))
    res = first["result"]
    assert res["resultType"] == "input_required"
    ((key, req),) = res["inputRequests"].items()
    assert req["method"] == "elicitation/create" and "requestedSchema" in req["params"]
    state = res["requestState"]
    (final,) = messages(call(url, elicit_params(inputResponses={key: ANSWER}, requestState=state), id=2))
    assert final["id"] == 2
    assert final["result"]["resultType"] == "complete"
    text = " ".join(c.get("text", "") for c in final["result"]["content"])
    assert "Ada Lovelace" in text


def test_request_state_is_single_use(url):
    (first,) = messages(call(url, elicit_params()))
    res = first["result"]
    key = next(iter(res["inputRequests"]))
    retry = elicit_params(inputResponses={key: ANSWER}, requestState=res["requestState"])
    assert "result" in messages(call(url, retry, id=2))[0]
    r = call(url, retry, id=3)
    assert r.status_code == 400 and messages(r)[0]["error"]["code"] == -32602


def test_tampered_or_moved_request_state_is_refused(url):
    (first,) = messages(call(url, elicit_params()))
    res = first["result"]
    key = next(iter(res["inputRequests"]))
    state = res["requestState"]
    flipped = state[:-2] + ("A" if state[-2] != "A" else "B") + state[-1]
    for params in (
        elicit_params(inputResponses={key: ANSWER}, requestState=flipped),
        elicit_params(inputResponses={key: ANSWER}, requestState="not-a-state"),
        # The same state presented on another tool is bound to the wrong request.
        {"name": "echo", "arguments": {"message": "x"}, "inputResponses": {key: ANSWER}, "requestState": state},
    ):
        r = call(url, params, id=9)
        assert r.status_code == 400, r.text
        assert messages(r)[0]["error"]["code"] == -32602
    # The genuine one still works after the forgeries were refused.
    (final,) = messages(call(url, elicit_params(inputResponses={key: ANSWER}, requestState=state), id=10))
    assert final["result"]["resultType"] == "complete"


def test_client_without_capability_is_not_asked(url):
    (msg,) = messages(call(url, elicit_params(), caps={}))
    assert msg["result"]["resultType"] == "complete" or "error" in msg
    assert msg.get("result", {}).get("resultType") != "input_required"


def test_legacy_client_gets_server_request_over_sse_and_answers_it(url):
    s = LegacySession(url, caps=ELICIT_CAPS)
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "trigger-elicitation-request", "arguments": {}}}
    got: list[dict] = []
    with s.client.stream("POST", url, content=json.dumps(body), headers=s.headers()) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for m in iter_sse(r):
            got.append(m)
            if m.get("method") == "elicitation/create":
                answer = {"jsonrpc": "2.0", "id": m["id"], "result": ANSWER}
                assert s.post(answer).status_code == 202
            if m.get("id") == 7:
                break
    assert got[0]["method"] == "elicitation/create"
    assert got[-1]["id"] == 7
    assert "Ada Lovelace" in json.dumps(got[-1]["result"])


def test_legacy_stream_resumes_from_last_event_id(url):
    s = LegacySession(url)
    body = {
        "jsonrpc": "2.0",
        "id": 11,
        "method": "tools/call",
        "params": {"name": "trigger-long-running-operation", "arguments": {"duration": 1.5, "steps": 3}, "_meta": {"progressToken": "p"}},
    }
    first_id = None
    with s.client.stream("POST", url, content=json.dumps(body), headers=s.headers()) as r:
        for line in r.iter_lines():
            if line.startswith("id:"):
                first_id = line[3:].strip()
                break
    assert first_id, "no event id on the legacy SSE stream"
    # The client dropped the stream after one event; the request goes on.
    # A GET stream stays open; read until the final response arrives.
    msgs: list[dict] = []
    with s.client.stream("GET", url, headers={**s.headers(), "Accept": "text/event-stream", "Last-Event-ID": first_id}) as r:
        for m in iter_sse(r):
            msgs.append(m)
            if m.get("id") == 11:
                break
    progress = [m for m in msgs if m.get("method") == "notifications/progress"]
    assert [p["params"]["progress"] for p in progress] == [2, 3]
    assert msgs[-1]["id"] == 11 and "result" in msgs[-1]


def test_legacy_get_stream_receives_list_changed(url, berth_factory):
    # A fresh berth: toggling subscriber updates changes server state.
    b = berth_factory(SERVER)
    s = LegacySession(b.url, caps={})
    got: list[dict] = []
    done = threading.Event()

    def listen():
        with s.client.stream("GET", b.url, headers={**s.headers(), "Accept": "text/event-stream"}, timeout=20) as r:
            for m in iter_sse(r):
                got.append(m)
                if m.get("method") == "notifications/resources/updated" or done.is_set():
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    sub = s.request("resources/subscribe", {"uri": "demo://resource/static/document/architecture.md"})
    assert sub.status_code == 200
    assert s.request("tools/call", {"name": "toggle-subscriber-updates", "arguments": {}}).status_code == 200
    t.join(15)
    done.set()
    assert any(m.get("method") == "notifications/resources/updated" for m in got), got
