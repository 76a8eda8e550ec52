"""Users in the admin API: everyone berth knows of, gathered from sign-ins,
tokens, groups, policies and the audit trail; and offboarding, which takes
back in one call everything berth handed a user — tried by using each
thing again afterwards, including after a restart."""

from __future__ import annotations

import time

import httpx
import pytest

from mcp_http import messages, modern_body, modern_headers
from test_catalog import first_party_manifest, post_manifest, serve
from test_oauth import PASSWORD, REDIRECT, code_for, exchange, pkce, register

CONNECTOR = "dev.berth.test/staffed"


def start(data_dir, port=None):
    listen = {"listen": f"127.0.0.1:{port}"} if port else {}
    extra = ("--public-url", f"http://127.0.0.1:{port}") if port else ()
    return serve(data_dir, "--no-examples", "--auth", "oauth", "--dev-user", f"alice:{PASSWORD}",
                 "--dev-user", f"bob:{PASSWORD}", *extra, **listen)


def sign_in(berth, user: str) -> tuple[str, str, str]:
    """An access token, a refresh token and the client, by the whole flow."""
    client = register(berth).json()["client_id"]
    verifier, challenge = pkce()
    got = code_for(berth, client, challenge, user=user, resource=berth.mcp(CONNECTOR))
    res = exchange(berth, grant_type="authorization_code", code=got["code"], client_id=client, redirect_uri=REDIRECT,
                   code_verifier=verifier).json()
    return res["access_token"], res["refresh_token"], client


def pat(berth, user: str) -> str:
    res = httpx.post(f"{berth.base}/admin/v1/tokens", json={"user": user, "name": "users test"}, headers=berth.admin())
    assert res.status_code == 201, res.text
    return res.json()["token"]


def echo(berth, token: str, text: str) -> httpx.Response:
    body = modern_body("tools/call", {"name": "echo", "arguments": {"text": text}})
    return httpx.post(berth.mcp(CONNECTOR), json=body, headers=modern_headers(body, Authorization=f"Bearer {token}"), timeout=60)


def users(berth) -> dict[str, dict]:
    res = httpx.get(f"{berth.base}/admin/v1/users", headers=berth.admin())
    assert res.status_code == 200, res.text
    return {u["user"]: u for u in res.json()}


def test_users_are_listed_and_offboarding_takes_everything_back(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    berth = start(tmp_path, port)
    try:
        assert post_manifest(berth, first_party_manifest(name=CONNECTOR, isolation="user")).status_code == 201
        access, refresh, client = sign_in(berth, "alice")
        alice_pat, bob_pat = pat(berth, "alice"), pat(berth, "bob")
        admin = berth.admin()
        assert httpx.put(f"{berth.base}/admin/v1/groups/ops/members/alice", headers=admin).status_code == 204
        policy = httpx.put(f"{berth.base}/admin/v1/connectors/{CONNECTOR}/policies/alice", json={"deny": ["crash"]}, headers=admin)
        assert policy.status_code == 204
        assert messages(echo(berth, access, "hi"))[-1]["result"]["content"][0]["text"] == "hi"
        assert echo(berth, alice_pat, "pat").status_code == 200

        deadline = time.monotonic() + 10
        while users(berth).get("alice", {}).get("lastCallMs") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        alice = users(berth)["alice"]
        assert alice["groups"] == ["ops"] and alice["tokens"] == 1 and alice["signedIn"] is True
        assert alice["policies"] == [CONNECTOR] and alice["lastCallMs"] > 0 and alice["accounts"] == []
        assert users(berth)["bob"]["tokens"] == 1 and users(berth)["bob"]["signedIn"] is False
        assert httpx.get(f"{berth.base}/admin/v1/users/alice", headers=admin).json() == alice
        assert httpx.get(f"{berth.base}/admin/v1/users/nobody", headers=admin).status_code == 404

        res = httpx.post(f"{berth.base}/admin/v1/users/alice/offboard", headers=admin)
        assert res.status_code == 200, res.text
        done = res.json()
        assert done["tokensRevoked"] == 1 and done["signInsEnded"] == 1 and done["groupsLeft"] == 1
        assert done["policiesRemoved"] == 1 and done["instancesStopped"] == 1, done

        # Everything she held is refused now; bob is untouched.
        for token in (access, alice_pat):
            refused = echo(berth, token, "after")
            assert refused.status_code == 401 and "after" not in refused.text, refused.text
        assert "signed out" in echo(berth, access, "x").headers["www-authenticate"]
        assert exchange(berth, grant_type="refresh_token", refresh_token=refresh, client_id=client).json()["error"] == "invalid_grant"
        assert echo(berth, bob_pat, "bob").status_code == 200
        after = users(berth)["alice"]
        assert after["tokens"] == 0 and after["groups"] == [] and after["policies"] == [] and not after["signedIn"]
        assert after["lastCallMs"] == alice["lastCallMs"], "the audit trail keeps her records"
        again = httpx.post(f"{berth.base}/admin/v1/users/alice/offboard", headers=admin).json()
        assert again["tokensRevoked"] == again["signInsEnded"] == again["groupsLeft"] == 0
        # She can sign in again (the identity provider decides who exists); new tokens work. Token
        # times are whole seconds, so one issued in the second of the sign-out is refused too: wait it out.
        time.sleep(1.1)
        fresh, _, _ = sign_in(berth, "alice")
        assert echo(berth, fresh, "back").status_code == 200
    finally:
        assert berth.stop() == 0
    # The sign-out is stored: her old access token stays refused after a restart.
    berth = start(tmp_path, port)
    try:
        assert echo(berth, access, "after restart").status_code == 401
        assert echo(berth, fresh, "still good").status_code == 200
    finally:
        assert berth.stop() == 0


def test_offboarding_needs_a_user_and_the_admin_token(tmp_path):
    berth = start(tmp_path)
    try:
        assert httpx.post(f"{berth.base}/admin/v1/users/alice/offboard").status_code == 401
        assert httpx.get(f"{berth.base}/admin/v1/users").status_code == 401
        res = httpx.post(f"{berth.base}/admin/v1/users/group:ops/offboard", headers=berth.admin())
        assert res.status_code == 400 and "not a group" in res.json()["error"]
    finally:
        assert berth.stop() == 0
