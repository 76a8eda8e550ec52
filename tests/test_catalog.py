"""`berth serve` and `berth publish` end to end: real manifests of public
npm and PyPI servers and the first-party one, published, materialized,
launched in the native sandbox and called with the official Python SDK in
both eras; the registry API read back against the official schema; bad
manifests, republishing, restarts and withdrawals."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mcp.client import Client

from conftest import BERTH_BIN, REPO, TESTSERVER, Berth, follow

CONNECTORS = REPO / "connectors"
OFFICIAL_SCHEMA = REPO.parent / "shared" / "spec" / "server.schema-2025-12-11.json"
MODES = ["legacy", "2026-07-28"]

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@dataclass
class Served(Berth):
    """A running `berth serve`; `url` is its base URL plus `/mcp`."""

    data_dir: Path = Path()

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def mcp(self, name: str) -> str:
        return f"{self.base}/mcp/{name}"

    def stop(self) -> int:
        return super().stop(grace=30)


def serve(data_dir: Path, *extra: str, listen: str = "127.0.0.1:0") -> Served:
    proc = subprocess.Popen(
        [BERTH_BIN, "serve", "--listen", listen, "--data-dir", str(data_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BERTH_LOG": "info", "NO_COLOR": "1"},
    )
    line = proc.stdout.readline()
    m = re.search(r"(http://[\d.:]+)/mcp/", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"berth serve did not start: {line!r} {proc.stderr.read()}")
    s = Served(proc=proc, url=m.group(1) + "/mcp", data_dir=data_dir)
    follow(proc, s.log_lines)
    return s


def publish(s: Served, path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BERTH_BIN, "publish", str(path), "--url", s.base, "--data-dir", str(s.data_dir), *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = serve(tmp_path_factory.mktemp("serve"))
    yield s
    s.stop()


def first_party_manifest(name="dev.berth.test/first-party", version="1.0.0", **hosting) -> dict:
    doc = json.loads((CONNECTORS / "testserver" / "server.json").read_text())
    doc["name"], doc["version"] = name, version
    doc["packages"][0]["identifier"] = TESTSERVER
    doc["_meta"]["dev.berth/connector"].update(hosting)
    return doc


def post_manifest(s: Served, doc: dict | str, headers=None) -> httpx.Response:
    body = doc if isinstance(doc, str) else json.dumps(doc)
    return httpx.post(f"{s.base}/admin/v1/connectors", content=body, headers=s.admin() if headers is None else headers, timeout=300)


async def call(url: str, mode: str, tool: str, args: dict) -> tuple[set[str], str, bool]:
    async with Client(url, mode=mode) as c:
        tools = {t.name for t in (await c.list_tools()).tools}
        res = await c.call_tool(tool, args)
        return tools, " ".join(getattr(x, "text", "") for x in res.content), res.is_error


# --- the example connectors, published from connectors/ and called -------------------------------


CALLS = {
    # connector dir: (tool, arguments, text expected in the result or None for "an error result")
    "everything": ("echo", {"message": "héllo ✓"}, "héllo ✓"),
    "time": ("get_current_time", {"timezone": "Asia/Tokyo"}, "Asia/Tokyo"),
    "memory": ("read_graph", {}, "entities"),
    "filesystem": ("list_allowed_directories", {}, "/tmp"),
    # No network inside the sandbox: the fetch must fail, and fail inside the tool.
    "fetch": ("fetch", {"url": "http://example.com/"}, None),
    # The sandbox sees no repository of the host's: asking for one is an error result.
    "git": ("git_status", {"repo_path": "/work"}, None),
}


@pytest.mark.parametrize("connector", list(CALLS))
@pytest.mark.parametrize("mode", MODES)
async def test_public_connectors_publish_and_answer_in_both_eras(served, connector, mode):
    manifest = json.loads((CONNECTORS / connector / "server.json").read_text())
    name = manifest["name"]
    res = publish(served, CONNECTORS / connector)
    assert res.returncode == 0 or "already published" in res.stderr, res.stderr
    tool, args, want = CALLS[connector]
    tools, text, is_error = await call(served.mcp(name), mode, tool, args)
    assert tool in tools
    if want is None:
        assert is_error or "rror" in text, text
    else:
        assert not is_error and want in text, text


async def test_first_party_connector_at_latest_and_pinned_urls(served):
    assert post_manifest(served, first_party_manifest(version="1.0.0")).status_code == 201
    assert post_manifest(served, first_party_manifest(version="1.1.0")).status_code == 201
    for path in ["dev.berth.test/first-party", "dev.berth.test/first-party@1.0.0"]:
        for mode in MODES:
            tools, text, is_error = await call(served.mcp(path), mode, "echo", {"text": "pinned ✓"})
            assert "whoami" in tools and not is_error and text == "pinned ✓"
    # The pinned and the latest URL run different versions: different processes.
    rows = httpx.get(f"{served.base}/admin/v1/instances", headers=served.admin()).json()
    pids = {r["connector"]: {i["pid"] for i in r["instances"] if i["pid"]} for r in rows}
    old, new = pids.get("dev.berth.test/first-party@1.0.0"), pids.get("dev.berth.test/first-party@1.1.0")
    assert old and new and old.isdisjoint(new), pids


async def test_examples_are_served_on_first_start(served):
    listed = httpx.get(f"{served.base}/v0/servers", params={"version": "latest"}).json()
    names = {s["server"]["name"] for s in listed["servers"]}
    assert {"dev.berth.examples/everything", "dev.berth.examples/time", "dev.berth/testserver"} <= names
    tools, text, _ = await call(served.mcp("dev.berth/testserver"), "2026-07-28", "add", {"a": 40, "b": 2})
    assert "add" in tools and "42" in text


# --- the registry API ------------------------------------------------------------------------------


def check_registry_shape(entry: dict) -> None:
    """A ServerResponse of the registry API: the server.json and the status block."""
    assert set(entry) == {"server", "_meta"}
    status = entry["_meta"]["io.modelcontextprotocol.registry/official"]
    assert status["status"] in {"active", "deprecated", "deleted"}
    assert isinstance(status["isLatest"], bool)
    for k in ("publishedAt", "updatedAt"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", status[k]), status[k]
    if OFFICIAL_SCHEMA.exists():
        import jsonschema

        jsonschema.validate(entry["server"], json.loads(OFFICIAL_SCHEMA.read_text()))


def test_registry_api_pages_through_everything_once(served):
    for i in range(5):
        doc = first_party_manifest(name=f"dev.berth.test/page-{i}", version="0.0.1")
        assert post_manifest(served, doc).status_code == 201
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, "search": "dev.berth.test/page-"} | ({"cursor": cursor} if cursor else {})
        page = httpx.get(f"{served.base}/v0/servers", params=params).json()
        assert page["metadata"]["count"] == len(page["servers"]) <= 2
        for e in page["servers"]:
            check_registry_shape(e)
        seen += [e["server"]["name"] for e in page["servers"]]
        pages += 1
        cursor = page["metadata"]["nextCursor"]
        if not cursor:
            break
    assert seen == [f"dev.berth.test/page-{i}" for i in range(5)] and pages == 3
    one = httpx.get(f"{served.base}/v0/servers/{'dev.berth.test/page-3'.replace('/', '%2F')}/versions/latest")
    assert one.status_code == 200 and one.json()["server"]["name"] == "dev.berth.test/page-3"
    versions = httpx.get(f"{served.base}/v0/servers/dev.berth.test%2Fpage-3/versions").json()
    assert [v["server"]["version"] for v in versions["servers"]] == ["0.0.1"]
    assert httpx.get(f"{served.base}/v0/servers/dev.berth.test%2Fnope").status_code == 404


# --- what must be refused ---------------------------------------------------------------------------


EXT = "/_meta/dev.berth~1connector"
INVALID = [
    # (edit of the first-party manifest, JSON pointer the error must name)
    (lambda d: d.pop("name"), "/name"),
    (lambda d: d.update(name="no-namespace"), "/name"),
    (lambda d: d.update(name="example/x"), "/name"),
    (lambda d: d.update(description=""), "/description"),
    (lambda d: d.update(version="^1.0.0"), "/version"),
    (lambda d: d.update(version="latest"), "/version"),
    (lambda d: d.update(packages=[]), "/packages"),
    (lambda d: d["packages"][0].update(registryType="nuget"), "/packages/0/registryType"),
    (lambda d: d["packages"][0].update(transport={"type": "sse", "url": "http://x.example/sse"}), "/packages/0/transport/type"),
    (lambda d: d["packages"][0].update(environmentVariables=[{"name": "BAD-NAME"}]), "/packages/0/environmentVariables/0/name"),
    (lambda d: d["_meta"]["dev.berth/connector"].update(limits={"memory": "2K"}), f"{EXT}/limits/memory"),
    (lambda d: d["_meta"]["dev.berth/connector"].update(limits={"pids": 0}), f"{EXT}/limits/pids"),
    (lambda d: d["_meta"]["dev.berth/connector"].update(limits={"cpuDeadlineMs": 0}), f"{EXT}/limits/cpuDeadlineMs"),
    (lambda d: d["_meta"]["dev.berth/connector"].update(sandbox={"backend": "vm"}), f"{EXT}/sandbox/backend"),
    (lambda d: d["_meta"]["dev.berth/connector"].update(egress=["https://api.example.com/"]), f"{EXT}/egress/0"),
    (
        lambda d: d["_meta"]["dev.berth/connector"].update(
            sandbox={"backend": "none"}, egress=["api.example.com"]
        ),
        f"{EXT}/egress",
    ),
    (lambda d: d["_meta"]["dev.berth/connector"].update(scaling={"min": 3, "max": 1}), f"{EXT}/scaling/min"),
    (
        lambda d: d["_meta"]["dev.berth/connector"].update(
            credentials=[{"provider": "github", "inject": {"env": "GITHUB_TOKEN"}}]
        ),
        f"{EXT}/isolation",
    ),
    (lambda d: d["_meta"]["dev.berth/connector"].update(timeout=3), f"{EXT}/timeout"),
]


@pytest.mark.parametrize("edit, pointer", INVALID, ids=[p for _, p in INVALID])
def test_invalid_manifests_name_their_fault(served, tmp_path, edit, pointer):
    doc = first_party_manifest(name="dev.berth.test/invalid")
    edit(doc)
    path = tmp_path / "server.json"
    path.write_text(json.dumps(doc))
    res = publish(served, path, "--check")
    assert res.returncode != 0
    assert f"  {pointer}: " in res.stderr, res.stderr
    api = post_manifest(served, doc)
    assert api.status_code == 422
    assert pointer in {p["pointer"] for p in api.json()["details"]}


def test_yaml_manifests_publish_too(served, tmp_path):
    path = tmp_path / "server.yaml"
    path.write_text(
        "name: dev.berth.test/yaml\ndescription: From YAML\nversion: 0.3.0\n"
        f"packages:\n  - registryType: local\n    identifier: {TESTSERVER}\n    transport: {{type: stdio}}\n"
    )
    res = publish(served, path)
    assert res.returncode == 0, res.stderr
    assert "/mcp/dev.berth.test/yaml@0.3.0" in res.stdout


def test_republishing_a_version_is_refused(served, tmp_path):
    doc = first_party_manifest(name="dev.berth.test/immutable")
    path = tmp_path / "server.json"
    path.write_text(json.dumps(doc))
    assert publish(served, path).returncode == 0
    changed = copy.deepcopy(doc)
    changed["description"] = "sneaky change"
    path.write_text(json.dumps(changed))
    again = publish(served, path)
    assert again.returncode != 0 and "already published" in again.stderr
    assert post_manifest(served, changed).status_code == 409
    stored = httpx.get(f"{served.base}/v0/servers/dev.berth.test%2Fimmutable/versions/1.0.0").json()
    assert stored["server"]["description"] == doc["description"]


def test_admin_api_needs_the_token(served):
    doc = first_party_manifest(name="dev.berth.test/unauthorized")
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": served.token}]:
        res = post_manifest(served, doc, headers=headers)
        assert res.status_code == 401 and res.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(f"{served.base}/admin/v1/connectors").status_code == 401
    assert httpx.get(f"{served.base}/v0/servers/dev.berth.test%2Funauthorized").status_code == 404
    assert oct((served.data_dir / "admin-token").stat().st_mode & 0o777) == "0o600"


async def test_withdrawn_versions_stop_being_served(served):
    name = "dev.berth.test/withdrawn"
    for v in ["1.0.0", "1.1.0"]:
        assert post_manifest(served, first_party_manifest(name=name, version=v)).status_code == 201
    status = f"{served.base}/admin/v1/connectors/{name}/versions/1.1.0/status"
    res = httpx.put(status, json={"status": "deleted"}, headers=served.admin())
    assert res.status_code == 200 and res.json()["_meta"]["io.modelcontextprotocol.registry/official"]["status"] == "deleted"
    latest = httpx.get(f"{served.base}/v0/servers/{name.replace('/', '%2F')}/versions/latest").json()
    assert latest["server"]["version"] == "1.0.0"
    time.sleep(2.1)  # the resolution cache
    gone = httpx.post(served.mcp(f"{name}@1.1.0"), json={}, headers={"Content-Type": "application/json"})
    assert gone.status_code == 410
    _, text, _ = await call(served.mcp(name), "2026-07-28", "echo", {"text": "still here"})
    assert text == "still here"
    bad = httpx.put(status, json={"status": "gone-fishing"}, headers=served.admin())
    assert bad.status_code == 400


def test_unknown_connector_is_404(served):
    res = httpx.post(served.mcp("dev.berth.test/nothing"), json={}, headers={"Content-Type": "application/json"})
    assert res.status_code == 404 and "no connector" in res.text


def fresh_postgres_database() -> str:
    """A new database on the server scripts/postgres.sh runs."""
    admin = os.environ.get("BERTH_TEST_POSTGRES")
    if not admin:
        pytest.skip("BERTH_TEST_POSTGRES not set (scripts/test.sh sets it)")
    name = f"berth_e2e_{os.getpid()}_{time.monotonic_ns() % 10**9}"
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return admin.rsplit("/", 1)[0] + "/" + name


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_the_catalog_survives_a_restart(tmp_path, database):
    db = ["--database", fresh_postgres_database()] if database == "postgres" else []
    first = serve(tmp_path, "--no-examples", *db)
    try:
        assert post_manifest(first, first_party_manifest(name="dev.berth.test/durable", version="2.0.0")).status_code == 201
        token = first.token
    finally:
        assert first.stop() == 0
    second = serve(tmp_path, "--no-examples", *db)
    try:
        got = httpx.get(f"{second.base}/v0/servers/dev.berth.test%2Fdurable").json()
        assert got["server"]["version"] == "2.0.0"
        assert got["_meta"]["io.modelcontextprotocol.registry/official"]["isLatest"] is True
        assert second.token == token
        assert not (tmp_path / "catalog.db").exists() or database == "sqlite"
    finally:
        second.stop()


def test_a_config_file_sets_defaults_and_flags_win(tmp_path):
    (tmp_path / "berth.toml").write_text('examples = false\nadmin_token = "from-file"\n')
    s = serve(tmp_path)
    try:
        assert httpx.get(f"{s.base}/v0/servers").json()["servers"] == []
        ok = httpx.get(f"{s.base}/admin/v1/connectors", headers={"Authorization": "Bearer from-file"})
        assert ok.status_code == 200
    finally:
        s.stop()
    (tmp_path / "berth.toml").write_text("exampels = false\n")
    bad = subprocess.run([BERTH_BIN, "serve", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "exampels" in bad.stderr


def test_import_seeds_a_catalog_from_a_registry_export(served, tmp_path):
    for i in range(3):
        post_manifest(served, first_party_manifest(name=f"dev.berth.test/export-{i}", version="0.1.0"))
    export = httpx.get(f"{served.base}/v0/servers", params={"search": "dev.berth.test/export-", "limit": 100}).json()
    assert len(export["servers"]) == 3
    # A remote-only server, as the official registry holds many: berth cannot host it.
    export["servers"].append(
        {"server": {"name": "com.example/remote", "description": "remote only", "version": "1.0.0",
                    "remotes": [{"type": "streamable-http", "url": "https://mcp.example.com/mcp"}]}}
    )
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    fresh = serve(tmp_path / "fresh", "--no-examples")
    try:
        args = [BERTH_BIN, "import", str(path), "--url", fresh.base, "--data-dir", str(fresh.data_dir)]
        res = subprocess.run(args, capture_output=True, text=True, timeout=120)
        n = len(export["servers"]) - 1
        assert res.returncode != 0 and f"imported {n}, already present 0, refused 1" in res.stdout, res.stdout + res.stderr
        assert "com.example/remote" in res.stderr and "/packages" in res.stderr
        again = subprocess.run([*args, "--keep-going"], capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and f"imported 0, already present {n}, refused 1" in again.stdout
        names = {s["server"]["name"] for s in httpx.get(f"{fresh.base}/v0/servers").json()["servers"]}
        assert names == {s["server"]["name"] for s in export["servers"][:-1]}
    finally:
        fresh.stop()


async def test_an_idle_server_stops_and_the_next_request_starts_it(served):
    name = "dev.berth.test/idle"
    doc = first_party_manifest(name=name, scaling={"idleTimeoutSeconds": 1})
    assert post_manifest(served, doc).status_code == 201
    _, text, _ = await call(served.mcp(name), "2026-07-28", "whoami", {})
    first = json.loads(text)["pid"]  # PID 1 inside its namespace: find the host process by its log line
    assert first == 1
    started = lambda: [l for l in served.log_lines if "server ready" in l and name in l]
    assert len(started()) == 1
    stopped = lambda: [l for l in served.log_lines if "scaled down" in l and name in l]
    deadline = time.monotonic() + 10
    while not stopped() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stopped(), "the idle server was not stopped"
    pid = int(re.search(r"pid=Some\((\d+)\)", started()[0]).group(1))
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{pid}"), "the idle server's process is still there"
    _, text, _ = await call(served.mcp(name), "2026-07-28", "echo", {"text": "again"})
    assert text == "again" and len(started()) == 2


# --- MCP bundles ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle_site(tmp_path_factory):
    """A loopback web server for .mcpb files (the only registries reachable here are package ones)."""
    import functools
    import hashlib
    import http.server
    import zipfile

    root = tmp_path_factory.mktemp("bundles")

    def make(name: str, entries: dict[str, bytes | Path], mcp_config: dict) -> tuple[str, str]:
        path = root / name
        manifest = {"manifest_version": "0.3", "name": name, "version": "1.0.0",
                    "server": {"type": "binary", "entry_point": "server/berth-testserver", "mcp_config": mcp_config}}
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("manifest.json", json.dumps(manifest))
            for arc, src in entries.items():
                info = zipfile.ZipInfo(arc)
                info.external_attr = 0o755 << 16
                z.writestr(info, src.read_bytes() if isinstance(src, Path) else src)
        return name, hashlib.sha256(path.read_bytes()).hexdigest()

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    make.root = root
    yield f"http://127.0.0.1:{httpd.server_address[1]}", make
    httpd.shutdown()


def bundle_manifest(url: str, sha: str, name: str) -> dict:
    doc = first_party_manifest(name=name)
    doc["packages"] = [{"registryType": "mcpb", "identifier": url, "fileSha256": sha, "transport": {"type": "stdio"}}]
    return doc


@pytest.fixture(scope="module")
def strict_served(tmp_path_factory):
    """A berth that installs packages at publish, so a bad one is refused then."""
    s = serve(tmp_path_factory.mktemp("strict"), "--no-examples", "--materialize", "publish")
    yield s
    s.stop()


async def test_a_verified_bundle_is_unpacked_and_served(strict_served, bundle_site):
    base, make = bundle_site
    file, sha = make("good.mcpb", {"server/berth-testserver": Path(TESTSERVER)},
                     {"command": "${__dirname}/server/berth-testserver", "args": []})
    res = post_manifest(strict_served, bundle_manifest(f"{base}/{file}", sha, "dev.berth.test/bundle"))
    assert res.status_code == 201, res.text
    for mode in MODES:
        tools, text, _ = await call(strict_served.mcp("dev.berth.test/bundle"), mode, "echo", {"text": "bundled"})
        assert text == "bundled"


def test_a_bundle_that_does_not_match_its_hash_is_refused(strict_served, bundle_site):
    base, make = bundle_site
    file, sha = make("tampered.mcpb", {"server/berth-testserver": Path(TESTSERVER)},
                     {"command": "${__dirname}/server/berth-testserver"})
    wrong = "0" * 64
    res = post_manifest(strict_served, bundle_manifest(f"{base}/{file}", wrong, "dev.berth.test/tampered"))
    assert res.status_code == 422 and sha in res.text and "refusing" in res.text
    staging = strict_served.data_dir / "artifacts" / ".staging"
    assert not staging.exists() or not any(staging.iterdir()), "a refused bundle left files behind"


def test_a_bundle_escaping_its_directory_is_refused(strict_served, bundle_site):
    base, make = bundle_site
    file, sha = make("slip.mcpb", {"../../evil": b"#!/bin/sh\n"}, {"command": "${__dirname}/../../evil"})
    res = post_manifest(strict_served, bundle_manifest(f"{base}/{file}", sha, "dev.berth.test/slip"))
    assert res.status_code == 422 and "outside the bundle" in res.text
    assert not (strict_served.data_dir / "evil").exists() and not (strict_served.data_dir.parent / "evil").exists()


async def test_a_wasm_module_at_a_url_is_verified_and_served_by_the_wasi_sandbox(strict_served, bundle_site):
    import hashlib
    import shutil

    from test_wasi import WASM

    base, _ = bundle_site
    name = "guest-" + hashlib.sha256(Path(WASM).read_bytes()).hexdigest()[:8] + ".wasm"
    site_root = bundle_site[1].root
    shutil.copy(WASM, site_root / name)
    sha = hashlib.sha256((site_root / name).read_bytes()).hexdigest()

    def manifest(connector: str, digest: str) -> dict:
        doc = first_party_manifest(name=connector, sandbox={"backend": "wasi"})
        doc["packages"] = [{"registryType": "wasm", "identifier": f"{base}/{name}", "fileSha256": digest,
                            "transport": {"type": "stdio"}}]
        return doc

    res = post_manifest(strict_served, manifest("dev.berth.test/wasm-url", sha))
    assert res.status_code == 201, res.text
    for mode in MODES:
        _, text, _ = await call(strict_served.mcp("dev.berth.test/wasm-url"), mode, "echo", {"text": "from a url"})
        assert text == "from a url"
    wrong = post_manifest(strict_served, manifest("dev.berth.test/wasm-tampered", "0" * 64))
    assert wrong.status_code == 422 and sha in wrong.text and "refusing" in wrong.text
    (site_root / "not.wasm").write_bytes(b"#!/bin/sh\n")
    fake = manifest("dev.berth.test/wasm-fake", hashlib.sha256(b"#!/bin/sh\n").hexdigest())
    fake["packages"][0]["identifier"] = f"{base}/not.wasm"
    res = post_manifest(strict_served, fake)
    assert res.status_code == 422 and "not a WebAssembly module" in res.text, res.text
    unverified = manifest("dev.berth.test/wasm-unverified", sha)
    del unverified["packages"][0]["fileSha256"]
    res = post_manifest(strict_served, unverified)
    assert res.status_code == 422 and "fileSha256" in res.text


async def test_an_oci_connector_runs_in_the_container_sandbox(served):
    from test_sandbox_escape import build_image

    image = "berth-testserver:oci-e2e"
    build_image(image, 'CMD ["/app/berth-testserver"]')
    doc = first_party_manifest(name="dev.berth.test/oci", sandbox={"backend": "container"})
    doc["packages"] = [{"registryType": "oci", "identifier": image, "transport": {"type": "stdio"}}]
    assert post_manifest(served, doc).status_code == 201
    for mode in MODES:
        _, text, _ = await call(served.mcp("dev.berth.test/oci"), mode, "whoami", {})
        me = json.loads(text)
        assert me["pid"] == 1 and "HOSTNAME" in me["env"]  # a container's own PID 1 and hostname
    # The engine's accounting reaches the admin API: the container's CPU time and memory.
    _, text, _ = await call(served.mcp("dev.berth.test/oci"), "legacy", "spin", {"ms": 300})
    spun = json.loads(text)
    pools = httpx.get(f"{served.base}/admin/v1/instances", headers=served.admin()).json()
    running = [i for p in pools if p["connector"].startswith("dev.berth.test/oci@") for i in p["instances"]]
    assert running and all(i["memory_bytes"] > 1 << 20 for i in running), running
    assert sum(i["cpu_seconds"] for i in running) >= 0.9 * spun["cpu_s"] > 0.1, (running, spun)


@pytest.mark.parametrize("mode", MODES)
async def test_the_manifest_policy_hides_and_refuses_tools(served, mode):
    from mcp.shared.exceptions import MCPError

    allow_list = "dev.berth.test/policy-allow"
    deny_list = "dev.berth.test/policy-deny"
    post_manifest(served, first_party_manifest(name=allow_list, policy={"default": "deny", "allow": ["echo", "add"]}))
    post_manifest(served, first_party_manifest(name=deny_list, policy={"deny": ["whoami", "read_file"]}))
    async with Client(served.mcp(allow_list), mode=mode) as c:
        assert {t.name for t in (await c.list_tools()).tools} == {"echo", "add"}
        assert " ".join(x.text for x in (await c.call_tool("echo", {"text": "ok"})).content) == "ok"
        for refused in ["whoami", "read_file", "list_dir"]:
            with pytest.raises(MCPError, match="refused by policy"):
                await c.call_tool(refused, {"path": "/"})
    async with Client(served.mcp(deny_list), mode=mode) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert "echo" in names and "list_dir" in names and not names & {"whoami", "read_file"}
        with pytest.raises(MCPError, match="refused by policy"):
            await c.call_tool("whoami", {})


def test_an_image_that_is_not_there_and_cannot_be_pulled_says_so(served):
    doc = first_party_manifest(name="dev.berth.test/no-image", sandbox={"backend": "container"})
    doc["packages"] = [{"registryType": "oci", "identifier": "registry.invalid/nothing:1", "transport": {"type": "stdio"}}]
    assert post_manifest(served, doc).status_code == 201
    from mcp_http import modern_body, modern_headers

    body = modern_body("tools/list")
    res = httpx.post(served.mcp("dev.berth.test/no-image"), json=body, headers=modern_headers(body), timeout=60)
    assert "registry.invalid/nothing:1" in res.text and "could not be pulled" in res.text, res.text
