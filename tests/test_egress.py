"""Network policy: a server in the native or the container sandbox reaches the
network only through berth's egress proxy, and only the `--allow-host`
entries. The first-party server's hostile `proxy_connect` tool asks the proxy
in HTTPS_PROXY for a CONNECT tunnel and sends `GET /` through it; `connect`
tries a direct TCP connection. The allowlisted host is a loopback HTTP server
this test starts (on the host: inside a sandbox 127.0.0.1 is its own).

Both backends need root here (the test machines run as root): the native one
for its namespaces, the container one to open the proxy's listener inside the
container's network namespace."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import BERTH_BIN, SERVERS, start_berth, wait_for
from test_catalog import first_party_manifest, post_manifest, serve
from test_failures import call, result_text
from test_sandbox_escape import args_for, image, server_for  # noqa: F401 (image: a fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the native sandbox needs root")

TS = SERVERS["first-party"]
NATIVE = ["--sandbox", "native", "--pids", "48", "--memory", "192M"]
GREETING = "hello from the allowlisted host"
PROXY = "http://127.0.0.1:3128"


def tool(url, name, args=None) -> dict:
    return json.loads(result_text(call(url, name, args, timeout=60)))


@pytest.fixture(scope="module")
def test_host():
    """A loopback HTTP server; yields its port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = GREETING.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module", params=["native", "container"])
def egress(request, test_host):
    if request.param == "container":
        request.getfixturevalue("image")
    b = start_berth(
        server_for(request.param),
        *args_for(request.param),
        "--allow-host", f"127.0.0.1:{test_host}",
        "--allow-host", f"localhost:{test_host}",
        "--allow-host", "example.com",
    )
    yield b
    b.stop()


def berth_port(b) -> str:
    return b.url.split(":")[2].split("/")[0]


def test_the_server_is_told_where_the_proxy_is(egress):
    env = tool(egress.url, "whoami")["env"]
    assert {"HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"} <= set(env), env


def test_allowlisted_host_is_reachable_through_the_proxy(egress, test_host):
    res = tool(egress.url, "proxy_connect", {"target": f"127.0.0.1:{test_host}"})
    assert res["ok"] and res["status"] == 200, res
    assert res["proxy"] == PROXY
    assert res["answer"].startswith("HTTP/1.") and GREETING in res["answer"], res
    # Again: the first tunnel left nothing in the way.
    assert tool(egress.url, "proxy_connect", {"target": f"127.0.0.1:{test_host}"})["ok"]


def refused_targets(test_host: int, own_port: str) -> list[str]:
    return [
        "169.254.169.254:80",  # cloud metadata
        "10.0.0.1:80",  # private
        f"127.0.0.1:{own_port}",  # berth itself
        f"127.0.0.1:{test_host + 1 if test_host < 65535 else test_host - 1}",  # another loopback port
        f"localhost:{test_host}",  # an allowlisted name that resolves to loopback
        "example.net:443",  # not on the allowlist
        "example.com:80",  # allowlisted host, other port
        "[::1]:80",
    ]


def test_everything_else_is_refused_with_403_and_logged(egress, test_host):
    for target in refused_targets(test_host, berth_port(egress)):
        res = tool(egress.url, "proxy_connect", {"target": target})
        assert not res["ok"] and res["status"] == 403, (target, res)
        assert "berth egress proxy" in res["answer"], res
        assert wait_for(
            lambda: any("egress refused" in line and target in line for line in egress.log_lines)
        ), (target, egress.logs()[-2000:])
    reasons = egress.logs()
    # IP literals are refused unless an entry names them; names by what they resolve to.
    for reason in ["not on the egress allowlist", "resolves to 127.0.0.1, a loopback address"]:
        assert reason in reasons, reason


def test_plain_http_through_the_proxy_is_refused(egress, test_host):
    # `connect` only opens a socket; the refusal of an absolute-form GET is
    # covered by the sandbox crate's unit tests. Here: no way around CONNECT.
    res = tool(egress.url, "proxy_connect", {"target": f"http://127.0.0.1:{test_host}/"})
    assert not res["ok"] and res["status"] in (400, 403), res


@pytest.mark.parametrize("target", ["direct-test-host", "10.0.0.1:80", "169.254.169.254:80", "1.1.1.1:443"])
def test_direct_connections_have_no_route(egress, test_host, target):
    addr = f"127.0.0.1:{test_host}" if target == "direct-test-host" else target
    res = tool(egress.url, "connect", {"addr": addr})
    assert not res["ok"], (addr, res)


@pytest.mark.parametrize("backend", ["native", "container"])
def test_without_allow_host_there_is_no_proxy(request, berth_factory, test_host, backend):
    if backend == "container":
        request.getfixturevalue("image")
    b = berth_factory(server_for(backend), *args_for(backend))
    res = tool(b.url, "proxy_connect", {"target": f"127.0.0.1:{test_host}"})
    assert not res["ok"] and "HTTPS_PROXY" in res["error"], res
    assert not tool(b.url, "connect", {"addr": f"127.0.0.1:{test_host}"})["ok"]


def test_the_proxy_socket_goes_when_the_instance_ends(test_host):
    b = start_berth(TS, *NATIVE, "--allow-host", f"127.0.0.1:{test_host}")
    try:
        assert tool(b.url, "proxy_connect", {"target": f"127.0.0.1:{test_host}"})["ok"]
        # The sandbox sees its own proxy directory only (proxy_dir checks there is one).
        host_dir = proxy_dir(b)
        assert (host_dir / "proxy.sock").exists()
    finally:
        b.stop()
    assert wait_for(lambda: not host_dir.exists()), host_dir


def proxy_dir(b) -> Path:
    """The host path of the instance's proxy directory, as the sandbox sees it."""
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / "berth-sandbox"
    inside = tool(b.url, "list_dir", {"path": str(scratch)})
    (name,) = [e for e in inside["entries"] if e.startswith("egress-")]
    return scratch / name


def test_a_killed_berths_proxy_socket_is_swept_at_the_next_start(test_host):
    b = start_berth(TS, *NATIVE, "--allow-host", f"127.0.0.1:{test_host}")
    try:
        host_dir = proxy_dir(b)
        assert (host_dir / "proxy.sock").exists()
        b.proc.kill()
        b.proc.wait(10)
        assert host_dir.exists()  # nobody left to remove it
    finally:
        b.stop()
    nxt = start_berth(TS, *NATIVE)
    try:
        assert wait_for(lambda: not host_dir.exists()), host_dir
    finally:
        nxt.stop()


@pytest.mark.parametrize(
    "flags",
    [
        ["--sandbox", "native", "--allow-host", "https://example.com/"],
        ["--sandbox", "native", "--allow-host", "example.com:0"],
        ["--sandbox", "none", "--allow-host", "example.com"],
        ["--sandbox", "wasi", "--allow-host", "example.com"],
    ],
)
def test_bad_or_unenforceable_allowlists_are_refused(flags):
    res = subprocess.run(
        [BERTH_BIN, "run", "--listen", "127.0.0.1:0", *flags, "--", *TS], capture_output=True, text=True, timeout=30
    )
    assert res.returncode != 0, res
    assert "allow" in res.stderr.lower() or "egress" in res.stderr.lower(), res.stderr


def test_a_manifests_egress_list_is_its_allowlist(tmp_path, test_host):
    served = serve(tmp_path / "data", "--no-examples")
    try:
        allowed = first_party_manifest(name="dev.berth.test/egress", egress=[f"127.0.0.1:{test_host}"])
        assert post_manifest(served, allowed).status_code == 201
        closed = first_party_manifest(name="dev.berth.test/no-egress")
        assert post_manifest(served, closed).status_code == 201
        url = served.mcp("dev.berth.test/egress")
        res = tool(url, "proxy_connect", {"target": f"127.0.0.1:{test_host}"})
        assert res["ok"] and GREETING in res["answer"], res
        port = served.base.rsplit(":", 1)[1]
        assert tool(url, "proxy_connect", {"target": f"127.0.0.1:{port}"})["status"] == 403
        assert not tool(url, "connect", {"addr": f"127.0.0.1:{test_host}"})["ok"]
        res = tool(served.mcp("dev.berth.test/no-egress"), "proxy_connect", {"target": f"127.0.0.1:{test_host}"})
        assert not res["ok"] and "HTTPS_PROXY" in res["error"], res
    finally:
        served.stop()
