"""The sandbox fleet: hosts shaped like vast.ai containers, each with its own network, that restart
like containers and leave nothing behind when stopped.

The tests' fleet has its own fleet directory, container layers and free ports, so a developer's
fleet (`make sandbox-up`) keeps running. The rootfs build (minutes, once) happens in an untimed
fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import Fleet, Sandbox
from sandbox.host import REPO
from sandbox.rootfs import _pem_set, build_rootfs, default_rootfs
from sandbox.system import (
    find_processes,
    is_alive,
    mounts_under,
    pid_namespace,
    pids_in_namespace,
)
from tests.deployed import require_sandbox

pytestmark = pytest.mark.sandbox
PYINFRA = Path(sys.executable).with_name("pyinfra")
MARKER_PORT = 8000


@pytest.fixture(scope="module")
def rootfs() -> Path:
    require_sandbox()
    build_rootfs()
    return default_rootfs()


def _new_fleet(factory: pytest.TempPathFactory, rootfs: Path) -> Fleet:
    return Fleet(
        factory.mktemp("fleet"), rootfs=rootfs, data_root=factory.mktemp("layers"), base_port=0
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, rootfs: Path) -> Iterator[Fleet]:
    box = _new_fleet(tmp_path_factory, rootfs)
    try:
        box.up(2, log=lambda *_: None)
        yield box
    finally:
        box.destroy()


@pytest.fixture(scope="module")
def sandbox(fleet: Fleet) -> Sandbox:
    return fleet.host("sandbox-1")


def test_ssh_answers_as_root_on_each_named_host(fleet: Fleet) -> None:
    for box in fleet.hosts():
        assert box.run("id -un; hostname").stdout.split() == ["root", box.name]


def test_no_systemd(sandbox: Sandbox) -> None:
    sandbox.run("test ! -e /run/systemd/system && ! command -v systemctl")


def test_pid_1_is_the_namespace_init(sandbox: Sandbox) -> None:
    init = sandbox.init_pid()
    assert init is not None and init != 1
    inside = sandbox.run("tr '\\0' ' ' < /proc/1/cmdline; echo; readlink /proc/self/ns/pid")
    cmd, namespace = inside.stdout.splitlines()
    assert "sshd" in cmd
    assert namespace == pid_namespace(init) != pid_namespace(os.getpid())


def test_mount_table_is_container_shaped(sandbox: Sandbox) -> None:
    mounts = dict(line.split()[1:3] for line in sandbox.run("cat /proc/mounts").stdout.splitlines())
    assert mounts["/"] == "overlay"
    assert mounts["/run"] == mounts["/tmp"] == mounts["/dev/shm"] == "tmpfs"
    assert not [point for point in mounts if point.startswith(("/var/cache/", "/work/", "/mnt"))]


def test_each_host_has_its_own_network_namespace(fleet: Fleet) -> None:
    namespaces = {os.readlink("/proc/self/ns/net")}
    for box in fleet.hosts():
        inside = box.run("readlink /proc/self/ns/net; ss -Hltn").stdout.splitlines()
        namespaces.add(inside[0])
        assert [line.split()[3] for line in inside[1:] if line.strip()] == ["0.0.0.0:22", "[::]:22"]
    assert len(namespaces) == 3


def test_only_sshd_is_reachable_from_the_control_machine(fleet: Fleet) -> None:
    for box in fleet.hosts():
        # The control machine's side of the door: slirp4netns, on loopback, speaking SSH.
        listeners = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{box.ssh_port}"], capture_output=True, text=True
        ).stdout
        assert f"127.0.0.1:{box.ssh_port} " in listeners and "slirp4netns" in listeners
        with socket.create_connection(("127.0.0.1", box.ssh_port), timeout=10) as door:
            assert door.recv(64).startswith(b"SSH-2.0-")


def test_services_on_a_hosts_loopback_stay_inside_it(fleet: Fleet) -> None:
    """Both hosts serve 127.0.0.1:8000 at once; the control machine's 127.0.0.1:8000 is neither."""
    serve = (
        "mkdir -p /srv/marker && echo {name} > /srv/marker/who && cd /srv/marker && "
        f"(setsid python3 -m http.server --bind 127.0.0.1 {MARKER_PORT} >/dev/null 2>&1 "
        "</dev/null &) && sleep 1 && curl -fsS http://127.0.0.1:{port}/who"
    )
    try:
        for box in fleet.hosts():
            out = box.run(serve.format(name=box.name, port=MARKER_PORT)).stdout
            assert out.strip() == box.name
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{MARKER_PORT}/who", timeout=3) as r:
                seen = r.read().decode().strip()
        except OSError:
            seen = ""
        assert seen not in {box.name for box in fleet.hosts()}
    finally:
        for box in fleet.hosts():
            box.run("pkill -f 'http.server --bind 127.0.0.1'", check=False)


def test_trusts_every_ca_of_this_machine(sandbox: Sandbox, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.crt"
    bundle.write_text(sandbox.run("cat /etc/ssl/certs/ca-certificates.crt").stdout)
    assert _pem_set(Path("/etc/ssl/certs/ca-certificates.crt")) <= _pem_set(bundle)


def test_apt_reaches_the_package_registry_through_outbound_nat(fleet: Fleet) -> None:
    fleet.host("sandbox-2").run(
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -qy hello && hello",
        timeout=600,
    )


def test_up_reuses_running_hosts(fleet: Fleet) -> None:
    inits = [box.init_pid() for box in fleet.hosts()]
    fleet.up(2, log=lambda *_: None)
    assert [box.init_pid() for box in fleet.hosts()] == inits


def test_inventory_lists_every_host_of_the_fleet(fleet: Fleet) -> None:
    env = {**os.environ, "SANDBOX_STATE_DIR": str(fleet.root)}
    hosts = json.loads(_pyinfra(env, "debug-inventory", "--json").stdout)
    assert [h["name"] for h in hosts] == ["sandbox-1", "sandbox-2"]
    for entry, box in zip(hosts, fleet.hosts(), strict=True):
        assert "local" in entry["groups"]
        assert entry["data"]["ssh_port"] == box.ssh_port
        assert entry["data"]["ssh_key"] == str(box.ssh_key_path)
        assert entry["data"]["ollama_download_url"].startswith("http://10.0.2.2:")
    proc = _pyinfra(env, "-y", "exec", "--", "hostname")
    assert "sandbox-1" in proc.stdout + proc.stderr and "sandbox-2" in proc.stdout + proc.stderr


def test_inventory_refuses_a_stopped_fleet(tmp_path: Path) -> None:
    env = {**os.environ, "SANDBOX_STATE_DIR": str(tmp_path)}
    proc = _pyinfra(env, "debug-inventory", check=False)
    assert proc.returncode != 0
    assert "make sandbox-up" in proc.stdout + proc.stderr


def test_restart_kills_everything_keeps_the_disk_and_runs_onstart(fleet: Fleet) -> None:
    box = fleet.host("sandbox-2")
    box.run(
        "echo 'date +%s > /run/onstart-ran' > /root/onstart.sh && echo kept > /root/disk && "
        "(setsid sleep 600 >/dev/null 2>&1 </dev/null &)"
    )
    init = box.init_pid()
    assert init is not None
    port = box.ssh_port
    fleet.restart("sandbox-2", log=lambda *_: None)
    assert not is_alive(init) and box.init_pid() not in (None, init)
    assert box.ssh_port == port
    out = box.run(
        "for i in $(seq 50); do [ -e /run/onstart-ran ] && break; sleep 0.1; done; "
        "cat /root/disk; test -e /run/onstart-ran && echo onstart-ran; pgrep -c -x sleep || true"
    )
    assert out.stdout.split() == ["kept", "onstart-ran", "0"]
    box.run("rm /root/onstart.sh")


def test_restart_of_an_unknown_host_says_which_exist(fleet: Fleet) -> None:
    env = {**os.environ, "SANDBOX_STATE_DIR": str(fleet.root)}
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "restart", "sandbox-9"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "sandbox-9 is not in the fleet (sandbox-1, sandbox-2)" in done.stderr


def test_a_systemd_host_boots_systemd_behind_the_same_single_door(
    tmp_path_factory: pytest.TempPathFactory, rootfs: Path
) -> None:
    if shutil.which("systemd-nspawn") is None:
        pytest.skip("systemd-nspawn is not installed (make apt: systemd-container)")
    small = _new_fleet(tmp_path_factory, rootfs)
    try:
        [box] = small.up(1, kinds=["systemd"], log=lambda *_: None)
        assert box.kind == "systemd" and box.status().startswith("running (systemd")
        state = box.run(
            "for i in $(seq 100); do s=$(systemctl is-system-running); "
            "case $s in running|degraded) break;; esac; sleep 0.2; done; echo $s; "
            "systemctl --failed --no-legend --plain; tr '\\0' ' ' < /proc/1/cmdline; echo; "
            "readlink /proc/self/ns/net; ss -Hltn"
        ).stdout.splitlines()
        assert state[0] == "running", state
        assert state[1].startswith("/sbin/init") or "systemd" in state[1], state
        assert state[2] != os.readlink("/proc/self/ns/net")
        listeners = sorted(line.split()[3] for line in state[3:] if line.strip())
        assert listeners == ["0.0.0.0:22", "[::]:22"], state
        init = box.init_pid()
        small.restart("sandbox-1", log=lambda *_: None)  # a reboot: systemd again as PID 1
        assert box.init_pid() not in (None, init) and not is_alive(init or 0)
        small.down()
        assert find_processes("systemd-nspawn", str(box.merged)) == []
        assert mounts_under(box.data_dir) == []
    finally:
        small.destroy()


def test_status_exits_0_and_says_stopped(
    tmp_path_factory: pytest.TempPathFactory, rootfs: Path
) -> None:
    small = _new_fleet(tmp_path_factory, rootfs)
    env = {**os.environ, "SANDBOX_STATE_DIR": str(small.root)}
    status = [sys.executable, "-m", "sandbox", "status"]
    done = subprocess.run(status, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "no sandbox hosts yet" in done.stdout
    try:
        small.up(1, log=lambda *_: None)
        small.down()
        done = subprocess.run(status, cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout.strip() == "sandbox-1: stopped"
    finally:
        small.destroy()


def test_down_leaves_no_process_and_no_mount(
    tmp_path_factory: pytest.TempPathFactory, rootfs: Path
) -> None:
    small = _new_fleet(tmp_path_factory, rootfs)
    try:
        [box, other] = small.up(2, log=lambda *_: None)
        box.run("sleep 600 >/dev/null 2>&1 & setsid sleep 600 >/dev/null 2>&1 < /dev/null &")
        init = box.init_pid()
        assert init is not None
        namespace = pid_namespace(init)
        assert namespace is not None and len(pids_in_namespace(namespace)) >= 3
        small.up(1, log=lambda *_: None)  # shrinking the fleet stops sandbox-2
        assert other.status() == "stopped" and box.status().startswith("running")
        small.down()
        assert pids_in_namespace(namespace) == []
        assert find_processes("unshare", str(box.merged)) == []
        assert find_processes("slirp4netns", str(box.slirp_socket)) == []
        assert find_processes("sandbox.release", str(small.root)) == []
        assert mounts_under(box.data_dir) == mounts_under(rootfs) == []
        assert box.status() == "stopped"
        assert not box.pid_path.exists()
    finally:
        small.destroy()


def _pyinfra(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(PYINFRA), "inventories/local.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc
