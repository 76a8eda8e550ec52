"""The admin console (/admin/) and the account page (/account/) in a real
headless Chromium (Debian's `chromium`, driven by playwright-core through
tests/ts/browser.mjs) against a real `berth serve`: the pages load under a
strict policy, show what the admin API holds, a policy made in the page
decides the next real MCP call, the audit view filters, a refused token
shows an error and no data, and a signed-in user connects an account."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import NODE_MODULES, REPO
from mcp_http import modern_body, modern_headers
from test_catalog import first_party_manifest, post_manifest, serve

pytestmark = pytest.mark.anyio
CONNECTOR = "dev.berth.test/console"


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Browser:
    """One Chromium tab; each call is one command to tests/ts/browser.mjs."""

    def __init__(self, base: str):
        self.base = base
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            ["node", str(REPO / "tests" / "ts" / "browser.mjs"), base],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, "BERTH_NODE_MODULES": str(NODE_MODULES)},
        )
        assert self._answer() == "ready"

    def _answer(self):
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"the browser driver exited: {self.log.read()}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise AssertionError(answer["error"])
        return answer["result"]

    def __call__(self, op: str, **args):
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def visible(self, selector: str) -> bool:
        t = self("text", selector=selector)
        return bool(t and t["visible"])

    def sign_in(self, token: str) -> None:
        self("goto", path="/admin/")
        self("fill", selector="#token", value=token)
        self("click", selector="#signin-form button[type=submit]")

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def browser(world):
    b = Browser(world.base)
    yield b
    b.close()


def pat(berth, user: str, admin: bool = False) -> tuple[str, str]:
    res = httpx.post(f"{berth.base}/admin/v1/tokens", json={"user": user, "name": "console test", "admin": admin},
                     headers=berth.admin())
    assert res.status_code == 201, res.text
    return res.json()["token"], res.json()["id"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    berth = serve(tmp_path_factory.mktemp("console"), "--no-examples", "--auth", "oauth")
    # An older version, deprecated, so the page has versions of two statuses to show.
    assert post_manifest(berth, first_party_manifest(name=CONNECTOR, version="0.9.0")).status_code == 201
    res = httpx.put(f"{berth.base}/admin/v1/connectors/{CONNECTOR}/versions/0.9.0/status", json={"status": "deprecated"},
                    headers=berth.admin())
    assert res.status_code == 200, res.text
    assert post_manifest(berth, first_party_manifest(name=CONNECTOR, version="1.0.0")).status_code == 201
    berth.tokens = {u: pat(berth, u)[0] for u in ("alice", "bob", "carol", "dave", "erin")}
    yield berth
    berth.stop()


async def call(berth, user: str, tool: str, args: dict) -> tuple[set[str], str]:
    """`user` lists the tools and calls one with the Python SDK: the tools
    they see, and `ok`, `error` or `refused: …` (a JSON-RPC error)."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {berth.tokens[user]}"})
    async with Client(streamable_http_client(berth.mcp(CONNECTOR), http_client=http), mode="2026-07-28") as c:
        names = {t.name for t in (await c.list_tools()).tools}
        try:
            res = await c.call_tool(tool, args)
            return names, "error" if res.is_error else "ok"
        except Exception as e:  # berth's JSON-RPC refusal
            return names, f"refused: {e!r}"


def api(berth, path: str, **params):
    res = httpx.get(f"{berth.base}/admin/v1{path}", params=params, headers=berth.admin())
    assert res.status_code == 200, res.text
    return res.json()


def test_pages_carry_a_strict_policy(world):
    for path in ("/admin/", "/admin/console.js", "/admin/console.css", "/account/", "/account/account.js"):
        res = httpx.get(world.base + path)
        assert res.status_code == 200, path
        csp = res.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp, csp
        assert res.headers["x-frame-options"] == "DENY" and res.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(world.base + "/admin/console.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(world.base + "/admin").headers["location"] == "/admin/"
    # The page itself carries no data: everything comes from the admin API with a token.
    assert CONNECTOR not in httpx.get(world.base + "/admin/").text


async def test_the_console_shows_connectors_versions_and_live_instances(world, browser):
    assert (await call(world, "alice", "echo", {"text": "hi"}))[1] == "ok"  # a live instance
    browser.sign_in(world.token)
    assert browser("text", selector="#error")["visible"] is False
    shown = {(r["data"]["connector"], r["data"]["version"]): r for r in browser("rows", selector="#connectors-table")}
    assert shown[(CONNECTOR, "1.0.0")]["data"]["status"] == "active"
    assert shown[(CONNECTOR, "0.9.0")]["data"]["status"] == "deprecated"
    assert "latest" in shown[(CONNECTOR, "1.0.0")]["cells"] and "latest" not in shown[(CONNECTOR, "0.9.0")]["cells"]
    assert f"{world.base}/mcp/{CONNECTOR}@1.0.0" in shown[(CONNECTOR, "1.0.0")]["cells"]

    browser("goto", path="/admin/#instances")
    rows = [r for r in browser("rows", selector="#instances-table") if r["data"]["connector"] == f"{CONNECTOR}@1.0.0"]
    live = [i for p in api(world, "/instances") if p["connector"] == f"{CONNECTOR}@1.0.0" for i in p["instances"]]
    assert rows and live, (rows, live)
    assert {r["cells"][2] for r in rows} == {str(i["pid"]) for i in live}
    assert all(r["cells"][5].endswith(" s") and r["cells"][6].endswith(" MiB") for r in rows), rows
    assert all(r["data"]["state"] == "ready" for r in rows)
    for i in live:
        os.kill(i["pid"], 0)  # a real process
    assert browser("problems") == [], "no script error, no refused load"


async def test_a_policy_made_in_the_page_decides_real_mcp_calls(world, browser):
    names, outcome = await call(world, "dave", "echo", {"text": "hi"})
    assert "echo" in names and outcome == "ok"
    browser.sign_in(world.token)
    browser("goto", path="/admin/#policies")
    browser("select", selector="#policy-connector", value=CONNECTOR)
    browser("fill", selector="#policy-user", value="dave")
    browser("select", selector="#policy-default", value="allow")
    browser("fill", selector="#policy-deny", value="echo")
    browser("click", selector="#policy-save")
    assert not browser.visible("#error"), browser("text", selector="#error")

    names, outcome = await call(world, "dave", "echo", {"text": "hi"})
    assert "echo" not in names and outcome.startswith("refused") and "refused by policy" in outcome, outcome
    names, outcome = await call(world, "bob", "echo", {"text": "hi"})
    assert "echo" in names and outcome == "ok", "only dave is narrowed"
    rows = [r for r in browser("rows", selector="#policies-table") if r["data"] == {"user": "dave", "connector": CONNECTOR}]
    assert len(rows) == 1 and rows[0]["cells"][4] == "echo"

    browser("click", selector=f"#policies-table tr[data-user='dave'][data-connector='{CONNECTOR}'] button.remove")
    assert not [r for r in browser("rows", selector="#policies-table") if r["data"]["user"] == "dave"]
    assert "dave" not in api(world, f"/connectors/{CONNECTOR}/policies")["users"]
    names, outcome = await call(world, "dave", "echo", {"text": "hi"})
    assert "echo" in names and outcome == "ok", outcome
    assert browser("problems") == []


def audit_filter(browser, **fields) -> list[dict]:
    for k in ("user", "connector", "tool", "since"):
        browser("fill", selector=f"#audit-{k}", value=fields.get(k, ""))
    browser("select", selector="#audit-decision", value=fields.get("decision", ""))
    browser("click", selector="#audit-apply")
    assert not browser.visible("#error"), browser("text", selector="#error")
    return browser("rows", selector="#audit-table")


def key(r: dict) -> tuple:
    return r["user"], r["tool"], r["decision"], r["outcome"]


async def test_the_audit_view_filters(world, browser):
    assert httpx.put(f"{world.base}/admin/v1/connectors/{CONNECTOR}/policies/carol", json={"deny": ["echo"]},
                     headers=world.admin()).status_code == 204
    assert (await call(world, "carol", "echo", {"text": "x"}))[1].startswith("refused")
    assert (await call(world, "carol", "add", {"a": 1, "b": 2}))[1] == "ok"
    assert (await call(world, "erin", "add", {"a": 2, "b": 3}))[1] == "ok"
    deadline = time.monotonic() + 10  # records are written off the request path
    while len(api(world, "/audit", user="carol")) < 2 or not api(world, "/audit", user="erin"):
        assert time.monotonic() < deadline, "audit records never landed"
        time.sleep(0.1)

    browser.sign_in(world.token)
    browser("goto", path="/admin/#audit")
    every = browser("rows", selector="#audit-table")
    assert {("carol", "echo", "deny", "denied"), ("carol", "add", "allow", "ok"), ("erin", "add", "allow", "ok")} <= {
        (r["data"]["user"], r["data"]["tool"], r["data"]["decision"], r["data"]["outcome"]) for r in every}

    for fields in ({"user": "carol"}, {"user": "carol", "decision": "deny"}, {"tool": "add"},
                   {"connector": CONNECTOR, "decision": "allow"}, {"user": "nobody"}, {"since": "2099-01-01T00:00:00"}):
        shown = audit_filter(browser, **fields)
        params = {k: v for k, v in fields.items() if k != "since"}
        if "since" in fields:
            params["since_ms"] = 4070908800000  # 2099-01-01 (the test's clock is UTC)
        want = api(world, "/audit", **params)
        got = sorted((r["data"]["user"], r["data"]["tool"], r["data"]["decision"], r["data"]["outcome"]) for r in shown)
        assert got == sorted(key(r) for r in want), fields
        for k in ("user", "tool", "decision"):
            if k in fields:
                assert all(r["data"][k] == fields[k] for r in shown), fields
    assert audit_filter(browser, user="carol", decision="deny")[0]["data"]["tool"] == "echo"
    assert audit_filter(browser, user="nobody") == [] and browser.visible("#audit-table tr.empty")
    assert browser("problems") == []


def test_a_refused_token_shows_an_error_not_data(world, browser):
    browser.sign_in("not-the-admin-token")
    error = browser("text", selector="#error")
    assert error["visible"] and "401" in error["text"], error
    assert not browser.visible("#connectors") and not browser.visible("#nav")
    assert browser("rows", selector="#connectors-table") == []

    # A user's own token is not an admin token.
    browser.sign_in(world.tokens["bob"])
    error = browser("text", selector="#error")
    assert error["visible"] and "403" in error["text"], error
    assert browser("rows", selector="#connectors-table") == []

    # An admin token revoked while the page is open: the next refresh empties the page.
    token, token_id = pat(world, "ops", admin=True)
    browser.sign_in(token)
    assert any(r["data"]["connector"] == CONNECTOR for r in browser("rows", selector="#connectors-table"))
    assert httpx.delete(f"{world.base}/admin/v1/tokens/{token_id}", headers=world.admin()).status_code == 204
    browser("click", selector="#connectors button.refresh")
    error = browser("text", selector="#error")
    assert error["visible"] and ("401" in error["text"] or "403" in error["text"]), error
    assert browser("rows", selector="#connectors-table") == [] and browser.visible("#signin")


@pytest.fixture(scope="module")
def idp_world(tmp_path_factory):
    """berth signing users in through a real OpenID Connect provider, which
    is also the upstream provider `acme` whose accounts users connect."""
    from test_broker import BROKER_SECRET, LOGIN_SECRET, Idp
    from test_oauth import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    idp = Idp(free_port(), base)
    berth = serve(tmp_path_factory.mktemp("account"), "--no-examples", "--auth", "oauth", "--public-url", base,
                  "--oidc-issuer", idp.issuer, "--oidc-client-id", "berth-login", "--oidc-client-secret", LOGIN_SECRET,
                  listen=f"127.0.0.1:{port}")
    provider = {"issuer": idp.issuer, "client_id": "berth-broker", "client_secret": BROKER_SECRET, "scopes": ["openid"]}
    assert httpx.put(f"{base}/admin/v1/providers/acme", json=provider, headers=berth.admin()).status_code == 204
    yield berth, idp
    berth.stop()
    idp.stop()


def through_idp(browser: Browser, idp, user: str, url: str) -> str:
    """Signs in and consents on the provider's development pages until the
    browser is sent back elsewhere; returns where it landed."""
    for _ in range(6):
        if not url.startswith(idp.issuer):
            return url
        if browser("text", selector="input[name=login]"):
            browser("fill", selector="input[name=login]", value=user)
            browser("fill", selector="input[name=password]", value="any")
        url = browser("click", selector="button[type=submit]", navigates=True)["url"]
    raise AssertionError(f"stuck at the provider: {url}")


def test_a_signed_in_user_connects_an_account_from_the_account_page(idp_world):
    berth, idp = idp_world
    browser = Browser(berth.base)
    try:
        browser("goto", path="/account/")
        assert browser.visible("#signed-out") and not browser.visible("#accounts")
        assert browser("attr", selector="#sign-in", name="href") == "/login?next=/account/"
        url = through_idp(browser, idp, "frank", browser("click", selector="#sign-in", navigates=True)["url"])
        assert url == f"{berth.base}/account/", url
        assert browser("text", selector="#user")["text"] == "frank"
        rows = browser("rows", selector="#providers-table")
        assert [(r["data"]["provider"], r["data"]["connected"], r["cells"][1]) for r in rows] == [
            ("acme", "false", "not connected")]
        assert browser("attr", selector="tr[data-provider=acme] a.connect", name="href") == "/connect/acme"

        url = through_idp(browser, idp, "frank",
                          browser("click", selector="tr[data-provider=acme] a.connect", navigates=True)["url"])
        assert url.startswith(f"{berth.base}/connect/callback"), url
        assert "Connected" in browser("text", selector="h1")["text"]
        browser("problems")  # the provider's own pages are not under test
        browser("goto", path="/account/")
        rows = browser("rows", selector="#providers-table")
        assert [(r["data"]["provider"], r["data"]["connected"], r["cells"][1:]) for r in rows] == [
            ("acme", "true", ["connected", "Reconnect"])]
        assert browser("problems") == []
    finally:
        browser.close()

    # Another browser, not signed in, learns nothing about frank's accounts.
    res = httpx.get(f"{berth.base}/account/providers")
    assert res.status_code == 401 and "frank" not in res.text and "acme" not in res.text


def test_values_from_the_server_are_rendered_as_text(world, browser):
    user = '<img src=x onerror="document.title=1">&amp;'
    res = httpx.put(f"{world.base}/admin/v1/connectors/{CONNECTOR}/policies/{user}", json={"deny": ["<b>add</b>"]},
                    headers=world.admin())
    assert res.status_code == 204, res.text
    try:
        browser.sign_in(world.token)
        browser("goto", path="/admin/#policies")
        rows = [r for r in browser("rows", selector="#policies-table") if r["data"]["user"] == user]
        assert len(rows) == 1 and rows[0]["cells"][:2] == [user, CONNECTOR] and rows[0]["cells"][4] == "<b>add</b>"
        assert browser("text", selector="#policies-table img") is None
        assert browser("text", selector="#policies-table b") is None
        assert browser("problems") == [], "nothing was fetched or run from the values"
    finally:
        httpx.delete(f"{world.base}/admin/v1/connectors/{CONNECTOR}/policies/{user}", headers=world.admin())


def test_a_user_offboarded_in_the_page_loses_their_tokens(world, browser):
    token, _ = pat(world, "frank")
    assert echo_status(world, token) == 200
    browser.sign_in(world.token)
    browser("goto", path="/admin/#policies")
    rows = {r["data"]["user"]: r["cells"] for r in browser("rows", selector="#users-table")}
    assert rows["frank"][2] == "1", rows["frank"]
    button = "#users-table tr[data-user='frank'] button.offboard"
    browser("click", selector=button)
    assert echo_status(world, token) == 200, "the first click only arms the button"
    browser("click", selector=button)
    assert not browser.visible("#error"), browser("text", selector="#error")
    assert "Offboarded frank: 1 token(s) revoked" in browser("text", selector="#notice")["text"]
    assert echo_status(world, token) == 401
    assert api(world, "/users/frank")["tokens"] == 0
    assert browser("problems") == []


def echo_status(berth, token: str) -> int:
    body = modern_body("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
    headers = modern_headers(body, Authorization=f"Bearer {token}")
    return httpx.post(berth.mcp(CONNECTOR), json=body, headers=headers, timeout=30).status_code
