"""Client ID Metadata Documents: a client whose client_id is an https URL
is described by the document there, which berth fetches (over real TLS, from
a loopback server with its own CA) — with the official Python SDK, and by
hand for the refusals: a document that names another client, a private
address berth was not told to allow, a certificate it does not trust."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import re
import ssl
import threading
from urllib.parse import parse_qs, urlparse

import httpx
import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from test_catalog import first_party_manifest, post_manifest, serve
from test_oauth import PASSWORD, REDIRECT, Memory, authorize_url, consent, exchange, pkce, sdk_provider

pytestmark = pytest.mark.anyio
CONNECTOR = "dev.berth.test/oauth"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def certificate(tmp_path):
    """A private CA, and a certificate it signed for 127.0.0.1 with its key,
    as files: (CA, certificate, key)."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def build(subject, issuer, public_key, signer, ca: bool, san=None):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
            b = b.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth test CA")])
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    ca = build(ca_name, ca_name, ca_key.public_key(), ca_key, True)
    leaf = build(leaf_name, ca_name, key.public_key(), ca_key, False, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    files = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return files


class DocumentSite:
    """An https server on loopback serving client metadata documents."""

    def __init__(self, cert_file, key_file):
        self.documents: dict[str, dict] = {}
        self.fetches: list[str] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                site.fetches.append(self.path)
                doc = site.documents.get(self.path)
                body = json.dumps(doc).encode() if doc is not None else b"{}"
                self.send_response(200 if doc is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.base = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, path: str, **doc) -> str:
        url = self.base + path
        self.documents[path] = {"client_id": url, **doc}
        return url


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cimd")
    ca_file, cert_file, key_file = certificate(tmp)
    site = DocumentSite(cert_file, key_file)
    berth = serve(tmp / "berth", "--no-examples", "--auth", "oauth", "--dev-user", f"alice:{PASSWORD}",
                  "--extra-ca", str(ca_file), "--client-documents-allow-private")
    assert post_manifest(berth, first_party_manifest(name=CONNECTOR)).status_code == 201
    yield berth, site, ca_file
    berth.stop()
    site.server.shutdown()


async def test_the_sdk_identifies_itself_by_its_metadata_document(world):
    berth, site, _ = world
    url = site.publish("/sdk/client.json", client_name="Doc Client", redirect_uris=[REDIRECT])
    metadata = httpx.get(f"{berth.base}/.well-known/oauth-authorization-server").json()
    assert metadata["client_id_metadata_document_supported"] is True
    def approve(authorize: str) -> httpx.Response:
        assert parse_qs(urlparse(authorize).query)["client_id"] == [url], "no registration: the URL is the id"
        return consent(authorize)

    provider = sdk_provider(berth.mcp(CONNECTOR), Memory(), approve, "Doc Client", client_metadata_url=url)
    http = httpx2.AsyncClient(auth=provider, follow_redirects=False)
    async with Client(streamable_http_client(berth.mcp(CONNECTOR), http_client=http), mode="2026-07-28") as c:
        res = await c.call_tool("echo", {"text": "by document"})
    assert res.content[0].text == "by document"
    assert "/sdk/client.json" in site.fetches


def refusal(berth, client_id: str) -> str:
    page = httpx.get(authorize_url(berth, client_id, pkce()[1]))
    assert page.status_code == 400, page.text
    return page.text


def test_a_document_that_names_another_client_is_refused(world):
    berth, site, _ = world
    url = site.publish("/liar.json", redirect_uris=[REDIRECT])
    site.documents["/liar.json"]["client_id"] = site.base + "/someone-else.json"
    assert "not its own URL" in refusal(berth, url)
    assert "no redirect_uris" in refusal(berth, site.publish("/empty.json"))
    assert "404" in refusal(berth, site.base + "/missing.json")
    # A redirect URI the document does not list is refused like any other.
    url = site.publish("/strict.json", redirect_uris=[REDIRECT])
    page = httpx.get(authorize_url(berth, url, pkce()[1], redirect="http://127.0.0.1:9/elsewhere"))
    assert page.status_code == 400 and "exact match" in page.text


def test_a_code_is_redeemed_by_the_document_client_only(world):
    berth, site, _ = world
    url = site.publish("/hand/client.json", client_name="Hand", redirect_uris=[REDIRECT])
    verifier, challenge = pkce()
    authorize = authorize_url(berth, url, challenge)
    with httpx.Client() as browser:
        page = browser.get(authorize)
        assert "Hand (127.0.0.1)" in page.text, "the consent page names the document's host"
        form = dict(re.findall(r'name=(id|csrf) value="([^"]+)"', page.text))
        form |= {"username": "alice", "password": PASSWORD, "decision": "approve"}
        res = browser.post(authorize.split("?")[0], data=form)
    code = parse_qs(urlparse(res.headers["location"]).query)["code"][0]
    tokens = exchange(berth, grant_type="authorization_code", code=code, client_id=url, redirect_uri=REDIRECT,
                      code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    again = exchange(berth, grant_type="refresh_token", refresh_token=tokens.json()["refresh_token"], client_id=url)
    assert again.status_code == 200, again.text
    other = site.publish("/other.json", redirect_uris=[REDIRECT])
    stolen = exchange(berth, grant_type="refresh_token", refresh_token=again.json()["refresh_token"], client_id=other)
    assert stolen.json()["error"] == "invalid_grant"


def test_private_addresses_and_unknown_certificates_are_refused(world, tmp_path):
    _, site, ca_file = world
    url = site.publish("/fenced.json", redirect_uris=[REDIRECT])
    # Without --client-documents-allow-private: loopback is not fetched at all.
    fenced = serve(tmp_path / "fenced", "--no-examples", "--auth", "oauth", "--extra-ca", str(ca_file))
    try:
        before = len(site.fetches)
        assert "resolves to no public address" in refusal(fenced, url)
        assert len(site.fetches) == before, "nothing was fetched"
    finally:
        fenced.stop()
    # Without --extra-ca: the site's certificate is not trusted.
    untrusting = serve(tmp_path / "untrusting", "--no-examples", "--auth", "oauth", "--client-documents-allow-private")
    try:
        said = refusal(untrusting, url)
        assert "cannot be used" in said and "fetching it" in said, said
    finally:
        untrusting.stop()
