"""Failure paths, driven through the first-party test server: crashes,
garbage and over-long lines on stdout, cancellation, stderr floods, servers
that ignore EOF, and berth dying under its children."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx
import pytest

from conftest import SERVERS, wait_for
from mcp_http import LegacySession, messages, modern_body, modern_headers

TS = "first-party"


def call(url, name, args=None, id=1, timeout=30, **meta):
    body = modern_body("tools/call", {"name": name, "arguments": args or {}}, id=id, **meta)
    return httpx.post(url, json=body, headers=modern_headers(body), timeout=timeout)


def result_text(resp) -> str:
    (msg,) = [m for m in messages(resp) if "id" in m]
    assert "result" in msg, msg
    return " ".join(c.get("text", "") for c in msg["result"]["content"])


def whoami(url) -> dict:
    return json.loads(result_text(call(url, "whoami")))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_crash_mid_call_fails_in_flight_calls_fast_and_relaunches(berth_factory):
    b = berth_factory(TS)
    before = whoami(b.url)["pid"]
    results: dict[str, object] = {}

    def slow():
        t0 = time.monotonic()
        results["resp"] = call(b.url, "sleep", {"ms": 20000}, id=7)
        results["at"] = time.monotonic()
        results["t0"] = t0

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    crashed_at = time.monotonic()
    r = call(b.url, "crash", {"code": 9}, id=8)
    (crash_msg,) = messages(r)
    assert crash_msg["error"]["code"] == -32001, crash_msg
    t.join(10)
    (msg,) = messages(results["resp"])
    assert msg["id"] == 7 and msg["error"]["code"] == -32001
    assert "exit code 9" in msg["error"]["message"]
    assert results["at"] - crashed_at < 1.0, "in-flight call must fail within 1 s of the crash"
    after = whoami(b.url)["pid"]
    assert after != before and not pid_alive(before)


def test_crash_loop_backs_off_and_recovers(berth_factory):
    b = berth_factory(TS)
    for i in range(3):
        (m,) = messages(call(b.url, "crash", id=i))
        assert m["error"]["code"] == -32001
    t0 = time.monotonic()
    assert "pid" in whoami(b.url)
    # Three quick deaths: the fourth launch waited a backoff, but not forever.
    assert time.monotonic() - t0 < 10


def test_garbage_on_stdout_is_skipped(berth_factory):
    b = berth_factory(TS)
    assert result_text(call(b.url, "garbage")) == "ok"
    assert result_text(call(b.url, "echo", {"text": "after garbage"})) == "after garbage"
    assert wait_for(lambda: "non-JSON-RPC line" in b.logs(), 5)


def test_over_long_line_fails_only_its_call(berth_factory):
    b = berth_factory(TS, "--max-line", "100000")
    t0 = time.monotonic()
    (m,) = messages(call(b.url, "large", {"bytes": 300000}))
    assert m["error"]["code"] == -32603 and "100000" in m["error"]["message"], m
    assert time.monotonic() - t0 < 5
    assert len(result_text(call(b.url, "large", {"bytes": 50000}))) == 50000
    assert result_text(call(b.url, "echo", {"text": "still fine"})) == "still fine"


def test_large_payload_round_trips(shared_berth):
    b = shared_berth(TS)
    text = result_text(call(b.url, "large", {"bytes": 8 << 20}, timeout=60))
    assert len(text) == 8 << 20 and text.startswith("abcdefghij")


def test_closing_modern_stream_cancels_at_server(berth_factory):
    b = berth_factory(TS)
    with pytest.raises(httpx.ReadTimeout):
        call(b.url, "sleep", {"ms": 30000}, timeout=0.5)
    assert wait_for(lambda: "cancelled" in b.logs() and "berth-testserver: request" in b.logs(), 5), b.logs()


def test_legacy_cancel_notification_cancels_at_server(berth_factory):
    b = berth_factory(TS)
    s = LegacySession(b.url)
    done = threading.Event()

    def slow():
        body = {"jsonrpc": "2.0", "id": "slow-1", "method": "tools/call", "params": {"name": "sleep", "arguments": {"ms": 30000}}}
        try:
            s.post(body)
        except httpx.HTTPError:
            pass
        done.set()

    threading.Thread(target=slow, daemon=True).start()
    time.sleep(0.3)
    r = s.notify("notifications/cancelled", {"requestId": "slow-1", "reason": "test"})
    assert r.status_code == 202
    assert wait_for(lambda: "berth-testserver: request" in b.logs() and "cancelled" in b.logs(), 5), b.logs()


def test_progress_tokens_are_not_mixed_between_callers(shared_berth):
    b = shared_berth(TS)
    out: dict[int, list[dict]] = {}

    def one(i):
        out[i] = messages(call(b.url, "progress", {"steps": 5, "delay_ms": 10}, id=i, progressToken=f"caller-{i}"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for i, msgs in out.items():
        progress = [m for m in msgs if m.get("method") == "notifications/progress"]
        assert [p["params"]["progressToken"] for p in progress] == [f"caller-{i}"] * 5
        assert [p["params"]["progress"] for p in progress] == [1, 2, 3, 4, 5]
        assert msgs[-1]["id"] == i
    assert len(out) == 12


def test_server_request_with_two_callers_in_flight_is_refused_not_misrouted(berth_factory):
    b = berth_factory(TS)
    caps = {"elicitation": {"form": {}}}
    t = threading.Thread(target=lambda: call(b.url, "sleep", {"ms": 1500}, id=1))
    t.start()
    time.sleep(0.2)
    r = call(b.url, "elicit", {}, id=2, caps=caps)
    (m,) = messages(r)
    # Two callers share the server: berth refuses to guess who should answer.
    assert m.get("result", {}).get("resultType") != "input_required"
    assert "cannot route" in json.dumps(m)
    t.join(5)


def test_stderr_flood_is_rate_limited_and_harmless(berth_factory):
    b = berth_factory(TS)
    assert result_text(call(b.url, "stderr", {"lines": 20000})) == "ok"
    assert result_text(call(b.url, "echo", {"text": "alive"})) == "alive"
    assert wait_for(lambda: "stderr rate-limited" in b.logs(), 5)
    assert b.logs().count("berth-testserver stderr line") < 2000


def test_environment_is_only_what_was_given(berth_factory):
    b = berth_factory(TS, "--env", "BERTH_TEST_TOKEN=tok-123", env={"SECRET_OF_THE_HOST": "do-not-leak"})
    me = whoami(b.url)
    assert me["token"] == "tok-123"
    assert "SECRET_OF_THE_HOST" not in me["env"]
    assert set(me["env"]) <= {"BERTH_TEST_TOKEN", "PATH", "HOME", "LANG", "TERM"}


def test_server_ignoring_eof_is_killed_on_shutdown(berth_factory):
    b = berth_factory(SERVERS[TS] + ["--ignore-eof"])
    pid = whoami(b.url)["pid"]
    assert b.stop() == 0
    assert wait_for(lambda: not pid_alive(pid), 5), "server outlived berth"


def test_kill_9_of_berth_leaves_no_server(berth_factory):
    b = berth_factory(SERVERS[TS] + ["--ignore-eof"])
    pid = whoami(b.url)["pid"]
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait(5)
    assert wait_for(lambda: not pid_alive(pid), 5), "server outlived a killed berth"


def test_secrets_given_to_the_server_never_reach_logs_or_errors(berth_factory):
    canary = "canary-7f3a9c0e5b1d"
    b = berth_factory(TS, "--env", f"UPSTREAM_TOKEN={canary}", env={"BERTH_LOG": "trace"})
    bodies = [
        call(b.url, "echo", {"text": "hi"}).text,
        call(b.url, "no-such-tool").text,
        call(b.url, "crash").text,
        call(b.url, "echo", {"text": "after"}).text,
    ]
    me = whoami(b.url)
    assert "UPSTREAM_TOKEN" in me["env"], "the canary was not even passed"
    for body in bodies:
        assert canary not in body
    b.stop()
    assert canary not in b.logs()


def test_hostile_probes_refuse_to_attack_an_unsandboxed_host(shared_berth):
    """The escape suite's probes really mount and fork-bomb; unconfined as root they must not."""
    b = shared_berth(TS)
    for name, args in [("syscalls", {}), ("fork_bomb", {"n": 5}), ("alloc", {"mb": 1}), ("open_files", {"n": 5})]:
        res = json.loads(result_text(call(b.url, name, args)))
        if os.geteuid() == 0:
            assert res == {"ok": False, "error": "refusing to attack the host as root; run me in a sandbox"}, name


@pytest.mark.parametrize("sandbox", ["none", "native"])
def test_a_server_that_cannot_start_gets_a_clear_error(berth_factory, sandbox):
    if sandbox == "native" and os.geteuid() != 0:
        pytest.skip("the native sandbox needs root")
    b = berth_factory(["/bin/sh", "-c", "echo 'secret-ish startup noise' >&2; exit 7"], "--sandbox", sandbox)
    (m,) = messages(call(b.url, "echo", {"text": "x"}))
    msg = m["error"]["message"]
    assert m["error"]["code"] == -32001
    assert "failed to start" in msg and "exit code 7" in msg, msg
    assert "startup noise" not in msg, "stderr is for the log, not the client"
    assert wait_for(lambda: "secret-ish startup noise" in b.logs(), 5)
