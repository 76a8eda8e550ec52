"""The operator CLI (`berth connectors|instances|audit|tokens|providers`)
against a live berth: tables for people, `--json` for scripts. Every check
compares what the CLI prints, or what it changed, with what the admin API
says, for data the test made through the API."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import httpx
import pytest

from conftest import BERTH_BIN, wait_for
from mcp_http import messages, modern_body, modern_headers
from test_catalog import first_party_manifest, post_manifest, serve

ONE, TWO = "dev.berth.test/cli-one", "dev.berth.test/cli-two"


@pytest.fixture(scope="module")
def berth(tmp_path_factory):
    s = serve(tmp_path_factory.mktemp("cli"), "--no-examples", "--auth", "oauth", "--dev-user", "alice:pw-3c1d")
    for name, version in ((ONE, "1.0.0"), (ONE, "1.1.0"), (TWO, "2.0.0")):
        assert post_manifest(s, first_party_manifest(name=name, version=version)).status_code == 201
    s.pat = httpx.post(f"{s.base}/admin/v1/tokens", json={"user": "alice", "name": "calls"}, headers=s.admin()).json()
    yield s
    s.stop()


def cli(berth, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "BERTH_URL": berth.base, "BERTH_DATA_DIR": str(berth.data_dir), "RUST_BACKTRACE": "0"}
    env.pop("BERTH_ADMIN_TOKEN", None)
    run = subprocess.run([BERTH_BIN, *args], capture_output=True, text=True, timeout=60, env=env)
    if check:
        assert run.returncode == 0, run.stderr
    return run


def api(berth, path: str, **params):
    res = httpx.get(f"{berth.base}/admin/v1/{path}", params=params, headers=berth.admin())
    assert res.status_code == 200, res.text
    return res.json()


def echo(berth, name: str, text: str) -> None:
    assert tool(berth, name, "echo", {"text": text}) == text


def tool(berth, name: str, tool_name: str, arguments: dict) -> str:
    body = modern_body("tools/call", {"name": tool_name, "arguments": arguments})
    headers = modern_headers(body, Authorization=f"Bearer {berth.pat['token']}")
    res = httpx.post(berth.mcp(name), json=body, headers=headers, timeout=60)
    return messages(res)[-1]["result"]["content"][0]["text"]


USAGE = ("cpu_seconds", "memory_bytes")


def without_usage(pools: list[dict]) -> list[dict]:
    """The listing with the readings that change from one call to the next left out."""
    return [{**p, "instances": [{k: v for k, v in i.items() if k not in USAGE} for i in p["instances"]]} for p in pools]


def rows(out: str) -> list[list[str]]:
    """A table's rows (header dropped), split on runs of spaces."""
    return [line.split() for line in out.splitlines()[1:]]


def test_connectors_ls_shows_each_latest_version(berth):
    latest = {e["server"]["name"]: e for e in api(berth, "connectors", version="latest")["servers"]}
    table = cli(berth, "connectors", "ls").stdout
    assert table.splitlines()[0].split() == ["NAME", "LATEST", "STATUS", "PUBLISHED", "PATH"]
    shown = {r[0]: r for r in rows(table)}
    assert set(shown) == set(latest) == {ONE, TWO}
    assert shown[ONE][1] == "1.1.0" and shown[TWO][1] == "2.0.0"
    assert shown[ONE][4] == latest[ONE]["_meta"]["dev.berth/hosted"]["path"]
    as_json = json.loads(cli(berth, "connectors", "ls", "--json").stdout)
    assert sorted(as_json, key=lambda e: e["server"]["name"]) == [latest[ONE], latest[TWO]]


def test_connectors_versions_deprecate_and_yank(berth):
    table = cli(berth, "connectors", "versions", ONE).stdout
    assert [(r[0], r[1]) for r in rows(table)] == [("1.0.0", "active"), ("1.1.0", "active")]
    assert rows(table)[1][2] == "yes", "1.1.0 is latest"
    listed = json.loads(cli(berth, "connectors", "versions", ONE, "--json").stdout)
    assert listed == api(berth, f"connectors/{ONE}/versions")

    out = cli(berth, "connectors", "deprecate", ONE, "1.1.0").stdout
    assert out.strip() == f"{ONE} 1.1.0: deprecated"
    official = "io.modelcontextprotocol.registry/official"
    assert api(berth, f"connectors/{ONE}/versions/1.1.0")["_meta"][official]["status"] == "deprecated"
    assert api(berth, f"connectors/{ONE}/versions/latest")["server"]["version"] == "1.0.0", "latest moved back"

    yanked = json.loads(cli(berth, "connectors", "yank", ONE, "1.0.0", "--json").stdout)
    assert yanked["_meta"][official]["status"] == "deleted"
    assert api(berth, f"connectors/{ONE}/versions/1.0.0")["_meta"][official]["status"] == "deleted"
    body = modern_body("tools/list")
    gone = httpx.post(f"{berth.mcp(ONE)}@1.0.0", json=body, headers=modern_headers(body, Authorization=f"Bearer {berth.pat['token']}"))
    assert gone.status_code == 410, gone.text

    cli(berth, "connectors", "restore", ONE, "1.0.0")
    cli(berth, "connectors", "restore", ONE, "1.1.0")
    assert {e["_meta"][official]["status"] for e in api(berth, f"connectors/{ONE}/versions")} == {"active"}


def test_errors_exit_non_zero_with_the_apis_reason(berth):
    run = cli(berth, "connectors", "versions", "dev.berth.test/nothing-here", check=False)
    assert run.returncode != 0 and "404" in run.stderr and "dev.berth.test/nothing-here" in run.stderr
    wrong = subprocess.run([BERTH_BIN, "instances", "ls", "--url", berth.base, "--token", "not-the-token"],
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode != 0 and "401" in wrong.stderr


def instances(berth, name: str) -> list[dict]:
    return [i for p in api(berth, "instances") if p["connector"].startswith(name) for i in p["instances"]]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def sleep_call(berth, name: str, ms: int, out: list) -> threading.Thread:
    """A `sleep` tool call in the background; its answer lands in `out`."""
    def run():
        body = modern_body("tools/call", {"name": "sleep", "arguments": {"ms": ms}})
        headers = modern_headers(body, Authorization=f"Bearer {berth.pat['token']}")
        try:
            out.append(messages(httpx.post(berth.mcp(name), json=body, headers=headers, timeout=60))[-1])
        except Exception as e:  # noqa: BLE001 - the test reads what happened
            out.append({"exception": repr(e)})
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_instances_ls_drain_and_kill(berth):
    echo(berth, TWO, "warm")
    [inst] = instances(berth, TWO)
    table = cli(berth, "instances", "ls").stdout
    assert table.splitlines()[0].split() == ["ID", "CONNECTOR", "POOL", "PID", "STATE", "IN-FLIGHT", "CPU", "MEMORY"]
    [row] = [r for r in rows(table) if r[0] == inst["id"]]
    assert row[:6] == [inst["id"], f"{TWO}@2.0.0", "shared", str(inst["pid"]), "ready", "0"], row
    assert row[6].endswith("s") and row[7].endswith("MiB"), row
    listed = json.loads(cli(berth, "instances", "ls", "--json").stdout)
    assert without_usage(listed) == without_usage(api(berth, "instances"))

    # Draining: the call in flight finishes; the instance then leaves the
    # pool and its server stops; the next call gets a new instance.
    slow: list = []
    call = sleep_call(berth, TWO, 1500, slow)
    assert wait_for(lambda: instances(berth, TWO)[0]["in_flight"] == 1)
    assert cli(berth, "instances", "drain", inst["id"]).stdout.strip() == f"instance {inst['id']}: draining"
    assert [(i["id"], i["state"]) for i in instances(berth, TWO)] == [(inst["id"], "draining")]
    call.join(30)
    assert slow[0]["result"]["content"][0]["text"] == "slept 1500 ms", slow
    assert wait_for(lambda: inst["id"] not in [i["id"] for i in instances(berth, TWO)])
    assert wait_for(lambda: not alive(inst["pid"]), timeout=15), "the drained server stopped"
    echo(berth, TWO, "again")
    [fresh] = instances(berth, TWO)
    assert fresh["id"] != inst["id"]

    # Killing: at once, failing the call in flight.
    stuck: list = []
    call = sleep_call(berth, TWO, 30_000, stuck)
    assert wait_for(lambda: instances(berth, TWO)[0]["in_flight"] == 1)
    started = time.monotonic()
    killed = json.loads(cli(berth, "instances", "kill", fresh["id"], "--json").stdout)
    assert killed == {"id": fresh["id"], "state": "killed"}
    call.join(10)
    assert time.monotonic() - started < 5 and "error" in stuck[0], stuck
    assert wait_for(lambda: not alive(fresh["pid"]), timeout=5)
    assert fresh["id"] not in [i["id"] for i in instances(berth, TWO)]
    assert cli(berth, "instances", "kill", fresh["id"], check=False).returncode != 0


def test_audit_tail_and_follow(berth):
    echo(berth, TWO, "audited")
    assert wait_for(lambda: api(berth, "audit", connector=TWO))
    recorded = api(berth, "audit", connector=TWO)
    lines = [json.loads(l) for l in cli(berth, "audit", "tail", "--connector", TWO, "--json").stdout.splitlines()]
    assert lines == recorded[::-1], "oldest first, as the API has them"
    human = cli(berth, "audit", "tail", "--connector", TWO, "-n", "1").stdout.splitlines()
    assert len(human) == 1 and human[0].split()[1:6] == ["alice", recorded[0]["connector"], "echo", "allow", "ok"]

    follow = subprocess.Popen(
        [BERTH_BIN, "audit", "tail", "--follow", "--json", "-n", "1", "--interval", "200ms", "--connector", TWO,
         "--url", berth.base, "--data-dir", str(berth.data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = json.loads(follow.stdout.readline())
        assert first == recorded[0]
        before = len(recorded)
        echo(berth, TWO, "followed")
        newest = json.loads(follow.stdout.readline())
        assert wait_for(lambda: len(api(berth, "audit", connector=TWO)) == before + 1)
        assert newest == api(berth, "audit", connector=TWO, limit=1)[0]
    finally:
        follow.kill()
        follow.wait(5)

    export = cli(berth, "audit", "export", "--connector", TWO).stdout
    assert [json.loads(l) for l in export.splitlines()] == api(berth, "audit", connector=TWO)[::-1]


def test_tokens_ls_create_and_revoke(berth):
    listed = api(berth, "tokens")["tokens"]
    as_json = json.loads(cli(berth, "tokens", "ls", "--json").stdout)
    assert as_json == listed and berth.pat["token"] not in json.dumps(as_json)
    table = cli(berth, "tokens", "ls", "--user", "alice").stdout
    assert [berth.pat["id"], "alice", "calls", "no", "all"] == rows(table)[0][:5]

    made = json.loads(cli(berth, "tokens", "create", "--user", "bob", "--name", "deploy", "--admin",
                          "--connector", TWO, "--expires-in", "2h", "--json").stdout)
    stored = {t["id"]: t for t in api(berth, "tokens", user="bob")["tokens"]}
    assert stored[made["id"]]["connectors"] == [TWO] and stored[made["id"]]["admin"] is True
    assert 7000 < (stored[made["id"]]["expires_ms"] - stored[made["id"]]["created_ms"]) / 1000 <= 7200
    # The token works: it opens the admin API.
    assert httpx.get(f"{berth.base}/admin/v1/instances", headers={"Authorization": f"Bearer {made['token']}"}).status_code == 200
    assert cli(berth, "tokens", "revoke", made["id"]).stdout.strip() == f"token {made['id']}: revoked"
    assert made["id"] not in [t["id"] for t in api(berth, "tokens")["tokens"]]


def test_providers_ls_and_rm(berth):
    provider = {"authorization_endpoint": "https://id.example/authorize", "token_endpoint": "https://id.example/token",
                "client_id": "berth-cli", "client_secret": "provider-secret-77", "scopes": ["repo", "read"]}
    put = httpx.put(f"{berth.base}/admin/v1/providers/example", json=provider, headers=berth.admin())
    assert put.status_code == 204, put.text
    out = cli(berth, "providers", "ls").stdout
    assert ["example", "berth-cli", "https://id.example/authorize", "repo", "read", "sealed"] in rows(out)
    assert out.splitlines()[-1] == f"redirect URI: {api(berth, 'providers')['redirectUri']}"
    as_json = json.loads(cli(berth, "providers", "ls", "--json").stdout)
    assert as_json == api(berth, "providers") and "provider-secret-77" not in json.dumps(as_json)
    cli(berth, "providers", "rm", "example")
    assert api(berth, "providers")["providers"] == []


def test_secrets_ls_set_and_rm(berth):
    name = "dev.berth.test/cli-secret"
    doc = first_party_manifest(name=name)
    doc["packages"][0]["environmentVariables"] = [{"name": "CLI_TOKEN", "isSecret": True, "description": "a token"}]
    assert post_manifest(berth, doc).status_code == 201
    env = {**os.environ, "BERTH_URL": berth.base, "BERTH_DATA_DIR": str(berth.data_dir)}
    set_ = subprocess.run([BERTH_BIN, "secrets", "set", name, "CLI_TOKEN", "--user", "alice"], input="canary-4411\n",
                          capture_output=True, text=True, timeout=60, env=env)
    assert set_.returncode == 0 and set_.stdout.strip() == f"{name} CLI_TOKEN: set", set_.stderr
    listed = api(berth, f"connectors/{name}/secrets")
    assert [(s["name"], s["user"]) for s in listed] == [("CLI_TOKEN", "alice")]
    assert rows(cli(berth, "secrets", "ls", name).stdout)[0][:2] == ["CLI_TOKEN", "alice"]
    as_json = cli(berth, "secrets", "ls", name, "--json").stdout
    assert json.loads(as_json) == listed and "canary-4411" not in as_json
    assert cli(berth, "secrets", "rm", name, "CLI_TOKEN", "--user", "alice").returncode == 0
    assert api(berth, f"connectors/{name}/secrets") == []
    refused = cli(berth, "secrets", "rm", name, "LD_PRELOAD", check=False)
    assert refused.returncode != 0 and "404" in refused.stderr


def test_policies_set_take_effect_and_rm(berth):
    cli(berth, "policies", "set", TWO, "alice", "--deny", "echo", "--allow", "add")
    assert api(berth, f"connectors/{TWO}/policies")["users"]["alice"] == {"default": "allow", "allow": ["add"], "deny": ["echo"]}
    assert ["alice", "allow", "add", "echo"] in rows(cli(berth, "policies", "ls", TWO).stdout)
    assert json.loads(cli(berth, "policies", "ls", TWO, "--json").stdout) == api(berth, f"connectors/{TWO}/policies")
    body = modern_body("tools/call", {"name": "echo", "arguments": {"text": "x"}})
    res = httpx.post(berth.mcp(TWO), json=body, headers=modern_headers(body, Authorization=f"Bearer {berth.pat['token']}"), timeout=60)
    assert "error" in messages(res)[-1], "the policy set through the CLI refuses alice's call"
    cli(berth, "policies", "rm", TWO, "alice")
    assert api(berth, f"connectors/{TWO}/policies")["users"] == {}
    echo(berth, TWO, "allowed again")


def test_tools_ls_and_approve(berth):
    body = modern_body("tools/list")
    httpx.post(berth.mcp(TWO), json=body, headers=modern_headers(body, Authorization=f"Bearer {berth.pat['token']}"), timeout=60)
    pins = api(berth, f"connectors/{TWO}/tools")
    echo_pin = next(p for p in pins if p["tool"] == "echo")
    assert ["echo", "approved", echo_pin["sha256"]] in rows(cli(berth, "tools", "ls", TWO).stdout)
    assert json.loads(cli(berth, "tools", "ls", TWO, "--json").stdout) == pins
    assert cli(berth, "tools", "approve", TWO, "echo", echo_pin["sha256"]).stdout.strip() == f"{TWO} echo: approved"
    wrong = cli(berth, "tools", "approve", TWO, "echo", "0" * 64, check=False)
    assert wrong.returncode != 0 and "404" in wrong.stderr


def test_groups_ls_add_and_rm(berth):
    assert cli(berth, "groups", "add", "ops", "alice").stdout.strip() == "alice: added to ops"
    assert api(berth, "groups") == {"ops": {"alice": ["admin"]}}
    assert ["ops", "alice", "admin"] in rows(cli(berth, "groups", "ls").stdout)
    assert json.loads(cli(berth, "groups", "ls", "--json").stdout) == api(berth, "groups")
    assert cli(berth, "groups", "rm", "ops", "alice").stdout.strip() == "alice: removed from ops"
    assert api(berth, "groups") == {}
    bad = cli(berth, "groups", "add", "x" * 129, "alice", check=False)
    assert bad.returncode != 0 and "400" in bad.stderr


def test_bundles_put_ls_show_and_rm(berth, tmp_path):
    doc = {"members": [{"connector": ONE, "tools": ["echo"], "aliases": {"echo": "say"}}, {"connector": TWO}]}
    path = tmp_path / "team.json"
    path.write_text(json.dumps(doc))
    assert cli(berth, "bundles", "put", "team", str(path)).stdout.strip() == "team: set; served at /mcp/bundle/team"
    assert api(berth, "bundles/team")["members"][0]["aliases"] == {"echo": "say"}
    assert ["team", "/mcp/bundle/team", f"{ONE},{TWO}"] in rows(cli(berth, "bundles", "ls").stdout)
    assert json.loads(cli(berth, "bundles", "ls", "--json").stdout) == api(berth, "bundles")
    assert json.loads(cli(berth, "bundles", "show", "team").stdout) == api(berth, "bundles/team")
    # A bad definition: every problem is printed, and the exit status says so.
    path.write_text(json.dumps({"members": [{"connector": "dev.berth.test/nobody", "prefix": "no spaces"}]}))
    bad = cli(berth, "bundles", "put", "team", str(path), check=False)
    assert bad.returncode != 0 and "invalid bundle" in bad.stderr
    assert "members[0].prefix" in bad.stderr and "dev.berth.test/nobody" in bad.stderr, bad.stderr
    assert api(berth, "bundles/team")["members"][1] == {"connector": TWO, "tools": ["*"]}, "the stored one is kept"
    assert cli(berth, "bundles", "rm", "team").stdout.strip() == "team: removed"
    assert api(berth, "bundles") == []


def test_settings_ls_and_audit_arguments(berth):
    table = rows(cli(berth, "settings").stdout)
    assert ["auditArguments", "false", "now"] in table
    assert ["auth", "oauth", "on", "restart"] in table and ["allowedHosts", "-", "on", "restart"] in table
    assert json.loads(cli(berth, "settings", "--json").stdout) == api(berth, "settings")
    try:
        assert ["auditArguments", "true", "now"] in rows(cli(berth, "settings", "audit-arguments", "on").stdout)
        assert api(berth, "settings")["runtime"]["auditArguments"] is True
    finally:
        assert json.loads(cli(berth, "settings", "audit-arguments", "off", "--json").stdout)["runtime"]["auditArguments"] is False


def test_users_ls_and_offboard(berth):
    token = httpx.post(f"{berth.base}/admin/v1/tokens", json={"user": "gina", "name": "cli"}, headers=berth.admin()).json()
    table = {r[0]: r for r in rows(cli(berth, "users", "ls").stdout)}
    assert table["gina"][1:4] == ["-", "1", "no"], table["gina"]
    assert json.loads(cli(berth, "users", "ls", "--json").stdout) == api(berth, "users")
    out = cli(berth, "users", "offboard", "gina").stdout
    assert out.startswith("gina: offboarded — 1 token(s) revoked"), out
    assert "gina" not in {u["user"] for u in api(berth, "users")}, "nothing of hers is left"
    res = httpx.post(berth.mcp(ONE), json={}, headers={"Authorization": f"Bearer {token['token']}"})
    assert res.status_code == 401


def test_instances_report_the_cpu_time_and_memory_their_sandbox_charges(berth):
    echo(berth, TWO, "warm")
    [before] = instances(berth, TWO)
    assert before["memory_bytes"] > 1 << 20, before  # a running server's charge
    spun = json.loads(tool(berth, TWO, "spin", {"ms": 400}))
    [after] = instances(berth, TWO)
    assert after["id"] == before["id"]
    # The server's own clock says how much CPU it used; the cgroup charged at
    # least that (and a little for the call's I/O).
    assert spun["cpu_s"] > 0.1, spun
    assert after["cpu_seconds"] - before["cpu_seconds"] >= 0.9 * spun["cpu_s"], (before, after, spun)
