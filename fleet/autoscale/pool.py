"""The autoscaler's gateway: HAProxy started with no host and an admin socket, hosts joining and
leaving while it runs, each through its own supervised SSH tunnel.

    with Pool(GatewayConfig(port=8001, stats_port=8404), workdir) as pool:
        pool.join("vast-7000001", ssh_data)   # tunnel, then fleet/admin.py's join
        pool.drain("vast-7000001")            # no new request; streams go on
        pool.leave("vast-7000001")            # del server, tunnel closed

`connect` opens a host's tunnel and returns its local port; tests pass one that returns the
port of a local proxy_app instead.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fleet.admin import Admin, Load, read_load
from fleet.errors import TunnelError
from fleet.haproxy import GatewayConfig, GatewayError, HAProxy, write_config
from fleet.ssh_tunnel import wait_for_port
from fleet.supervisor import Supervisor

Connect = Callable[[str, Mapping[str, Any]], int]


class Pool:
    """HAProxy plus the tunnels of the hosts that joined it."""

    def __init__(self, cfg: GatewayConfig, workdir: Path, connect: Connect | None = None) -> None:
        self.cfg = dataclasses.replace(cfg, hosts=[], admin_socket=str(workdir / "admin.sock"))
        self.workdir = workdir
        self.tunnels = Supervisor({}, output_dir=workdir)
        self.connect = connect or self._tunnel
        self.haproxy = HAProxy(write_config(self.cfg, workdir), self.cfg)
        self.admin = Admin(self.cfg)
        self._members: dict[str, bool] = {}  # name -> draining
        self.ports: dict[str, int] = {}  # name -> local port of its proxy_app (the tunnel)
        self._lock = threading.Lock()

    def _tunnel(self, name: str, data: Mapping[str, Any]) -> int:
        from fleet.gateway import _free_port, tunnel_commands

        port = _free_port()
        argv = tunnel_commands([{"name": name, "data": data}], {name: port})[name]
        self.tunnels.add(name, argv)
        try:
            wait_for_port(port, timeout=20)
        except TunnelError as exc:
            self.tunnels.remove(name)
            raise GatewayError(f"The tunnel to {name} did not open: {exc}") from exc
        return port

    def members(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._members)

    def join(self, name: str, data: Mapping[str, Any]) -> None:
        port = self.connect(name, data)
        try:
            self.admin.join(name, port)
        except GatewayError:
            self.tunnels.remove(name)
            raise
        with self._lock:
            self._members[name] = False
            self.ports[name] = port

    def drain(self, name: str) -> None:
        self.admin.drain(name)
        with self._lock:
            self._members[name] = True

    def leave(self, name: str) -> None:
        self.admin.remove(name)
        self.tunnels.remove(name)
        with self._lock:
            self._members.pop(name, None)
            self.ports.pop(name, None)

    def load(self) -> Load:
        return read_load(self.cfg)

    def start(self) -> Pool:
        self.tunnels.start()
        self.haproxy.start()
        return self

    def stop(self) -> None:
        self.haproxy.stop()
        self.tunnels.stop()

    def __enter__(self) -> Pool:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
