"""berth as the OAuth 2.1 authorization server of its MCP URLs: the
official Python SDK's OAuth client goes through discovery, dynamic
registration, PKCE authorization (the consent page driven by this test)
and token exchange, then calls tools in both eras; and every misuse the
spec warns about is refused."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import socket
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from conftest import TESTSERVER
from mcp_http import messages, modern_body, modern_headers
from test_catalog import first_party_manifest, fresh_postgres_database, post_manifest, serve

pytestmark = pytest.mark.anyio
CONNECTOR = "dev.berth.test/protected"
OTHER = "dev.berth.test/protected-other"
PASSWORD = "canary-password-9f1c"
REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def berth(tmp_path_factory):
    s = serve(tmp_path_factory.mktemp("oauth"), "--no-examples", "--auth", "oauth", "--dev-user", f"alice:{PASSWORD}")
    for name in (CONNECTOR, OTHER):
        assert post_manifest(s, first_party_manifest(name=name)).status_code == 201
    yield s
    s.stop()


class Memory:
    """The SDK's token storage, in memory."""

    def __init__(self):
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info):
        self.client = info


def consent(authorize_url: str, *, user="alice", password=PASSWORD, decision="approve", tamper_csrf=False) -> httpx.Response:
    """Plays the user: opens the consent page, signs in and answers."""
    with httpx.Client() as browser:
        page = browser.get(authorize_url)
        assert page.status_code == 200, page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        form = dict(re.findall(r'name=(id|csrf) value="([^"]+)"', page.text))
        if tamper_csrf:
            form["csrf"] = "0" * 32
        form |= {"username": user, "password": password, "decision": decision}
        return browser.post(authorize_url.split("?")[0], data=form)


def sdk_provider(url: str, storage: Memory, approve, client_name: str, **kw) -> OAuthClientProvider:
    """The official SDK's OAuth client for `url`, whose consent step is
    `approve(authorize_url)` (a response redirecting back with the code);
    `kw` goes to the provider (e.g. `client_metadata_url`)."""
    captured: dict = {}

    async def redirect_handler(authorize_url: str) -> None:
        res = approve(authorize_url)
        assert res.status_code in (302, 303), res.text
        captured.update({k: v[0] for k, v in parse_qs(urlparse(res.headers["location"]).query).items()})

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=captured["code"], state=captured.get("state"), iss=captured.get("iss"))

    return OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(client_name=client_name, redirect_uris=[REDIRECT], scope="mcp"),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        **kw,
    )


def sdk_client(berth, url: str, storage: Memory):
    provider = sdk_provider(url, storage, consent, "SDK <b>test</b>")
    return streamable_http_client(url, http_client=httpx2.AsyncClient(auth=provider, follow_redirects=False))


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_sdk_authorizes_and_calls_through_berth(berth, mode):
    url = berth.mcp(CONNECTOR)
    storage = Memory()
    async with Client(sdk_client(berth, url, storage), mode=mode) as c:
        res = await c.call_tool("echo", {"text": "authorized ✓"})
        assert res.content[0].text == "authorized ✓"
    token = storage.tokens.access_token
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["aud"] == url and claims["sub"] == "alice" and claims["iss"] == berth.base
    # The same token on another connector's URL is refused: it is bound to its resource.
    other = httpx.post(berth.mcp(OTHER), json={}, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert other.status_code == 401 and 'error="invalid_token"' in other.headers["www-authenticate"]
    # No log line carries the token or the password.
    logs = "\n".join(berth.log_lines)
    assert token not in logs and PASSWORD not in logs and storage.tokens.refresh_token not in logs


def test_unauthenticated_calls_get_a_pointer_to_the_metadata(berth):
    res = httpx.post(berth.mcp(CONNECTOR), json={}, headers={"Content-Type": "application/json"})
    assert res.status_code == 401
    m = re.search(r'resource_metadata="([^"]+)"', res.headers["www-authenticate"])
    prm = httpx.get(m.group(1)).json()
    assert prm["resource"] == berth.mcp(CONNECTOR) and prm["authorization_servers"] == [berth.base]
    meta = httpx.get(f"{berth.base}/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == berth.base and meta["code_challenge_methods_supported"] == ["S256"]
    jwks = httpx.get(meta["jwks_uri"]).json()
    assert jwks["keys"][0]["kty"] == "OKP" and "d" not in jwks["keys"][0]
    garbage = httpx.post(berth.mcp(CONNECTOR), json={}, headers={"Authorization": "Bearer not.a.jwt", "Content-Type": "application/json"})
    assert garbage.status_code == 401


# --- the flow by hand, to misuse each step --------------------------------------------------------


def register(berth, redirect=REDIRECT, name="hand-rolled"):
    return httpx.post(f"{berth.base}/oauth/register", json={"redirect_uris": [redirect], "client_name": name})


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(berth, client_id, challenge, state=None, resource=None, redirect=REDIRECT):
    state = "s-" + secrets.token_hex(8) if state is None else state
    q = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect, "state": state,
         "code_challenge": challenge, "code_challenge_method": "S256", "resource": resource or berth.mcp(CONNECTOR)}
    return f"{berth.base}/oauth/authorize?{urlencode(q)}"


def code_for(berth, client_id, challenge, user="alice", **kw) -> dict:
    res = consent(authorize_url(berth, client_id, challenge, **kw), user=user)
    assert res.status_code in (302, 303), res.text
    return {k: v[0] for k, v in parse_qs(urlparse(res.headers["location"]).query).items()}


def exchange(berth, **form):
    return httpx.post(f"{berth.base}/oauth/token", data=form)


def test_a_code_works_once_and_its_replay_revokes_the_tokens(berth):
    client = register(berth).json()["client_id"]
    verifier, challenge = pkce()
    got = code_for(berth, client, challenge)
    assert got["iss"] == berth.base
    form = {"grant_type": "authorization_code", "code": got["code"], "client_id": client, "redirect_uri": REDIRECT, "code_verifier": verifier}
    first = exchange(berth, **form)
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    replay = exchange(berth, **form)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    refreshed = exchange(berth, grant_type="refresh_token", refresh_token=first.json()["refresh_token"], client_id=client)
    assert refreshed.json()["error"] == "invalid_grant", "the replay revoked the refresh token"


def test_a_reused_refresh_token_revokes_its_family(berth):
    client = register(berth).json()["client_id"]
    verifier, challenge = pkce()
    got = code_for(berth, client, challenge)
    tokens = exchange(berth, grant_type="authorization_code", code=got["code"], client_id=client, redirect_uri=REDIRECT, code_verifier=verifier).json()
    r1 = tokens["refresh_token"]
    r2 = exchange(berth, grant_type="refresh_token", refresh_token=r1, client_id=client).json()["refresh_token"]
    reuse = exchange(berth, grant_type="refresh_token", refresh_token=r1, client_id=client)
    assert reuse.json()["error"] == "invalid_grant"
    assert exchange(berth, grant_type="refresh_token", refresh_token=r2, client_id=client).json()["error"] == "invalid_grant"


def test_mismatched_redirect_and_verifier_are_refused(berth):
    client = register(berth).json()["client_id"]
    verifier, challenge = pkce()
    got = code_for(berth, client, challenge)
    wrong_redirect = exchange(berth, grant_type="authorization_code", code=got["code"], client_id=client, redirect_uri="http://127.0.0.1:9/other", code_verifier=verifier)
    assert wrong_redirect.json()["error"] == "invalid_grant"
    got = code_for(berth, client, challenge)
    wrong_verifier = exchange(berth, grant_type="authorization_code", code=got["code"], client_id=client, redirect_uri=REDIRECT, code_verifier=pkce()[0])
    assert wrong_verifier.json()["error"] == "invalid_grant"
    # An unregistered redirect URI never gets a redirect at all.
    page = httpx.get(authorize_url(berth, client, challenge, redirect="http://127.0.0.1:9/elsewhere"))
    assert page.status_code == 400 and "location" not in page.headers


def test_state_is_required_and_single_use(berth):
    client = register(berth).json()["client_id"]
    _, challenge = pkce()
    missing = httpx.get(authorize_url(berth, client, challenge, state=""))
    assert missing.status_code in (302, 303) and "error=invalid_request" in missing.headers["location"]
    httpx.get(authorize_url(berth, client, challenge, state="once"))
    again = httpx.get(authorize_url(berth, client, challenge, state="once"))
    assert again.status_code in (302, 303) and "already+used" in again.headers["location"]


def test_consent_without_the_anti_forgery_value_or_password_is_refused(berth):
    client = register(berth).json()["client_id"]
    _, challenge = pkce()
    assert consent(authorize_url(berth, client, challenge), tamper_csrf=True).status_code == 403
    assert consent(authorize_url(berth, client, challenge), password="wrong").status_code == 401
    denied = consent(authorize_url(berth, client, challenge), decision="deny")
    assert "error=access_denied" in denied.headers["location"]


def test_hostile_registrations_are_refused(berth):
    for redirect in ["javascript:alert(1)", "http://evil.example/cb", "https://a.example/cb#x", "data:text/html,x"]:
        res = register(berth, redirect=redirect)
        assert res.status_code == 400 and res.json()["error"] == "invalid_redirect_uri", redirect
    # A name with markup is shown escaped on the consent page.
    client = register(berth, name="<script>alert(1)</script>").json()["client_id"]
    page = httpx.get(authorize_url(berth, client, pkce()[1]))
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text


def token_for(berth, user="alice", resource=None) -> str:
    """An access token for `user`, by the whole flow."""
    client = register(berth).json()["client_id"]
    verifier, challenge = pkce()
    got = code_for(berth, client, challenge, user=user, resource=resource)
    res = exchange(berth, grant_type="authorization_code", code=got["code"], client_id=client, redirect_uri=REDIRECT, code_verifier=verifier)
    return res.json()["access_token"]


def test_a_resource_of_another_server_is_refused(berth):
    client = register(berth).json()["client_id"]
    res = httpx.get(authorize_url(berth, client, pkce()[1], resource="https://elsewhere.example/mcp/x"))
    assert res.status_code in (302, 303) and "error=invalid_target" in res.headers["location"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_clients_and_refresh_tokens_survive_a_restart(tmp_path, database):
    db = ["--database", fresh_postgres_database()] if database == "postgres" else []
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ("--no-examples", "--auth", "oauth", "--dev-user", f"alice:{PASSWORD}", "--public-url", base, *db)
    first = serve(tmp_path, *args, listen=f"127.0.0.1:{port}")
    try:
        assert post_manifest(first, first_party_manifest(name=CONNECTOR)).status_code == 201
        client = register(first).json()["client_id"]
        verifier, challenge = pkce()
        got = code_for(first, client, challenge)
        r1 = exchange(first, grant_type="authorization_code", code=got["code"], client_id=client,
                      redirect_uri=REDIRECT, code_verifier=verifier).json()["refresh_token"]
        r2 = exchange(first, grant_type="refresh_token", refresh_token=r1, client_id=client).json()["refresh_token"]
    finally:
        assert first.stop() == 0
    second = serve(tmp_path, *args, listen=f"127.0.0.1:{port}")
    try:
        # The registration is still there: its authorization page renders.
        assert httpx.get(authorize_url(second, client, challenge)).status_code == 200
        refreshed = exchange(second, grant_type="refresh_token", refresh_token=r2, client_id=client)
        assert refreshed.status_code == 200, refreshed.text
        access = refreshed.json()["access_token"]
        body = modern_body("tools/call", {"name": "echo", "arguments": {"text": "after restart"}})
        res = httpx.post(second.mcp(CONNECTOR), json=body, headers=modern_headers(body, Authorization=f"Bearer {access}"), timeout=60)
        assert res.status_code == 200, res.text
        assert messages(res)[-1]["result"]["content"][0]["text"] == "after restart"
        # r1 was spent before the restart: its reuse still revokes the family.
        assert exchange(second, grant_type="refresh_token", refresh_token=r1, client_id=client).json()["error"] == "invalid_grant"
        r3 = refreshed.json()["refresh_token"]
        assert exchange(second, grant_type="refresh_token", refresh_token=r3, client_id=client).json()["error"] == "invalid_grant"
    finally:
        second.stop()
