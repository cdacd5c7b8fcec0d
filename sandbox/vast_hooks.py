"""The vast.ai double's instances as sandbox hosts: each rental is a real vast-shaped container.

Plugged into the double (``Market(hooks=SandboxHooks(fleet))``, or
``python -m vast_double --hooks sandbox.vast_hooks:SandboxHooks``), it does to a host of a
sandbox fleet what vast.ai does to a container:

- ``on_create``: host ``sandbox-<instance id>`` comes up with the account's registered SSH keys
  in root's authorized_keys and the instance's ``onstart`` in /root/onstart.sh (written before
  the first boot, which runs it); the row's endpoint is the host's forwarded loopback port, as a
  direct-SSH instance (``public_ipaddr`` + ``ports["22/tcp"]``) and as ``ssh_host``/``ssh_port``;
- ``on_stop``: every process of the host dies, its disk stays;
- ``on_start``: it boots again: sshd, then /root/onstart.sh;
- ``on_destroy``: the host, its disk and its state are gone.

The hosts cannot download Ollama, so the fleet's release server (sandbox/release.py) runs while
any host does, and its release is written as deploy data to ``<fleet dir>/vast_data.json``: a
deploy through inventories/vast.py uses it with ``VAST_DATA_FILE`` pointing there.

    hooks = SandboxHooks(Fleet(tmp / "fleet", base_port=0))
    with VastDouble(Market(offers=..., ssh_keys=[my_key], hooks=hooks)) as api: ...
    # VAST_DATA_FILE=hooks.data_file VAST_URL=api.url make up COUNT=2 YES=1
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vast_double.market import ApiError

from .errors import SandboxError
from .fleet import PREFIX, Fleet, default_fleet_dir
from .host import Sandbox
from .release import read_release

DATA_FILE = "vast_data.json"


def _quiet(*_: object) -> None:
    pass


class SandboxHooks:
    """``vast_double.InstanceHooks`` over a sandbox fleet.

    + fleet: where the hosts live; default: the fleet directory `<SANDBOX_STATE_DIR or
      .sandbox>/vast` with any free SSH ports (never the user's `make deploy` fleet)
    """

    def __init__(self, fleet: Fleet | None = None) -> None:
        self.fleet = fleet or Fleet(default_fleet_dir() / "vast", base_port=0)
        if self.fleet.base_port:
            raise ValueError("SandboxHooks needs a fleet with base_port=0 (instance ids as names)")

    @property
    def data_file(self) -> Path:
        """The deploy data for VAST_DATA_FILE: the fleet's Ollama release (version, URL, SHA)."""
        return self.fleet.root / DATA_FILE

    def host(self, row: Mapping[str, Any]) -> Sandbox:
        """The sandbox host behind an instance row."""
        return self.fleet.host(f"{PREFIX}{row['id']}")

    def on_create(self, row: Mapping[str, Any], ssh_keys: Sequence[str]) -> Mapping[str, Any]:
        box = self.host(row)
        box.state_dir.mkdir(parents=True, exist_ok=True)
        box.authorized_keys_path.write_text("".join(f"{key.strip()}\n" for key in ssh_keys))
        try:
            if row.get("onstart"):
                box.seed("/root/onstart.sh", f"{row['onstart']}\n", mode=0o755)
            self.fleet.add(box.name, log=_quiet)
        except SandboxError as exc:
            self.fleet.remove(box.name)  # nothing was rented
            raise _failed(row, "boot", exc) from exc
        self._write_data()
        return _endpoint(box)

    def on_stop(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        self.host(row).down()
        return {"ports": {}}

    def on_start(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            box = self.host(row).up(log=_quiet)
        except SandboxError as exc:
            raise _failed(row, "start", exc) from exc
        return _endpoint(box)

    def on_destroy(self, row: Mapping[str, Any]) -> None:
        self.fleet.remove(self.host(row).name)

    def _write_data(self) -> None:
        release = read_release(self.fleet.root)
        if release is None:  # Fleet.add started it; gone means it died
            raise RuntimeError(f"The release server of {self.fleet.root} is not running.")
        data = {
            "ollama_version": release["version"],
            "ollama_download_url": release["url"],
            "ollama_sha256": release["sha256"],
        }
        self.data_file.write_text(json.dumps(data, indent=2) + "\n")


def _failed(row: Mapping[str, Any], what: str, exc: SandboxError) -> ApiError:
    """The API's answer when the host behind an instance fails: a 500 naming the reason."""
    return ApiError(
        500, "host_failed", f"The sandbox host of instance {row['id']} did not {what}: {exc}"
    )


def _endpoint(box: Sandbox) -> dict[str, Any]:
    """The row fields that say how to reach the host: its loopback port, direct and proxied."""
    port = box.ssh_port
    return {
        "public_ipaddr": box.hostname,
        "ports": {"22/tcp": [{"HostIp": box.hostname, "HostPort": str(port)}]},
        "ssh_host": box.hostname,
        "ssh_port": port,
    }
