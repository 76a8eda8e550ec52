"""`berth migrate`: real client config formats in, hosted connectors out.
Each migrated server is then called through its new URL with the Python SDK;
the secret moved to the secret store is nowhere in the manifest, the
rewritten config or the logs."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from conftest import BERTH_BIN, TESTSERVER
from test_catalog import call, serve

pytestmark = pytest.mark.anyio
CANARY = "canary-migrated-7c41aa"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = serve(tmp_path_factory.mktemp("migrate"), "--no-examples")
    yield s
    s.stop()


def migrate(s, path, *flags):
    return subprocess.run(
        [BERTH_BIN, "migrate", "--from", str(path), *flags, "--url", s.base, "--data-dir", str(s.data_dir)],
        capture_output=True, text=True, timeout=600,
    )


CLAUDE = {
    "mcpServers": {
        "everything": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-everything@2026.8.31", "stdio"],
            "env": {"EVERYTHING_API_KEY": CANARY, "LOG_LEVEL": "debug"},
        },
        "time": {"command": "uvx", "args": ["mcp-server-time==2026.10.19", "--local-timezone", "UTC"]},
        "already-remote": {"type": "http", "url": "https://mcp.example.com/mcp"},
    },
    "globalShortcut": "Ctrl+Space",
}


async def test_a_claude_desktop_config_moves_to_berth(served, tmp_path):
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(json.dumps(CLAUDE, indent=2))
    res = migrate(served, path, "--publish", "--rewrite")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "kept: already remote" in res.stdout and "1 secret(s)" in res.stdout
    rewritten = json.loads(path.read_text())
    assert rewritten["globalShortcut"] == "Ctrl+Space"
    assert rewritten["mcpServers"]["already-remote"] == CLAUDE["mcpServers"]["already-remote"]
    backups = list(tmp_path.glob("claude_desktop_config.json.berth-backup-*"))
    assert len(backups) == 1 and json.loads(backups[0].read_text()) == CLAUDE
    everything = rewritten["mcpServers"]["everything"]["url"]
    time_url = rewritten["mcpServers"]["time"]["url"]
    assert everything.startswith(served.base + "/mcp/") and time_url.startswith(served.base + "/mcp/")
    for mode in ["legacy", "2026-07-28"]:
        _, text, _ = await call(everything, mode, "echo", {"message": "moved"})
        assert "moved" in text
        _, text, _ = await call(time_url, mode, "get_current_time", {"timezone": "UTC"})
        assert "UTC" in text
    # The secret reached the sandboxed server (its get-env tool shows its environment)…
    _, env_text, _ = await call(everything, "2026-07-28", "get-env", {})
    assert CANARY in env_text and "debug" in env_text
    # …and nothing else: not the manifest, not the rewritten config, not the logs.
    registry = httpx.get(f"{served.base}/v0/servers", params={"limit": 100}).text
    assert "EVERYTHING_API_KEY" in registry and CANARY not in registry
    assert CANARY not in path.read_text()
    assert CANARY not in "\n".join(served.log_lines)
    # Running it again changes nothing.
    path.write_text(json.dumps(CLAUDE, indent=2))
    again = migrate(served, path, "--publish")
    assert again.returncode == 0 and again.stdout.count("already migrated") == 2, again.stdout


async def test_cursor_and_vscode_configs_migrate_too(served, tmp_path):
    cursor = tmp_path / "cursor.json"
    cursor.write_text(json.dumps({"mcpServers": {"tests": {"command": TESTSERVER, "args": []}, "web": {"url": "https://x.example/mcp"}}}))
    vscode = tmp_path / "vscode.json"
    vscode.write_text(json.dumps({
        "inputs": [{"type": "promptString", "id": "k", "password": True}],
        "servers": {"memory": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"],
                               "env": {"MEMORY_FILE_PATH": "/tmp/m.jsonl"}}},
    }))
    for path, key in [(cursor, "tests"), (vscode, "memory")]:
        res = migrate(served, path, "--publish", "--rewrite")
        assert res.returncode == 0, res.stdout + res.stderr
        doc = json.loads(path.read_text())
        entry = (doc.get("mcpServers") or doc["servers"])[key]
        assert entry["type"] == "http"
        tools, _, _ = await call(entry["url"], "2026-07-28", "echo" if key == "tests" else "read_graph", {"text": "x"} if key == "tests" else {})
        assert tools
    assert json.loads(vscode.read_text())["inputs"][0]["id"] == "k"
    # The unpinned npm package was pinned to a real version.
    memory = [s for s in httpx.get(f"{served.base}/v0/servers", params={"search": "memory"}).json()["servers"]]
    assert memory and memory[0]["server"]["packages"][0]["version"][0].isdigit()


def test_dry_run_changes_nothing_and_bad_configs_say_why(served, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(CLAUDE))
    res = subprocess.run([BERTH_BIN, "migrate", "--from", str(path), "--dry-run"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "would publish" in res.stdout and CANARY not in res.stdout
    assert json.loads(path.read_text()) == CLAUDE
    path.write_text("{}")
    bad = subprocess.run([BERTH_BIN, "migrate", "--from", str(path), "--dry-run"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "mcpServers" in bad.stderr
