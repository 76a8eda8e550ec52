"""The official TypeScript SDK client (legacy era) on the core flow, against
berth in front of each real server."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import NODE_MODULES, REPO

CASES = {
    "everything": ("echo", {"message": "ts ✓ 世界"}, "ts ✓ 世界"),
    "time": ("get_current_time", {"timezone": "Asia/Tokyo"}, "Asia/Tokyo"),
    "first-party": ("echo", {"text": "ts ✓ 世界"}, "ts ✓ 世界"),
    "modern": ("shout", {"text": "ts"}, "TS"),
}


@pytest.mark.parametrize("server", list(CASES))
def test_typescript_client_core_flow(shared_berth, server):
    b = shared_berth(server)
    tool, args, want = CASES[server]
    out = subprocess.run(
        ["node", str(REPO / "tests" / "ts" / "core.mjs"), b.url, tool, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "BERTH_NODE_MODULES": str(NODE_MODULES)},
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["sessionId"] and len(got["sessionId"]) >= 32
    assert tool in got["tools"]
    assert want in json.dumps(got["call"], ensure_ascii=False)
    assert not got["call"].get("isError")
    if "resources" in got and got["resources"]:
        assert got["read"]["contents"][0]["uri"] == got["resources"][0]
