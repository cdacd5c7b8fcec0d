"""The sandbox host looks like a vast.ai container and leaves nothing behind when stopped.

Each test sandbox has its own state dir, container layer and free port, so a developer's sandbox
(`make sandbox-up`) keeps running. The rootfs build (minutes, once) happens in an untimed fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.host import REPO, Sandbox
from sandbox.rootfs import _pem_set, build_rootfs, default_rootfs
from sandbox.system import find_processes, mounts_under, pid_namespace, pids_in_namespace

pytestmark = pytest.mark.sandbox
PYINFRA = Path(sys.executable).with_name("pyinfra")


@pytest.fixture(scope="module")
def rootfs() -> Path:
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root (debootstrap, namespaces, mounts)")
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed")
    build_rootfs()
    return default_rootfs()


def _new_sandbox(factory: pytest.TempPathFactory, rootfs: Path) -> Sandbox:
    return Sandbox(
        factory.mktemp("sandbox-state"),
        rootfs=rootfs,
        data_dir=factory.mktemp("sandbox-layer"),
        ssh_port=0,
    )


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, rootfs: Path):
    box = _new_sandbox(tmp_path_factory, rootfs)
    try:
        yield box.up()
    finally:
        box.destroy()


def test_ssh_answers_as_root_on_host_sandbox(sandbox: Sandbox) -> None:
    assert sandbox.run("id -un; hostname").stdout.split() == ["root", "sandbox"]


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


def test_sshd_listens_on_loopback_only(sandbox: Sandbox) -> None:
    listeners = sandbox.run(f"ss -Hltn 'sport = :{sandbox.ssh_port}'").stdout.split("\n")
    local = [line.split()[3] for line in listeners if line.strip()]
    assert local == [f"127.0.0.1:{sandbox.ssh_port}"]


def test_trusts_every_ca_of_this_machine(sandbox: Sandbox, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.crt"
    bundle.write_text(sandbox.run("cat /etc/ssl/certs/ca-certificates.crt").stdout)
    assert _pem_set(Path("/etc/ssl/certs/ca-certificates.crt")) <= _pem_set(bundle)


def test_apt_installs_packages(sandbox: Sandbox) -> None:
    sandbox.run(
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -qy hello && hello",
        timeout=600,
    )


def test_up_reuses_a_running_sandbox(sandbox: Sandbox) -> None:
    init = sandbox.init_pid()
    assert sandbox.up().init_pid() == init


def test_inventory_points_at_the_sandbox(sandbox: Sandbox) -> None:
    env = {**os.environ, "SANDBOX_STATE_DIR": str(sandbox.state_dir)}
    proc = _pyinfra(env, "debug-inventory", "--json")
    [host] = json.loads(proc.stdout)
    assert host["name"] == "sandbox" and "local" in host["groups"]
    assert host["data"]["ssh_port"] == sandbox.ssh_port
    assert host["data"]["ssh_key"] == str(sandbox.ssh_key_path)
    proc = _pyinfra(env, "-y", "exec", "--", "uname", "-a")
    assert "Linux sandbox" in proc.stdout + proc.stderr


def test_inventory_refuses_a_stopped_sandbox(tmp_path: Path) -> None:
    env = {**os.environ, "SANDBOX_STATE_DIR": str(tmp_path)}
    proc = _pyinfra(env, "debug-inventory", check=False)
    assert proc.returncode != 0
    assert "sandbox-up" in proc.stdout + proc.stderr


def test_down_leaves_no_process_and_no_mount(
    tmp_path_factory: pytest.TempPathFactory, rootfs: Path
) -> None:
    box = _new_sandbox(tmp_path_factory, rootfs)
    try:
        box.up()
        box.run("sleep 600 >/dev/null 2>&1 & setsid sleep 600 >/dev/null 2>&1 < /dev/null &")
        init = box.init_pid()
        assert init is not None
        namespace = pid_namespace(init)
        assert namespace is not None and len(pids_in_namespace(namespace)) >= 3
        box.down()
        assert pids_in_namespace(namespace) == []
        assert find_processes("unshare", str(box.merged)) == []
        assert mounts_under(box.data_dir) == mounts_under(rootfs) == []
        assert box.status() == "stopped"
        assert not box.pid_path.exists()
    finally:
        box.destroy()


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
