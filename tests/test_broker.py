"""The whole credential story with a real OpenID Connect provider on
loopback (npm `oidc-provider`): users sign in to berth through it, connect
their upstream account at /connect, and an OAuth-authorized Python SDK
client calls a per-user connector whose instance holds that user's own
upstream token; tokens are refreshed (and instances recycled) before they
expire, and a grant the provider forgot asks the user to connect again."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
import httpx2
import pytest
from mcp import types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import NODE_MODULES, REPO, follow
from test_catalog import first_party_manifest, post_manifest, serve
from test_oauth import Memory, free_port, sdk_provider

pytestmark = pytest.mark.anyio
CONNECTOR = "dev.berth.test/acts-as-you"
FILE_CONNECTOR = "dev.berth.test/reads-a-token-file"
TOKEN_FILE = "/run/berth/acme-token"
REDIRECT = "http://127.0.0.1:9/callback"
ACCESS_TTL = 9  # seconds; berth renews a third of the lifetime early
LOGIN_SECRET = "canary-login-secret-" + secrets.token_hex(8)
BROKER_SECRET = "canary-broker-secret-" + secrets.token_hex(8)


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Idp:
    def __init__(self, port: int, berth_base: str):
        self.port, self.issuer, self.berth_base = port, f"http://127.0.0.1:{port}", berth_base
        self.lines: list[str] = []
        self.start()

    def start(self):
        clients = [
            {"client_id": "berth-login", "client_secret": LOGIN_SECRET, "redirect_uris": [f"{self.berth_base}/login/callback"]},
            {"client_id": "berth-broker", "client_secret": BROKER_SECRET, "redirect_uris": [f"{self.berth_base}/connect/callback"]},
        ]
        self.proc = subprocess.Popen(
            ["node", str(REPO / "tests" / "ts" / "oidc_provider.mjs"), str(self.port), json.dumps(clients), str(ACCESS_TTL)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "BERTH_NODE_MODULES": str(NODE_MODULES)},
        )
        # It prints warnings about its development defaults first.
        seen = [self.proc.stdout.readline() for _ in range(1)]
        while seen[-1] and not seen[-1].startswith("ready ") and len(seen) < 50:
            seen.append(self.proc.stdout.readline())
        assert seen[-1].startswith("ready "), "".join(seen)
        follow(self.proc, self.lines)

    def stop(self):
        self.proc.kill()
        self.proc.wait()

    def userinfo(self, token: str) -> httpx.Response:
        return httpx.get(f"{self.issuer}/me", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    idp = Idp(free_port(), base)
    berth = serve(tmp_path_factory.mktemp("broker"), "--no-examples", "--auth", "oauth", "--public-url", base,
                  "--oidc-issuer", idp.issuer, "--oidc-client-id", "berth-login", "--oidc-client-secret", LOGIN_SECRET,
                  "--oidc-scopes", "openid,email,profile,groups", "--oidc-admin-group", "team-dana", listen=f"127.0.0.1:{port}")
    provider = {"issuer": idp.issuer, "client_id": "berth-broker", "client_secret": BROKER_SECRET, "scopes": ["openid", "repo"]}
    res = httpx.put(f"{base}/admin/v1/providers/acme", json=provider, headers=berth.admin())
    assert res.status_code == 204, res.text
    listed = httpx.get(f"{base}/admin/v1/providers", headers=berth.admin()).json()
    assert listed["providers"][0]["id"] == "acme" and BROKER_SECRET not in json.dumps(listed)
    doc = first_party_manifest(name=CONNECTOR, isolation="user",
                               credentials=[{"provider": "acme", "inject": {"env": "BERTH_TEST_TOKEN"}}])
    assert post_manifest(berth, doc).status_code == 201
    doc = first_party_manifest(name=FILE_CONNECTOR, isolation="user",
                               credentials=[{"provider": "acme", "inject": {"file": TOKEN_FILE}}])
    assert post_manifest(berth, doc).status_code == 201
    yield berth, idp
    berth.stop()
    idp.stop()


def browse(browser: httpx.Client, url: str, user: str, stop_at: str = REDIRECT) -> httpx.Response:
    """Plays the user's browser from `url`: follows redirects between berth
    and the provider, signs in to the provider as `user` and consents there,
    and stops at a page, or at a redirect to `stop_at` (the MCP client's)."""
    res = browser.get(url)
    for _ in range(20):
        if res.is_redirect:
            nxt = urljoin(str(res.url), res.headers["location"])
            if nxt.startswith(stop_at):
                return res
            res = browser.get(nxt)
        elif "/interaction/" in str(res.url) and res.status_code == 200:
            action = re.search(r'action="([^"]+)"', res.text).group(1)
            form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', res.text))
            if 'name="login"' in res.text:
                form |= {"login": user, "password": "any"}
            res = browser.post(urljoin(str(res.url), action), data=form)
        elif "/oauth/authorize" in str(res.url) and res.status_code == 200 and "Signed in as" in res.text:
            assert f"Signed in as <b>{user}</b>" in res.text
            form = dict(re.findall(r'name=(id|csrf) value="([^"]+)"', res.text)) | {"decision": "approve"}
            res = browser.post(str(res.url).split("?")[0], data=form)
        else:
            return res
    raise AssertionError(f"browser loop at {res.url}")


def connect(berth, user: str) -> httpx.Client:
    """Signs `user` in to berth through the provider and connects their
    upstream account; returns their browser (cookies and all)."""
    browser = httpx.Client(follow_redirects=False, timeout=30)
    page = browse(browser, f"{berth.base}/connect/acme", user)
    assert page.status_code == 200 and "Connected" in page.text, page.text
    return browser


def sdk(berth, browser: httpx.Client, storage: Memory, connector: str = CONNECTOR):
    provider = sdk_provider(
        berth.mcp(connector), storage, lambda url: browse(browser, url, browser.user), "broker test"
    )
    return streamable_http_client(berth.mcp(connector), http_client=httpx2.AsyncClient(auth=provider, follow_redirects=False))


def host_pids(berth, user: str, connector: str = CONNECTOR) -> set[int]:
    """Host pids of `user`'s running instances, from the admin API."""
    rows = httpx.get(f"{berth.base}/admin/v1/instances", headers=berth.admin()).json()
    return {i["pid"] for r in rows if r["connector"].startswith(f"{connector}@") and r["pool"] == f"user:{user}"
            for i in r["instances"] if i["pid"]}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


async def whoami(berth, browser, storage: Memory, mode: str) -> dict:
    async with Client(sdk(berth, browser, storage), mode=mode) as c:
        res = await c.call_tool("whoami", {})
        assert not res.is_error, res
        return res.structured_content


async def test_each_user_gets_their_own_upstream_token_fresh(world):
    berth, idp = world
    browsers, storages, first, pids = {}, {}, {}, {}
    for user in ("alice", "bob"):
        browsers[user] = connect(berth, user)
        browsers[user].user = user
        storages[user] = Memory()
        first[user] = await whoami(berth, browsers[user], storages[user], "2026-07-28" if user == "alice" else "legacy")
        # The injected token is the user's own at the provider.
        info = idp.userinfo(first[user]["token"])
        assert info.status_code == 200 and info.json()["sub"] == user, info.text
        pids[user] = host_pids(berth, user)
        assert len(pids[user]) == 1
    assert first["alice"]["token"] != first["bob"]["token"]
    assert pids["alice"] != pids["bob"], "separate instances per user"

    # Past the renewal point berth refreshes the token and replaces the instance.
    time.sleep(ACCESS_TTL * 2 / 3 + 1)
    again = await whoami(berth, browsers["alice"], storages["alice"], "2026-07-28")
    assert again["token"] != first["alice"]["token"]
    assert idp.userinfo(again["token"]).json()["sub"] == "alice"
    assert host_pids(berth, "alice").isdisjoint(pids["alice"]), "a fresh instance holds the new token"
    old = next(iter(pids["alice"]))
    deadline = time.monotonic() + 10
    while alive(old) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(old), "the instance holding the old token was stopped once drained"

    # Nothing secret reaches berth's log.
    logs = "\n".join(berth.log_lines)
    for secret in (LOGIN_SECRET, BROKER_SECRET, first["alice"]["token"], again["token"], first["bob"]["token"]):
        assert secret not in logs


async def test_a_legacy_client_without_an_account_is_told_where_to_connect(world):
    """A legacy session opens anyway; a call is a tool error naming the
    connect link (what every client shows); once the user has connected,
    the same session's next call reaches their own instance."""
    berth, idp = world
    browser = httpx.Client(follow_redirects=False, timeout=30)
    browser.user = "carol"
    async with Client(sdk(berth, browser, Memory()), mode="legacy") as c:
        res = await c.call_tool("whoami", {})
        assert res.is_error and f"{berth.base}/connect/acme" in res.content[0].text, res
        page = browse(browser, f"{berth.base}/connect/acme", "carol")
        assert "Connected" in page.text, page.text
        res = await c.call_tool("whoami", {})
        assert not res.is_error and idp.userinfo(res.structured_content["token"]).json()["sub"] == "carol"


async def test_a_modern_client_is_asked_to_connect_and_retries(world):
    """2026-07-28 has no "URL elicitation required" error: the client gets
    a URL-mode elicitation in an InputRequiredResult, sends the user to
    connect, and its retry of the same call goes through."""
    berth, idp = world
    browser = httpx.Client(follow_redirects=False, timeout=30)
    browser.user = "frank"
    asked: list[str] = []

    async def on_elicit(ctx, params):
        asked.append(params.url)
        page = browse(browser, params.url, "frank")  # the user follows the link and connects
        assert page.status_code == 200 and "Connected" in page.text, page.text
        return types.ElicitResult(action="accept")

    async with Client(sdk(berth, browser, Memory()), mode="2026-07-28", elicitation_callback=on_elicit) as c:
        res = await c.call_tool("whoami", {})
    assert asked == [f"{berth.base}/connect/acme"]
    assert not res.is_error and idp.userinfo(res.structured_content["token"]).json()["sub"] == "frank"


async def test_a_token_file_is_renewed_in_place(world):
    """`"inject": {"file": …}`: the server reads the user's token from a
    file; when berth renews the token it replaces the file atomically, and
    the same instance reads the new one."""
    berth, idp = world
    browser = connect(berth, "hana")
    browser.user = "hana"
    storage = Memory()

    async def token_file():
        async with Client(sdk(berth, browser, storage, FILE_CONNECTOR), mode="2026-07-28") as c:
            res = await c.call_tool("read_file", {"path": TOKEN_FILE})
            env = (await c.call_tool("whoami", {})).structured_content
        assert res.structured_content["ok"], res.structured_content
        assert env["token"] is None, "a file credential is not in the environment"
        return res.structured_content["content"], host_pids(berth, "hana", FILE_CONNECTOR)

    first, pids = await token_file()
    assert idp.userinfo(first).json()["sub"] == "hana" and len(pids) == 1
    time.sleep(ACCESS_TTL * 2 / 3 + 2)
    again, same = await token_file()
    assert again != first and idp.userinfo(again).json()["sub"] == "hana"
    assert same == pids, "renewed in place: the instance was not replaced"
    assert first not in "\n".join(berth.log_lines) and again not in "\n".join(berth.log_lines)


def test_the_connect_callback_is_bound_to_the_user_who_started_it(world):
    berth, idp = world
    mallory = connect(berth, "mallory")
    # Mallory starts a connection and hands the provider's callback to Dave.
    start = mallory.get(f"{berth.base}/connect/acme")
    assert start.is_redirect and start.headers["location"].startswith(idp.issuer)
    state = parse_qs(urlparse(start.headers["location"]).query)["state"][0]
    dave = connect(berth, "dave")
    res = dave.get(f"{berth.base}/connect/callback", params={"state": state, "code": "stolen"})
    assert res.status_code == 403 and "another user" in res.text
    # And a callback without a berth session is refused outright.
    assert httpx.get(f"{berth.base}/connect/callback", params={"state": state, "code": "x"}).status_code == 401


def test_bad_provider_configuration_is_refused(world):
    berth, idp = world
    bad = httpx.put(f"{berth.base}/admin/v1/providers/nowhere", json={"issuer": "http://127.0.0.1:9", "client_id": "x"}, headers=berth.admin())
    assert bad.status_code == 422 and "discovery" in bad.json()["error"]
    unknown = httpx.put(f"{berth.base}/admin/v1/providers/typo", json={"issuer": idp.issuer, "clientId": "x"}, headers=berth.admin())
    assert unknown.status_code == 400
    assert httpx.get(f"{berth.base}/admin/v1/providers").status_code == 401


async def test_a_grant_the_provider_forgot_needs_connecting_again(world):
    berth, idp = world
    browser = connect(berth, "erin")
    browser.user = "erin"
    storage = Memory()
    assert (await whoami(berth, browser, storage, "legacy"))["token"]
    idp.stop()
    idp.start()  # a fresh provider: every grant and refresh token is gone
    time.sleep(ACCESS_TTL * 2 / 3 + 1)
    async with Client(sdk(berth, browser, storage), mode="legacy") as c:
        res = await c.call_tool("whoami", {})
    said = res.content[0].text
    assert res.is_error and "connected again" in said and f"{berth.base}/connect/acme" in said, said
    # Connecting again fixes it.
    page = browse(browser, f"{berth.base}/connect/acme", "erin")
    assert "Connected" in page.text, page.text
    assert idp.userinfo((await whoami(berth, browser, storage, "legacy"))["token"]).json()["sub"] == "erin"


def test_the_providers_groups_make_admins(world):
    berth, _ = world
    dana = connect(berth, "dana")
    listed = httpx.get(f"{berth.base}/admin/v1/groups", headers=berth.admin()).json()
    assert listed.get("team-dana") == {"dana": ["oidc"]}, listed
    # Dana's groups claim puts her in the admin group (--oidc-admin-group team-dana).
    res = dana.post(f"{berth.base}/account/tokens", json={"name": "ops", "admin": True})
    assert res.status_code == 201, res.text
    admin = {"Authorization": f"Bearer {res.json()['token']}"}
    assert httpx.get(f"{berth.base}/admin/v1/instances", headers=admin).status_code == 200
    # Out of the group, the token she minted through it no longer opens the admin API.
    assert httpx.delete(f"{berth.base}/admin/v1/groups/team-dana/members/dana", headers=berth.admin()).status_code == 204
    refused = httpx.get(f"{berth.base}/admin/v1/instances", headers=admin)
    assert refused.status_code == 403 and "no longer in team-dana" in refused.json()["error"], refused.text
    assert httpx.put(f"{berth.base}/admin/v1/groups/team-dana/members/dana", headers=berth.admin()).status_code == 204
    assert httpx.get(f"{berth.base}/admin/v1/instances", headers=admin).status_code == 200, "back in, it works again"
    erin = connect(berth, "erin")
    res = erin.post(f"{berth.base}/account/tokens", json={"name": "ops", "admin": True})
    assert res.status_code == 403 and "admin group" in res.json()["error"]
    res = dana.post(f"{berth.base}/account/tokens", json={"name": "x", "user": "erin"})
    assert res.status_code == 403, "self-service tokens are for oneself"
