"""The admin API against its own OpenAPI 3.1 document: schemathesis (from
PyPI) reads /admin/v1/openapi.json from a live berth, generates requests for
every operation (valid and invalid ones, with and without the admin token),
and checks every answer: no server error, a documented status, content type
and headers, a body matching the documented schema, invalid input refused.

The berth has something to find: a published connector with a declared
secret, a user policy, a token, a running instance and audit records; the
schemathesis config points path parameters at them, so operations reach their
real logic instead of answering 404 throughout."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import VENV_BIN
from mcp_http import messages, modern_body, modern_headers
from test_catalog import first_party_manifest, post_manifest, serve

NAMESPACE, SHORT = "dev.berth.test", "openapi"
NAME = f"{NAMESPACE}/{SHORT}"
SECRET = "BERTH_TEST_TOKEN"
SCHEMATHESIS = VENV_BIN / "schemathesis"
# Each check is one promise of the document; `positive_data_acceptance` is
# left out because a schema cannot say everything a valid manifest or a
# resolvable OAuth provider is (it would call every refused manifest a bug).
CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
    "missing_required_header", "ignored_auth", "unsupported_method", "allow_header_conformance",
    "use_after_free",
])


@pytest.fixture(scope="module")
def berth(tmp_path_factory):
    s = serve(tmp_path_factory.mktemp("openapi"), "--no-examples", "--auth", "oauth", "--dev-user", "alice:pw-9f2c")
    doc = first_party_manifest(name=NAME)
    doc["packages"][0]["environmentVariables"] = [{"name": SECRET, "isSecret": True, "description": "a token"}]
    assert post_manifest(s, doc).status_code == 201
    secret = httpx.put(f"{s.base}/admin/v1/connectors/{NAME}/secrets/{SECRET}", json={"value": "v"}, headers=s.admin())
    assert secret.status_code == 204
    policy = httpx.put(f"{s.base}/admin/v1/connectors/{NAME}/policies/alice", json={"deny": ["whoami"]}, headers=s.admin())
    assert policy.status_code == 204
    yield s
    s.stop()


def restore(berth) -> None:
    """Undoes what a schemathesis run may have done that matters here: a
    withdrawn version, a policy refusing alice everything."""
    status = httpx.put(f"{berth.base}/admin/v1/connectors/{NAME}/versions/1.0.0/status", json={"status": "active"}, headers=berth.admin())
    assert status.status_code == 200, status.text
    policy = httpx.put(f"{berth.base}/admin/v1/connectors/{NAME}/policies/alice", json={"deny": ["whoami"]}, headers=berth.admin())
    assert policy.status_code == 204, policy.text


def call_echo(berth) -> None:
    """One tool call as alice: starts an instance and leaves an audit record."""
    restore(berth)
    pat = httpx.post(f"{berth.base}/admin/v1/tokens", json={"user": "alice", "name": "t"}, headers=berth.admin())
    body = modern_body("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
    res = httpx.post(berth.mcp(NAME), json=body, headers=modern_headers(body, Authorization=f"Bearer {pat.json()['token']}"), timeout=60)
    assert messages(res)[-1]["result"]["content"][0]["text"] == "hi", res.text


def instance_id(berth) -> str:
    pools = httpx.get(f"{berth.base}/admin/v1/instances", headers=berth.admin()).json()
    return next(i["id"] for p in pools if p["connector"].startswith(NAME) for i in p["instances"])


def operations(document: dict) -> list[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "patch"}
    return [(m, p) for p, item in document["paths"].items() for m in item if m in methods]


def schemathesis(berth, tmp_path: Path, location: str, *extra: str) -> subprocess.CompletedProcess:
    """Runs schemathesis against `berth`, path parameters aimed at what exists."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(f"""
[parameters]
"path.namespace" = "{NAMESPACE}"
"path.name" = "{SHORT}"
"path.version" = "1.0.0"
"path.var" = "{SECRET}"
"path.user" = "alice"
"path.tool" = "echo"

[[operations]]
include-tag = "instances"
parameters = {{ "path.id" = "{instance_id(berth)}" }}
""")
    return subprocess.run(
        [str(SCHEMATHESIS), "--config-file", str(config), "--no-color", "run", location,
         "--header", f"Authorization: Bearer {berth.token}", "--checks", CHECKS,
         "--max-examples", "15", "--seed", "7", "--request-timeout", "20", "--workers", "2",
         "--suppress-health-check", "all", *extra],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )


def test_the_document_declares_bearer_auth_and_error_bodies(berth):
    res = httpx.get(f"{berth.base}/admin/v1/openapi.json")
    assert res.status_code == 200, "the document itself needs no token"
    doc = res.json()
    assert doc["openapi"].startswith("3.1")
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert doc["security"] == [{"bearer": []}]
    error = doc["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"] and set(error["properties"]) == {"error", "details"}
    for method, path in operations(doc):
        op = doc["paths"][path][method]
        assert {"401", "403"} <= set(op["responses"]), f"{method} {path} lacks the guard's answers"
        for status, answer in op["responses"].items():
            if status.startswith(("4", "5")) and "content" in answer:
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    ids = [doc["paths"][p][m]["operationId"] for m, p in operations(doc)]
    assert len(ids) == len(set(ids)), "operation ids are unique"
    for path in ("/admin/v1/connectors/{namespace}/{name}/versions/{version}/status", "/admin/v1/instances/{id}/drain",
                 "/admin/v1/instances/{id}/kill", "/admin/v1/audit/export", "/admin/v1/tokens", "/admin/v1/providers"):
        assert path in doc["paths"]


def test_schemathesis_finds_every_answer_as_documented(berth, tmp_path):
    call_echo(berth)
    doc = httpx.get(f"{berth.base}/admin/v1/openapi.json").json()
    started = time.monotonic()
    run = schemathesis(berth, tmp_path, f"{berth.base}/admin/v1/openapi.json")
    report = run.stdout + run.stderr
    print(report[-4000:])  # shown by pytest -rA or on failure
    assert run.returncode == 0, report[-6000:]
    tested = re.search(r"Tested:\s+(\d+)", report)
    assert tested and int(tested.group(1)) == len(operations(doc)), report[-3000:]
    assert time.monotonic() - started < 120, "bounded: a few examples per operation"
    errors = [l for l in berth.log_lines if " ERROR " in l]
    assert not errors, errors[:10]


def test_schemathesis_fails_a_document_that_lies(berth, tmp_path):
    """The check above can fail: the same run against a copy of the document
    that promises a field berth does not send finds the mismatch."""
    call_echo(berth)
    doc = httpx.get(f"{berth.base}/admin/v1/openapi.json").json()
    doc["components"]["schemas"]["ListMetadata"]["required"].append("total")
    doc["components"]["schemas"]["ListMetadata"]["properties"]["total"] = {"type": "integer"}
    lying = tmp_path / "lying.json"
    lying.write_text(json.dumps(doc))
    run = schemathesis(berth, tmp_path, str(lying), "--url", berth.base, "--include-operation-id", "listConnectors")
    assert run.returncode != 0
    assert "total" in run.stdout and "Response violates schema" in run.stdout, run.stdout[-3000:]


def test_a_percent_encoded_name_reaches_the_same_routes(berth):
    restore(berth)
    encoded = f"{berth.base}/admin/v1/connectors/{NAMESPACE}%2F{SHORT}"
    plain = httpx.get(f"{berth.base}/admin/v1/connectors/{NAME}", headers=berth.admin())
    assert plain.status_code == 200
    assert httpx.get(encoded, headers=berth.admin()).json() == plain.json()
    assert httpx.get(f"{encoded}/versions/1.0.0", headers=berth.admin()).status_code == 200
    put = httpx.put(f"{encoded}/policies/bob", json={"deny": ["echo"]}, headers=berth.admin())
    assert put.status_code == 204
    listed = httpx.get(f"{berth.base}/admin/v1/connectors/{NAME}/policies", headers=berth.admin()).json()
    assert listed["users"]["bob"]["deny"] == ["echo"]
    missing = httpx.get(f"{berth.base}/admin/v1/no-such-thing", headers=berth.admin())
    assert missing.status_code == 404 and "error" in missing.json()
