"""End-to-end harness: runs the built `berth` binary in front of real MCP servers.

Paths come from the environment that scripts/test.sh sets up:
BERTH_BIN (the berth binary), BERTH_TESTSERVER (the first-party test server),
BERTH_PEERS (the cache holding node_modules and the Python venv).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PEERS = Path(os.environ.get("BERTH_PEERS", REPO / ".cache" / "test-peers"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
BERTH_BIN = os.environ.get("BERTH_BIN", str(TARGET / "debug" / "berth"))
TESTSERVER = os.environ.get("BERTH_TESTSERVER", str(TARGET / "debug" / "berth-testserver"))
NODE_MODULES = PEERS / "node" / "node_modules"
VENV_BIN = PEERS / "venv" / "bin"

SERVERS = {
    "everything": ["node", str(NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"), "stdio"],
    "time": [str(VENV_BIN / "mcp-server-time"), "--local-timezone", "UTC"],
    "first-party": [TESTSERVER],
    # The README's quick start, exactly as a user types it (version pinned).
    "everything-npx": ["npx", "-y", "@modelcontextprotocol/server-everything@2026.8.31"],
    "modern": [str(VENV_BIN / "python"), str(REPO / "tests" / "servers" / "modern_server.py")],
}


@dataclass
class Berth:
    """A running `berth run` process and what it printed."""

    proc: subprocess.Popen
    url: str
    log_lines: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.url.rsplit("/mcp", 1)[0]

    def logs(self) -> str:
        return "\n".join(self.log_lines)

    def stop(self, grace: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def start_berth(
    server: list[str],
    *extra: str,
    env: dict[str, str] | None = None,
    user: int | None = None,
    berth: str = BERTH_BIN,
    plain: bool = True,
) -> Berth:
    """Starts berth on a free loopback port and waits for its URL line;
    `user`: as that uid (and gid), without supplementary groups. `plain`:
    `--sandbox none` unless `extra` names a sandbox (berth run's default is
    native; most suites test the bridge with servers run from host paths)."""
    if plain and "--sandbox" not in extra:
        extra = ("--sandbox", "none", *extra)
    cmd = [berth, "run", "--listen", "127.0.0.1:0", *extra, "--", *server]
    as_user = {"user": user, "group": user, "extra_groups": []} if user is not None else {}
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BERTH_LOG": "info,berth_runtime=debug", "NO_COLOR": "1", **(env or {})},
        **as_user,
    )
    line = proc.stdout.readline()
    m = re.search(r"(http://\S+/mcp)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"berth did not start: {line!r} {proc.stderr.read()}")
    b = Berth(proc=proc, url=m.group(1))
    follow(proc, b.log_lines)
    return b


def follow(proc: subprocess.Popen, lines: list[str]) -> None:
    """Collects a process's remaining output lines into `lines` as they come."""

    def drain(stream):
        for l in stream:
            lines.append(l.rstrip("\n"))

    for stream in (proc.stderr, proc.stdout):
        if stream is not None:
            threading.Thread(target=drain, args=(stream,), daemon=True).start()


@pytest.fixture
def berth_factory():
    started: list[Berth] = []

    def make(server: str | list[str], *extra: str, env: dict[str, str] | None = None, **kw) -> Berth:
        cmd = SERVERS[server] if isinstance(server, str) else server
        b = start_berth(cmd, *extra, env=env, **kw)
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture(scope="module")
def shared_berth():
    """One berth per (module, server) for read-only checks, to keep the suite fast."""
    cache: dict[str, Berth] = {}

    def get(server: str) -> Berth:
        if server not in cache:
            cache[server] = start_berth(SERVERS[server])
        return cache[server]

    yield get
    for b in cache.values():
        b.stop()


def wait_for(pred, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()
