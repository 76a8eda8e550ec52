"""Personal access tokens: made by an admin (any user, optionally admin)
or by a signed-in user (their own), scoped to connectors, expiring,
revocable, stored only as hashes, and never logged."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from mcp_http import messages, modern_body, modern_headers
from test_catalog import first_party_manifest, post_manifest, serve
from test_oauth import authorize_url, pkce, register

PASSWORD = "canary-password-7d2e"
ONE, TWO = "dev.berth.test/pat-one", "dev.berth.test/pat-two"


@pytest.fixture(scope="module")
def berth(tmp_path_factory):
    s = serve(tmp_path_factory.mktemp("pats"), "--no-examples", "--auth", "oauth", "--dev-user", f"alice:{PASSWORD}")
    for name in (ONE, TWO):
        assert post_manifest(s, first_party_manifest(name=name)).status_code == 201
    yield s
    s.stop()


def echo(berth, connector: str, token: str) -> httpx.Response:
    body = modern_body("tools/call", {"name": "echo", "arguments": {"text": "pat ✓"}})
    return httpx.post(berth.mcp(connector), json=body, headers=modern_headers(body, Authorization=f"Bearer {token}"), timeout=60)


def make(berth, **body) -> httpx.Response:
    return httpx.post(f"{berth.base}/admin/v1/tokens", json=body, headers=berth.admin())


def test_a_scoped_token_calls_its_connector_only_until_revoked(berth):
    res = make(berth, user="alice", name="ci", connectors=[ONE])
    assert res.status_code == 201 and res.headers["cache-control"] == "no-store"
    token, pat_id = res.json()["token"], res.json()["id"]
    ok = echo(berth, ONE, token)
    assert ok.status_code == 200 and messages(ok)[-1]["result"]["content"][0]["text"] == "pat ✓"
    other = echo(berth, TWO, token)
    assert other.status_code == 401 and "not scoped" in other.headers["www-authenticate"]
    # Listing never shows the token; revoking ends it.
    listed = httpx.get(f"{berth.base}/admin/v1/tokens", params={"user": "alice"}, headers=berth.admin()).json()
    assert pat_id in [t["id"] for t in listed["tokens"]] and token not in str(listed)
    assert httpx.delete(f"{berth.base}/admin/v1/tokens/{pat_id}", headers=berth.admin()).status_code == 204
    assert echo(berth, ONE, token).status_code == 401
    # Stored as a hash only, and never logged.
    db = (berth.data_dir / "catalog.db").read_bytes() + b"".join(p.read_bytes() for p in berth.data_dir.glob("catalog.db-*"))
    assert token.encode() not in db
    assert token not in "\n".join(berth.log_lines)


def test_tokens_expire(berth):
    token = make(berth, user="alice", name="brief", expires_in=1).json()["token"]
    assert echo(berth, ONE, token).status_code == 200
    time.sleep(1.5)
    res = echo(berth, ONE, token)
    assert res.status_code == 401 and "expired" in res.headers["www-authenticate"]
    assert make(berth, user="alice", name="forever", expires_in=10**9).status_code == 400


def test_only_admin_tokens_open_the_admin_api(berth):
    plain = make(berth, user="alice", name="plain").json()["token"]
    admin = make(berth, user="ops", name="ops", admin=True).json()["token"]
    url = f"{berth.base}/admin/v1/connectors"
    assert httpx.get(url, headers={"Authorization": f"Bearer {plain}"}).status_code == 403
    assert httpx.get(url, headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    assert httpx.get(url, headers={"Authorization": "Bearer berth_pat_forged"}).status_code == 403
    assert make(berth, name="nobody's").status_code == 400, "an admin names the user"


def signed_in(berth, user="alice", password=PASSWORD) -> httpx.Client:
    """A browser signed in to berth through the consent page."""
    browser = httpx.Client()
    client_id = register(berth).json()["client_id"]
    page = browser.get(authorize_url(berth, client_id, pkce()[1]))
    form = dict(re.findall(r'name=(id|csrf) value="([^"]+)"', page.text))
    res = browser.post(f"{berth.base}/oauth/authorize", data=form | {"username": user, "password": password, "decision": "approve"})
    assert res.status_code in (302, 303), res.text
    return browser


def test_a_signed_in_user_manages_their_own_tokens(berth):
    url = f"{berth.base}/account/tokens"
    assert httpx.get(url).status_code == 401
    browser = signed_in(berth)
    res = browser.post(url, json={"name": "laptop", "connectors": [TWO]})
    assert res.status_code == 201 and res.json()["user"] == "alice" and not res.json()["admin"]
    token, pat_id = res.json()["token"], res.json()["id"]
    assert echo(berth, TWO, token).status_code == 200
    # A cross-site form cannot mint one, and a user cannot mint admin or someone else's.
    assert browser.post(url, data={"name": "x"}).status_code == 415
    assert browser.post(url, json={"name": "x", "admin": True}).status_code == 403
    assert browser.post(url, json={"name": "x", "user": "bob"}).status_code == 403
    assert [t["user"] for t in browser.get(url).json()["tokens"]] == ["alice"] * len(browser.get(url).json()["tokens"])
    other = make(berth, user="bob", name="bob's").json()["id"]
    assert browser.delete(f"{url}/{other}").status_code == 404, "not theirs to revoke"
    assert browser.delete(f"{url}/{pat_id}").status_code == 204
    assert echo(berth, TWO, token).status_code == 401


def test_replicas_on_one_database_agree_on_tokens_within_seconds(tmp_path):
    """Two `berth serve` replicas share PostgreSQL (as behind a load
    balancer): a token made on one works on the other, and one revoked on
    either stops working on both, within a few seconds."""
    from conftest import wait_for
    from test_catalog import fresh_postgres_database

    db = fresh_postgres_database()
    flags = ["--no-examples", "--database", db, "--auth", "oauth", "--admin-token", "replicas-admin-7f2e"]
    a = serve(tmp_path / "a", *flags)
    b = serve(tmp_path / "b", *flags)
    try:
        admin = {"Authorization": "Bearer replicas-admin-7f2e"}
        made = httpx.post(f"{a.base}/admin/v1/tokens", json={"user": "ops", "name": "both", "admin": True}, headers=admin)
        assert made.status_code == 201, made.text
        bearer = {"Authorization": f"Bearer {made.json()['token']}"}

        def status(replica) -> int:
            return httpx.get(f"{replica.base}/admin/v1/connectors", headers=bearer).status_code

        assert status(a) == 200
        assert wait_for(lambda: status(b) == 200, timeout=6), "the token never worked on the other replica"
        gone = httpx.delete(f"{b.base}/admin/v1/tokens/{made.json()['id']}", headers=admin)
        assert gone.status_code == 204
        refused = (401, 403)
        assert status(b) in refused
        assert wait_for(lambda: status(a) in refused, timeout=6), "a token revoked on one replica still works on the other"

        # A client registered through one replica is known to the other.
        client_id = register(a).json()["client_id"]
        _, challenge = pkce()

        def known_on_b(cid: str) -> bool:
            page = httpx.get(authorize_url(b, cid, challenge, resource=f"{b.base}/mcp/x"))
            return "unknown client_id" not in page.text

        assert not known_on_b("never-registered")
        assert wait_for(lambda: known_on_b(client_id), timeout=6), "a client registered on one replica is unknown to the other"
    finally:
        a.stop()
        b.stop()
