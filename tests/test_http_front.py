"""The HTTP front as the wire sees it: header rules of both eras, status
codes, error codes, size and nesting limits, Origin/Host checks, sessions."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from mcp_http import ACCEPT, MODERN, LegacySession, messages, modern_body, modern_call, modern_headers

SERVER = "everything"


@pytest.fixture(scope="module")
def url(shared_berth):
    return shared_berth(SERVER).url


def post(url, body, headers, **kw):
    return httpx.post(url, content=body if isinstance(body, (bytes, str)) else json.dumps(body), headers=headers, timeout=30, **kw)


def error_of(resp):
    msgs = messages(resp)
    assert len(msgs) == 1, resp.text
    return msgs[0]["error"]


class TestModernHeaders:
    def test_call_with_matching_headers_works_and_has_result_type(self, url):
        r = modern_call(url, "tools/call", {"name": "echo", "arguments": {"message": "héllo ✓ 世界"}})
        assert r.status_code == 200
        (msg,) = messages(r)
        assert msg["id"] == 1
        assert msg["result"]["resultType"] == "complete"
        assert msg["result"]["content"][0]["text"].endswith("héllo ✓ 世界")

    def test_list_results_carry_cache_hints(self, url):
        (msg,) = messages(modern_call(url, "tools/list"))
        assert msg["result"]["ttlMs"] >= 0 and msg["result"]["cacheScope"] in ("public", "private")

    @pytest.mark.parametrize(
        "mutate, fragment",
        [
            (lambda h: h.pop("Mcp-Method"), "Mcp-Method"),
            (lambda h: h.__setitem__("Mcp-Method", "tools/list"), "Mcp-Method"),
            (lambda h: h.pop("Mcp-Name"), "Mcp-Name"),
            (lambda h: h.__setitem__("Mcp-Name", "add"), "Mcp-Name"),
        ],
    )
    def test_header_body_mismatch_is_400_32020(self, url, mutate, fragment):
        body = modern_body("tools/call", {"name": "echo", "arguments": {"message": "x"}})
        h = modern_headers(body)
        mutate(h)
        r = post(url, body, h)
        assert r.status_code == 400
        err = error_of(r)
        assert err["code"] == -32020 and fragment in err["message"]

    def test_base64_mcp_name_is_decoded(self, url):
        body = modern_body("tools/call", {"name": "echo", "arguments": {"message": "x"}})
        h = modern_headers(body, **{"Mcp-Name": "=?base64?" + base64.b64encode(b"echo").decode() + "?="})
        assert post(url, body, h).status_code == 200

    def test_version_header_must_match_meta(self, url):
        body = modern_body("tools/list")
        body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2025-11-25"
        r = post(url, body, modern_headers(body))
        assert r.status_code == 400 and error_of(r)["code"] == -32020

    def test_missing_version_header_with_modern_body_is_mismatch(self, url):
        body = modern_body("tools/list")
        h = modern_headers(body)
        del h["MCP-Protocol-Version"]
        r = post(url, body, h)
        assert r.status_code == 400 and error_of(r)["code"] == -32020

    def test_unsupported_version_lists_supported(self, url):
        body = modern_body("tools/list")
        body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
        r = post(url, body, modern_headers(body, **{"MCP-Protocol-Version": "2099-01-01"}))
        assert r.status_code == 400
        err = error_of(r)
        assert err["code"] == -32022
        assert err["data"]["requested"] == "2099-01-01" and MODERN in err["data"]["supported"]

    def test_missing_client_capabilities_is_invalid_params(self, url):
        body = modern_body("tools/list")
        del body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"]
        r = post(url, body, modern_headers(body))
        assert r.status_code == 400 and error_of(r)["code"] == -32602

    def test_unknown_method_is_404_32601(self, url):
        r = modern_call(url, "no/such/method")
        assert r.status_code == 404 and error_of(r)["code"] == -32601

    def test_removed_legacy_methods_are_404(self, url):
        r = modern_call(url, "logging/setLevel", {"level": "info"})
        assert r.status_code == 404 and error_of(r)["code"] == -32601

    def test_discover_describes_the_server(self, url):
        (msg,) = messages(modern_call(url, "server/discover"))
        res = msg["result"]
        assert res["supportedVersions"] == [MODERN]
        assert res["resultType"] == "complete" and "ttlMs" in res and "cacheScope" in res
        assert res["_meta"]["io.modelcontextprotocol/serverInfo"]["name"]
        assert "tools" in res["capabilities"]

    def test_notification_is_accepted(self, url):
        body = {"jsonrpc": "2.0", "method": "notifications/whatever", "params": {}}
        r = post(url, body, {"Content-Type": "application/json", "Accept": ACCEPT, "MCP-Protocol-Version": MODERN})
        assert r.status_code == 202 and r.content == b""

    def test_get_and_delete_without_session_are_405(self, url):
        assert httpx.get(url, headers={"Accept": "text/event-stream"}).status_code == 405
        assert httpx.delete(url).status_code == 405

    def test_progress_streams_over_sse(self, url):
        body = modern_body(
            "tools/call",
            {"name": "trigger-long-running-operation", "arguments": {"duration": 1, "steps": 3}},
            progressToken="tok-1",
        )
        r = post(url, body, modern_headers(body))
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers.get("x-accel-buffering") == "no"
        msgs = messages(r)
        progress = [m for m in msgs if m.get("method") == "notifications/progress"]
        assert len(progress) == 3 and all(p["params"]["progressToken"] == "tok-1" for p in progress)
        assert msgs[-1]["id"] == 1 and msgs[-1]["result"]["resultType"] == "complete"


class TestBadInput:
    H = {"Content-Type": "application/json", "Accept": ACCEPT, "MCP-Protocol-Version": MODERN}

    def test_malformed_json_is_parse_error(self, url):
        r = post(url, b'{"jsonrpc": "2.0", "id": 1, "method": ', self.H)
        assert r.status_code == 400 and error_of(r)["code"] == -32700

    @pytest.mark.parametrize(
        "body",
        ['{"id":1,"method":"tools/list"}', '{"jsonrpc":"2.0","id":null,"method":"x"}', '"just a string"', '{"jsonrpc":"2.0","id":{},"method":"x"}'],
    )
    def test_invalid_request_is_32600(self, url, body):
        r = post(url, body, self.H)
        assert r.status_code == 400 and error_of(r)["code"] == -32600

    def test_non_utf8_is_parse_error(self, url):
        r = post(url, b'{"jsonrpc":"2.0","id":1,"method":"\xff"}', self.H)
        assert r.status_code == 400 and error_of(r)["code"] == -32700

    def test_oversized_body_is_413(self, url):
        body = modern_body("tools/call", {"name": "echo", "arguments": {"message": "x" * (5 << 20)}})
        r = post(url, body, modern_headers(body))
        assert r.status_code == 413

    def test_deep_nesting_is_refused(self, url):
        r = post(url, "[" * 10000 + "]" * 10000, self.H)
        assert r.status_code == 400 and error_of(r)["code"] == -32600

    def test_wrong_content_type_is_415(self, url):
        body = modern_body("tools/list")
        h = modern_headers(body, **{"Content-Type": "text/plain"})
        assert post(url, body, h).status_code == 415

    def test_server_survives_all_of_it(self, url):
        (msg,) = messages(modern_call(url, "tools/call", {"name": "echo", "arguments": {"message": "still here"}}))
        assert "still here" in msg["result"]["content"][0]["text"]


class TestOriginAndHost:
    def test_foreign_origin_is_403(self, url):
        body = modern_body("tools/list")
        r = post(url, body, modern_headers(body, Origin="https://evil.example"))
        assert r.status_code == 403

    def test_local_origin_is_allowed(self, url):
        body = modern_body("tools/list")
        port = url.split(":")[2].split("/")[0]
        assert post(url, body, modern_headers(body, Origin=f"http://localhost:{port}")).status_code == 200

    def test_rebound_host_is_403(self, url):
        body = modern_body("tools/list")
        r = post(url, body, modern_headers(body, Host="attacker.example"))
        assert r.status_code == 403

    def test_allowed_origin_flag(self, berth_factory):
        b = berth_factory(SERVER, "--allowed-origin", "https://app.example")
        body = modern_body("tools/list")
        assert post(b.url, body, modern_headers(body, Origin="https://app.example")).status_code == 200
        assert post(b.url, body, modern_headers(body, Origin="https://other.example")).status_code == 403


class TestLegacySessions:
    def test_initialize_mints_a_128_bit_session(self, url):
        s = LegacySession(url)
        assert len(s.id) >= 32 and int(s.id, 16) >= 0
        assert s.init["protocolVersion"] == "2025-11-25"
        assert s.init["serverInfo"]["name"]
        assert LegacySession(url).id != s.id

    def test_version_negotiation(self, url):
        assert LegacySession(url, "2025-06-18").init["protocolVersion"] == "2025-06-18"

    def test_request_without_session_is_400(self, url):
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        r = post(url, body, {"Content-Type": "application/json", "Accept": ACCEPT, "MCP-Protocol-Version": "2025-11-25"})
        assert r.status_code == 400

    def test_unversioned_request_is_treated_as_2025_03_26(self, url):
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        r = post(url, body, {"Content-Type": "application/json", "Accept": ACCEPT})
        assert r.status_code == 400 and "Mcp-Session-Id" in error_of(r)["message"]

    def test_unknown_session_is_404(self, url):
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        h = {"Content-Type": "application/json", "Accept": ACCEPT, "Mcp-Session-Id": "00" * 16, "MCP-Protocol-Version": "2025-11-25"}
        assert post(url, body, h).status_code == 404

    def test_delete_then_reuse_is_404(self, url):
        s = LegacySession(url)
        assert s.request("tools/list").status_code == 200
        assert s.client.delete(url, headers=s.headers()).status_code in (200, 204)
        assert s.request("tools/list").status_code == 404
        assert s.client.delete(url, headers=s.headers()).status_code == 404

    def test_calls_in_session(self, url):
        s = LegacySession(url)
        (msg,) = messages(s.request("tools/call", {"name": "echo", "arguments": {"message": "legacy ✓"}}))
        assert msg["result"]["content"][0]["text"].endswith("legacy ✓")
        assert "resultType" not in msg["result"] or msg["result"]["resultType"] == "complete"

    def test_modern_version_header_inside_session_is_400(self, url):
        s = LegacySession(url)
        r = s.post({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}, **{"MCP-Protocol-Version": MODERN})
        assert r.status_code == 400

    def test_batches_only_in_2025_03_26(self, url):
        old = LegacySession(url, "2025-03-26")
        batch = [
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "a"}}},
            {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}},
            {"jsonrpc": "2.0", "id": 2, "method": "ping"},
        ]
        r = old.post(batch)
        assert r.status_code == 200
        got = {m["id"]: m for m in r.json()}
        assert set(got) == {1, 2} and got[1]["result"]["content"][0]["text"].endswith("a")
        new = LegacySession(url, "2025-11-25")
        assert new.post(batch).status_code == 400

    def test_get_stream_needs_event_stream_accept(self, url):
        s = LegacySession(url)
        r = s.client.get(url, headers={**s.headers(), "Accept": "application/json"})
        assert r.status_code == 406
