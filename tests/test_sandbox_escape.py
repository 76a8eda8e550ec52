"""The sandboxes, attacked from inside: a hostile first-party server, driven
over MCP, tries one escape per tool and reports what happened. Every attack
runs against the native backend (berth as root), the native backend with
berth as an unprivileged user (a user namespace of the instance's own, and
cgroups an administrator delegated), and the container backend (a real
Docker engine, provisioned by scripts/test.sh, running an image built here).

The native backends need root here: one to run as root, the other to set up
the delegation and drop to `nobody` (the test machines run as root)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import shutil
import subprocess
import tarfile
import tempfile

from conftest import BERTH_BIN, REPO, SERVERS, start_berth, wait_for
from test_failures import call, pid_alive, result_text

TS = SERVERS["first-party"]
IMAGE = "berth-testserver:e2e"
COMMON = ["--pids", "48", "--memory", "192M"]
BACKENDS = ["native", "unprivileged", "container"]
# Variables a backend itself puts in a server's environment.
BACKEND_ENV = {"native": set(), "unprivileged": set(), "container": {"HOSTNAME"}}
# The user an unprivileged berth runs as, and where its sandbox keeps roots.
NOBODY = 65534
SCRATCH = {"native": Path("/tmp/berth-sandbox"), "unprivileged": Path(f"/tmp/berth-sandbox-{NOBODY}")}


def tool(url, name, args=None, **kw) -> dict:
    return json.loads(result_text(call(url, name, args, **kw)))


def build_image(tag: str = IMAGE, *changes: str) -> None:
    """An image holding only the test server (at /app), /bin/sleep and their
    libraries; `changes` are Dockerfile lines such as a CMD."""
    placed = {TS[0]: "app/berth-testserver", shutil.which("sleep"): "bin/sleep"}
    libs: set[str] = set()
    for b in placed:
        out = subprocess.run(["ldd", b], capture_output=True, text=True, check=True).stdout
        libs |= {w for w in out.split() if w.startswith("/")}
    placed |= {lib: lib.lstrip("/") for lib in libs}
    dirs = {"tmp", "etc"} | {str(p) for a in placed.values() for p in Path(a).parents if str(p) != "."}
    with tempfile.TemporaryDirectory() as d:
        tar_path = Path(d) / "rootfs.tar"
        with tarfile.open(tar_path, "w") as tar:
            for dir_ in sorted(dirs):
                info = tarfile.TarInfo(dir_)
                info.type = tarfile.DIRTYPE
                info.mode = 0o1777 if dir_ == "tmp" else 0o755
                tar.addfile(info)
            for src, arc in sorted(placed.items()):
                tar.add(os.path.realpath(src), arcname=arc)
        change_args = [a for c in changes for a in ("--change", c)]
        subprocess.run(["docker", "import", *change_args, str(tar_path), tag], check=True, capture_output=True)


@pytest.fixture(scope="session")
def image():
    build_image()
    return IMAGE


@pytest.fixture(scope="session")
def unprivileged_bins():
    """berth and the test server copied where `nobody` can run them (the
    checkout may be under a private home), and `berth-65534` made in every
    cgroup hierarchy and given to `nobody`: an administrator's delegation."""
    made = []
    for h in sorted(Path("/sys/fs/cgroup").iterdir()):
        if not (h / "cgroup.procs").exists():
            continue
        d = h / f"berth-{NOBODY}"
        d.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset children start empty
            if (d / name).exists() and not (d / name).read_text().strip():
                (d / name).write_text((h / name).read_text())
        for p in [d, *d.iterdir()]:
            os.chown(p, NOBODY, NOBODY)
        made.append(d)
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        for src in (BERTH_BIN, TS[0]):
            shutil.copy2(src, tmp)
        yield {"berth": str(Path(tmp) / Path(BERTH_BIN).name), "server": str(Path(tmp) / Path(TS[0]).name)}
    for d in made:
        try:
            d.rmdir()
        except OSError:
            pass


def args_for(backend: str) -> list[str]:
    if backend in ("native", "unprivileged"):
        return ["--sandbox", "native", *COMMON]
    return ["--sandbox", "container", "--image", IMAGE, *COMMON]


def server_for(backend: str, bins: dict | None = None) -> list[str]:
    """The test server's command: its host path, its copy for `nobody`, or
    its path in the image."""
    if backend == "unprivileged":
        return [bins["server"]]
    return TS if backend == "native" else ["/app/berth-testserver"]


def as_user(backend: str, bins: dict | None = None) -> dict:
    """How berth is started for `backend`: as `nobody`, from the copy, or as is."""
    return {"user": NOBODY, "berth": bins["berth"]} if backend == "unprivileged" else {}


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    if request.param in ("native", "unprivileged") and os.geteuid() != 0:
        pytest.skip("the native sandbox tests need root")
    if request.param == "container":
        request.getfixturevalue("image")
    return request.param


@pytest.fixture
def launch(berth_factory, backend, request):
    """Starts berth with the test server in `backend`, with `extra` flags."""
    bins = request.getfixturevalue("unprivileged_bins") if backend == "unprivileged" else None

    def start(*extra: str):
        return berth_factory(server_for(backend, bins), *args_for(backend), *extra, **as_user(backend, bins))

    return start


@pytest.fixture(scope="module")
def sandboxed(backend, request):
    bins = request.getfixturevalue("unprivileged_bins") if backend == "unprivileged" else None
    b = start_berth(
        server_for(backend, bins), *args_for(backend), "--env", "BERTH_TEST_TOKEN=inside", **as_user(backend, bins)
    )
    b.backend = backend
    yield b
    b.stop()


def test_runs_as_pid_1_with_only_its_own_environment(sandboxed):
    me = tool(sandboxed.url, "whoami")
    assert me["pid"] == 1
    assert me["token"] == "inside"
    assert set(me["env"]) <= {"BERTH_TEST_TOKEN", "PATH", "HOME", "LANG", "TERM"} | BACKEND_ENV[sandboxed.backend]


def test_no_privileges_left(sandboxed):
    st = tool(sandboxed.url, "status")
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0 and int(st["CapBnd"], 16) == 0
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"
    assert st["Uid"].split()[0] == "65534" and st["Gid"].split()[0] == "65534"


def test_escape_syscalls_are_refused(sandboxed):
    res = tool(sandboxed.url, "syscalls")
    for name in ["mount", "unshare_user", "unshare_mount", "ptrace", "bpf", "keyctl", "setuid_root", "chroot", "clone_newuser"]:
        assert res[name] != "ok", f"{name} succeeded inside the sandbox"
        refusals = ["Operation not permitted"]
        if name == "setuid_root" and sandboxed.backend == "unprivileged":
            refusals.append("Invalid argument")  # uid 0 has no mapping in its user namespace
        assert any(r in res[name] for r in refusals), (name, res[name])


@pytest.mark.parametrize("path", ["/etc/shadow", "/root/.bashrc", str(REPO / "Cargo.toml"), "/home"])
def test_host_files_are_not_there(sandboxed, path):
    assert not tool(sandboxed.url, "read_file", {"path": path})["ok"]


def test_proc_shows_only_the_sandbox(sandboxed):
    pids = [e for e in tool(sandboxed.url, "list_dir", {"path": "/proc"})["entries"] if e.isdigit()]
    assert len(pids) <= 3, pids  # the server (and any short-lived child), not the host's processes
    environ = tool(sandboxed.url, "read_file", {"path": "/proc/1/environ"})
    assert environ["ok"] and "BERTH_SANDBOX_INIT" not in environ["content"]
    mountinfo = tool(sandboxed.url, "read_file", {"path": "/proc/self/mountinfo"})["content"]
    points = {line.split()[4] for line in mountinfo.splitlines()}
    # The server's own directory is bind-mounted (read-only) at its host path so it can run;
    # nothing else of the host's tree is: not the checkout, not the old root, not a home.
    artifact_dir = str(Path(TS[0]).resolve().parent)
    for point in points - {artifact_dir}:
        assert not point.startswith((str(REPO), "/old_root", "/root", "/home", "/work")), point


def test_root_is_read_only_and_tmp_is_private(sandboxed, launch):
    assert not tool(sandboxed.url, "write_file", {"path": "/usr/evil", "bytes": 10})["ok"]
    assert not tool(sandboxed.url, "write_file", {"path": "/evil", "bytes": 10})["ok"]
    assert tool(sandboxed.url, "write_file", {"path": "/tmp/mine", "bytes": 10, "keep": True})["ok"]
    assert tool(sandboxed.url, "read_file", {"path": "/tmp/mine"})["content"] == "x" * 10
    other = launch()
    # Another instance cannot see this one's /tmp.
    assert tool(other.url, "list_dir", {"path": "/tmp"})["ok"]
    assert not tool(other.url, "read_file", {"path": "/tmp/mine"})["ok"]


@pytest.mark.parametrize("addr", ["169.254.169.254:80", "10.0.0.1:80", "1.1.1.1:443"])
def test_no_network(sandboxed, addr):
    res = tool(sandboxed.url, "connect", {"addr": addr})
    assert not res["ok"]


def test_cannot_reach_berth_itself(sandboxed):
    port = sandboxed.url.split(":")[2].split("/")[0]
    assert not tool(sandboxed.url, "connect", {"addr": f"127.0.0.1:{port}"})["ok"]


def test_fork_bomb_is_held_by_the_pids_limit(sandboxed):
    res = tool(sandboxed.url, "fork_bomb", {"n": 500})
    assert res["started"] < 48 and res["error"], res
    assert tool(sandboxed.url, "whoami")["pid"] == 1


def test_fd_exhaustion_is_contained(sandboxed):
    res = tool(sandboxed.url, "open_files", {"n": 100000})
    assert res["opened"] < 1100 and res["error"]
    assert tool(sandboxed.url, "whoami")["pid"] == 1


def test_disk_fill_is_stopped(sandboxed):
    res = call(sandboxed.url, "write_file", {"path": "/tmp/fill", "bytes": 1 << 30}, timeout=60)
    body = res.text
    assert '"ok\\":true' not in body.replace(" ", "")
    assert tool(sandboxed.url, "whoami")["pid"] == 1


def test_memory_bomb_is_killed_in_its_own_cgroup_and_berth_serves_on(launch):
    b = launch()
    assert tool(b.url, "alloc", {"mb": 16})["allocated_mb"] == 16
    r = call(b.url, "alloc", {"mb": 1024}, timeout=60)
    assert '"error"' in r.text, r.text
    assert result_text(call(b.url, "echo", {"text": "still serving"})) == "still serving"


def test_cpu_is_held_by_the_quota(launch):
    free = tool(launch().url, "spin", {"ms": 600})
    held = tool(launch("--cpus", "0.2").url, "spin", {"ms": 600})
    assert held["ratio"] < 0.4, held
    assert free["ratio"] > held["ratio"] * 1.5, (free, held)


def test_python_server_runs_in_the_native_sandbox(berth_factory, backend, request):
    """A real PyPI server (mcp-server-time) with its venv and interpreter mounted read-only."""
    import sys

    from conftest import VENV_BIN

    venv = VENV_BIN.parent
    base = Path(os.path.realpath(sys.base_prefix))
    user = host_paths_user(backend, request, venv, base)
    b = berth_factory("time", "--sandbox", "native", "--mount", str(venv), "--mount", str(base), **user)
    res = tool_text = result_text(call(b.url, "get_current_time", {"timezone": "Asia/Tokyo"}))
    assert "Asia/Tokyo" in res, tool_text


def host_paths_user(backend: str, request, *paths: Path) -> dict:
    """How to start berth for a server run from host paths: skips the
    container backend (it runs images) and, for the unprivileged one, a
    checkout `nobody` cannot read."""
    if backend == "container":
        pytest.skip("runs from host paths; the container backend runs images")
    if backend != "unprivileged":
        return {}
    for p in paths:
        if subprocess.run(["runuser", "-u", "nobody", "--", "test", "-r", str(p)]).returncode != 0:
            pytest.skip(f"{p} is not readable by nobody here")
    return as_user(backend, request.getfixturevalue("unprivileged_bins"))


def berth_cgroups() -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob("*/berth*/*") if p.is_dir()]


def berth_containers() -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=io.berth.owner-pid"], capture_output=True, text=True, check=True
    ).stdout
    return out.split()


def test_kill_9_of_berth_leaves_no_container(launch, backend):
    if backend != "container":
        pytest.skip("see the native test below")
    before = set(berth_containers())
    b = launch()
    tool(b.url, "whoami")
    mine = set(berth_containers()) - before
    assert mine, "no container was started"
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait(5)
    assert wait_for(lambda: not (set(berth_containers()) & mine), 15), "the container outlived berth"


def test_kill_9_of_berth_leaves_no_instance_or_cgroup(launch, backend):
    if backend == "container":
        pytest.skip("see the container test above")
    before = set(berth_cgroups())
    b = launch()
    tool(b.url, "whoami")
    mine = set(berth_cgroups()) - before
    assert mine, "the instance has no cgroup"
    procs = set()
    for g in mine:
        procs |= {int(p) for p in (g / "cgroup.procs").read_text().split()}
    assert procs
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait(5)
    assert wait_for(lambda: not any(pid_alive(p) for p in procs), 5), "instance processes outlived berth"
    assert wait_for(lambda: not (set(berth_cgroups()) & mine), 5), "instance cgroups outlived berth"
    ids = {g.name for g in mine}
    assert wait_for(lambda: not any((SCRATCH[backend] / i).exists() for i in ids), 5), "root dir left behind"


def test_node_server_runs_in_the_native_sandbox(berth_factory, backend, request):
    """A real npm server (server-everything) with its runtime mounted read-only."""
    from conftest import NODE_MODULES

    user = host_paths_user(backend, request, NODE_MODULES)
    b = berth_factory("everything", "--sandbox", "native", "--mount", str(NODE_MODULES), **user)
    r = call(b.url, "echo", {"message": "from the sandbox"})
    assert "from the sandbox" in result_text(r)
    env = json.loads(result_text(call(b.url, "get-env")))
    assert "BERTH_SANDBOX_INIT" not in env
