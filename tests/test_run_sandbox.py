"""`berth run`'s default sandbox is native. A package-runner line (`npx -y
PKG@VER`, `uvx PKG==VER`) cannot fetch anything inside it, so berth installs
the package on the host (into BERTH_ARTIFACTS) and runs it in the sandbox:
the README's quick-start line works unchanged and unconfined by nothing.
Where the native sandbox cannot run, the error says what is missing and
how to run unconfined instead.

Needs root (the test machines run as root), like the other native suites."""

from __future__ import annotations

import json
import os
import subprocess

import anyio
import pytest
from mcp.client import Client

from conftest import start_berth
from test_sandbox_escape import berth_cgroups, unprivileged_bins  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the native sandbox tests need root")

NPX = ["npx", "-y", "@modelcontextprotocol/server-everything@2026.8.31"]
UVX = ["uvx", "mcp-server-time==2026.10.19", "--local-timezone", "UTC"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


def start_default(line: list[str], artifacts):
    """berth run with no --sandbox; the instance cgroups it made."""
    before = set(berth_cgroups())
    b = start_berth(line, env={"BERTH_ARTIFACTS": str(artifacts)}, plain=False)
    return b, before


async def call(url: str, mode: str, tool: str, args: dict) -> str:
    async with Client(url, mode=mode) as c:
        res = await c.call_tool(tool, args)
        assert not res.is_error, res
        return " ".join(getattr(x, "text", "") for x in res.content)


def test_an_npx_line_is_installed_on_the_host_and_runs_in_the_native_sandbox(artifacts):
    b, before = start_default(NPX, artifacts)
    try:
        for mode in ["legacy", "2026-07-28"]:
            assert "sandboxed" in anyio.run(call, b.url, mode, "echo", {"message": "sandboxed"})
        assert set(berth_cgroups()) - before, "the server has no instance cgroup: it is not in the native sandbox"
        installed = [d for d in artifacts.iterdir() if not d.name.startswith(".")]
        assert len(installed) == 1 and (installed[0] / "node_modules" / "@modelcontextprotocol").is_dir()
        env = json.loads(anyio.run(call, b.url, "legacy", "get-env", {}))
        assert "BERTH_SANDBOX_INIT" not in env and "BERTH_ARTIFACTS" not in env, env
    finally:
        b.stop()
    # A second start reuses the installed package.
    again, _ = start_default(NPX, artifacts)
    try:
        assert "again" in anyio.run(call, again.url, "2026-07-28", "echo", {"message": "again"})
        assert len([d for d in artifacts.iterdir() if not d.name.startswith(".")]) == 1
    finally:
        again.stop()


def test_a_uvx_line_too(artifacts):
    b, before = start_default(UVX, artifacts)
    try:
        text = anyio.run(call, b.url, "2026-07-28", "get_current_time", {"timezone": "Asia/Tokyo"})
        assert "Asia/Tokyo" in text
        assert set(berth_cgroups()) - before
    finally:
        b.stop()


def test_where_the_default_cannot_run_the_error_says_what_is_missing(unprivileged_bins):
    # A user with no delegated cgroup (berth-12345 exists nowhere).
    res = subprocess.run(
        [unprivileged_bins["berth"], "run", "--listen", "127.0.0.1:0", "--", unprivileged_bins["server"]],
        user=12345,
        group=12345,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode != 0, res
    assert "berth-12345" in res.stderr and "--sandbox none" in res.stderr, res.stderr
