"""Static secrets: set through the admin API, sealed at rest, injected only
into the connector's sandbox; never returned, never logged, never on disk in
the clear."""

from __future__ import annotations

import json

import httpx
import pytest

from test_catalog import call, first_party_manifest, post_manifest, serve

pytestmark = pytest.mark.anyio
CANARY = "canary-secret-5b2e9d1f"
NAME = "dev.berth.test/secretive"


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_a_secret_reaches_only_the_sandbox(tmp_path):
    s = serve(tmp_path, "--no-examples")
    try:
        doc = first_party_manifest(name=NAME)
        doc["packages"][0]["environmentVariables"] = [
            {"name": "BERTH_TEST_TOKEN", "isSecret": True, "isRequired": True, "description": "the upstream token"}
        ]
        assert post_manifest(s, doc).status_code == 201
        secrets = f"{s.base}/admin/v1/connectors/{NAME}/secrets"
        # Without its secret the connector says what is missing and how to set it.
        first = httpx.post(s.mcp(NAME), json={}, headers={"Content-Type": "application/json"})
        assert first.status_code == 503 and "BERTH_TEST_TOKEN" in first.text and "/secrets/" in first.text
        # Only declared variables may be set (no LD_PRELOAD through the admin API).
        undeclared = httpx.put(f"{secrets}/LD_PRELOAD", json={"value": "/tmp/x.so"}, headers=s.admin())
        assert undeclared.status_code == 422
        assert httpx.put(f"{secrets}/BERTH_TEST_TOKEN", json={"value": CANARY}).status_code == 401
        assert httpx.put(f"{secrets}/BERTH_TEST_TOKEN", json={"value": CANARY}, headers=s.admin()).status_code == 204
        _, text, _ = await call(s.mcp(NAME), "2026-07-28", "whoami", {})
        assert json.loads(text)["token"] == CANARY
        # A new value restarts the running server, which then sees it.
        assert httpx.put(f"{secrets}/BERTH_TEST_TOKEN", json={"value": CANARY + "-2"}, headers=s.admin()).status_code == 204
        _, text, _ = await call(s.mcp(NAME), "legacy", "whoami", {})
        assert json.loads(text)["token"] == CANARY + "-2"
        listed = httpx.get(secrets, headers=s.admin())
        assert [x["name"] for x in listed.json()] == ["BERTH_TEST_TOKEN"]
        readback = httpx.get(f"{secrets}/BERTH_TEST_TOKEN", headers=s.admin())
        assert readback.status_code == 405
        answers = [listed.text, readback.text, httpx.get(f"{s.base}/v0/servers").text,
                   httpx.get(f"{s.base}/admin/v1/connectors/{NAME}", headers=s.admin()).text]
        assert not any(CANARY in a for a in answers)
        assert httpx.delete(f"{secrets}/BERTH_TEST_TOKEN", headers=s.admin()).status_code == 204
        gone = httpx.post(s.mcp(NAME), json={}, headers={"Content-Type": "application/json"})
        assert gone.status_code == 503
    finally:
        s.stop()
    assert CANARY not in "\n".join(s.log_lines)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert CANARY.encode() not in f.read_bytes(), f"{f} holds the secret in the clear"
