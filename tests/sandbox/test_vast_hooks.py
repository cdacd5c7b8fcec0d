"""The vast.ai double's instances as sandbox hosts (sandbox/vast_hooks.py), through the SDK.

An instance's whole life without a deploy: create boots a host that lets in the account's
registered key and ran the instance's `onstart` at its first boot; stop kills every process and
keeps the disk; start boots it again through /root/onstart.sh; destroy leaves no process, layer,
state or release server behind.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from vastai import VastAI

from sandbox import Fleet
from sandbox.release import read_release
from sandbox.rootfs import build_rootfs, default_rootfs
from sandbox.system import find_processes, mounts_under, pid_namespace, pids_in_namespace
from sandbox.vast_hooks import SandboxHooks
from tests.deployed import require_sandbox
from tests.fleet.conftest import load_offers
from vast_double import Market, VastDouble

pytestmark = pytest.mark.sandbox
API_KEY = "hooks-test-key"
ONSTART = "date +%s%N > /run/onstart-ran"  # /run is a tmpfs: the marker proves this boot ran it


@pytest.fixture(scope="module")
def user_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's own key pair, registered with the double's account."""
    key = tmp_path_factory.mktemp("user") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHooks]:
    require_sandbox()
    build_rootfs()
    fleet = Fleet(tmp_path_factory.mktemp("fleet"), rootfs=default_rootfs(),
                  data_root=tmp_path_factory.mktemp("layers"), base_port=0)
    try:
        yield SandboxHooks(fleet)
    finally:
        fleet.destroy()


@pytest.fixture(scope="module")
def api(hooks: SandboxHooks, user_key: Path) -> Iterator[VastAI]:
    public = user_key.with_name("id_ed25519.pub").read_text().strip()
    market = Market(offers=load_offers(), ssh_keys=[public], hooks=hooks)
    with VastDouble(market, api_key=API_KEY) as double:
        yield VastAI(api_key=API_KEY, server_url=double.url)


def as_user(row: dict, key: Path, command: str) -> subprocess.CompletedProcess[str]:
    """`ssh` with the user's key to the endpoint the row gives, as `vastai ssh-url` would."""
    port = row["ports"]["22/tcp"][0]["HostPort"]
    argv = ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-p", port, f"root@{row['public_ipaddr']}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)


def onstart_marker(row: dict, key: Path) -> str:
    """The marker the on-start script wrote in this boot (it runs once sshd answers)."""
    done = as_user(row, key, "for i in $(seq 50); do [ -s /run/onstart-ran ] && break;"
                             " sleep 0.1; done; cat /run/onstart-ran")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_instance_is_a_sandbox_host_for_its_whole_life(
    api: VastAI, hooks: SandboxHooks, user_key: Path
) -> None:
    new_id = api.create_instance(8002, image="img", disk=40, label="llm-selfhost",
                                 onstart_cmd=ONSTART, ssh=True, direct=True)["new_contract"]
    row = api.show_instance(new_id)
    box = hooks.host(row)
    assert (row["public_ipaddr"], row["ssh_host"]) == ("127.0.0.1", "127.0.0.1")
    assert int(row["ports"]["22/tcp"][0]["HostPort"]) == row["ssh_port"] == box.ssh_port

    # vast's account key lets the user in; vast wrote the onstart and ran it at the first boot
    assert as_user(row, user_key, "cat /root/onstart.sh").stdout == f"{ONSTART}\n"
    first = onstart_marker(row, user_key)
    assert as_user(row, user_key, "echo kept > /root/disk").returncode == 0
    release = read_release(hooks.fleet.root)
    assert release is not None
    assert json.loads(hooks.data_file.read_text()) == {
        "ollama_version": release["version"], "ollama_download_url": release["url"],
        "ollama_sha256": release["sha256"],
    }
    assert box.name in hooks.fleet.names()

    # stop: every process of the host dies, the disk stays
    init = box.init_pid()
    assert init is not None
    namespace = pid_namespace(init)
    assert namespace is not None
    api.stop_instance(new_id)
    assert not box.is_running() and pids_in_namespace(namespace) == []
    assert api.show_instance(new_id)["ports"] == {}

    # start: sshd, then /root/onstart.sh again; the disk is what it was
    api.start_instance(new_id)
    row = api.show_instance(new_id)
    assert as_user(row, user_key, "cat /root/disk").stdout == "kept\n"
    assert onstart_marker(row, user_key) != first

    # destroy: nothing of the host is left, nor the release server (it was the last host)
    api.destroy_instance(new_id)
    assert find_processes("unshare", str(box.merged)) == []
    assert find_processes("slirp4netns", str(box.slirp_socket)) == []
    assert find_processes("sandbox.release", str(hooks.fleet.root)) == []
    assert mounts_under(box.data_dir) == []
    assert not box.data_dir.exists() and not box.state_dir.exists()
    assert hooks.fleet.names() == []


def test_the_default_fleet_is_one_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`python -m vast_double --hooks sandbox.vast_hooks:SandboxHooks` builds it with no
    arguments: never the `make deploy` fleet, any free SSH ports (instance ids as names)."""
    monkeypatch.setenv("SANDBOX_STATE_DIR", str(tmp_path))
    hooks = SandboxHooks()
    assert (hooks.fleet.root, hooks.fleet.base_port) == (tmp_path / "vast", 0)
    assert hooks.data_file == tmp_path / "vast" / "vast_data.json"
    assert hooks.host({"id": 7000001}).name == "sandbox-7000001"
