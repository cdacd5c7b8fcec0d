"""A fleet of sandbox hosts, `sandbox-1` … `sandbox-N`, from the one cached rootfs.

Each host has its own state directory `<fleet dir>/<name>/` (key, known_hosts, ssh port, pid
files), its own container layer (an overlay upper directory) and its own network namespace; the
fleet directory (default `<repo>/.sandbox`, env `SANDBOX_STATE_DIR`) also holds `fleet.json`, the
host names inventories/local.py lists with each host's engine (env `SANDBOX_ENGINE`: "ollama",
the default, or "llamacpp"; comma-separated per host like `SANDBOX_KIND`), and the release
server's announcement.

    fleet = Fleet()
    fleet.up(2)                 # sandbox-1, sandbox-2 (and the release server)
    fleet.up(2, kinds=["systemd", "container"])   # sandbox-1 boots systemd
    fleet.restart("sandbox-1")  # like vast.ai's stop/start of one instance
    fleet.down()
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import release
from .errors import SandboxError
from .host import DEFAULT_SSH_PORT, REPO, Sandbox
from .rootfs import check_kind, default_rootfs
from .system import Log, lock

FLEET_FILE = "fleet.json"
PREFIX = "sandbox-"
ENGINES = ("ollama", "llamacpp")  # as roles/engine.py (host data `engine`)


def default_fleet_dir() -> Path:
    """Return the fleet directory (env `SANDBOX_STATE_DIR`, else `<repo>/.sandbox`)."""
    return Path(os.environ.get("SANDBOX_STATE_DIR") or REPO / ".sandbox").absolute()


def host_names(count: int) -> list[str]:
    """Return the names of a fleet of ``count`` hosts."""
    return [f"{PREFIX}{i}" for i in range(1, count + 1)]


def host_kinds(
    count: int, kinds: list[str] | None = None, current: dict[str, str] | None = None
) -> list[str]:
    """Return each host's kind: ``kinds`` (else env `SANDBOX_KIND`, comma-separated) in order,
    the last one repeated; with neither, each host keeps its ``current`` kind (new hosts:
    "container")."""
    if kinds is None:
        kinds = [k.strip() for k in os.environ.get("SANDBOX_KIND", "").split(",") if k.strip()]
    if not kinds:
        current = current or {}
        return [current.get(name, "container") for name in host_names(count)]
    kinds = [check_kind(kind) for kind in kinds]
    return [kinds[min(i, len(kinds) - 1)] for i in range(count)]


def host_engines(
    count: int, engines: list[str] | None = None, current: dict[str, str] | None = None
) -> list[str]:
    """Return each host's engine: ``engines`` (else env `SANDBOX_ENGINE`, comma-separated) in
    order, the last one repeated; with neither, each host keeps its ``current`` engine (new
    hosts: "ollama")."""
    if engines is None:
        engines = [e.strip() for e in os.environ.get("SANDBOX_ENGINE", "").split(",") if e.strip()]
    if not engines:
        current = current or {}
        return [current.get(name, "ollama") for name in host_names(count)]
    unknown = [engine for engine in engines if engine not in ENGINES]
    if unknown:
        raise SandboxError(
            f"{unknown[0]!r} is not an engine; use one of: {', '.join(ENGINES)} (SANDBOX_ENGINE)."
        )
    return [engines[min(i, len(engines) - 1)] for i in range(count)]


class Fleet:
    """Start, list, restart and stop the sandbox hosts of one fleet directory.

    + root: the fleet directory (default `default_fleet_dir()`)
    + rootfs: the cached container rootfs every container host mounts read-only (env
      `SANDBOX_ROOTFS`); systemd hosts use its `-systemd` sibling
    + data_root: where the hosts' container layers go, `<data_root>/<name>` (env
      `SANDBOX_DATA_DIR`; default: each host's own under /var/lib/llm-selfhost)
    + base_port: host i prefers ssh port base_port + i - 1 (env `SANDBOX_SSH_PORT`, else 2222);
      0 = any free port
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        rootfs: str | Path | None = None,
        data_root: str | Path | None = None,
        base_port: int | None = None,
    ) -> None:
        self.root = Path(root or default_fleet_dir()).absolute()
        self.rootfs = Path(rootfs or default_rootfs()).absolute()
        data_root = data_root or os.environ.get("SANDBOX_DATA_DIR")
        self.data_root = Path(data_root).absolute() if data_root else None
        if base_port is None:
            base_port = int(os.environ.get("SANDBOX_SSH_PORT") or DEFAULT_SSH_PORT)
        self.base_port = base_port

    def names(self) -> list[str]:
        """Return the hosts of the fleet, as the last `up` sized it ([] before any)."""
        return list(self._recorded())

    def _recorded(self) -> dict[str, str]:
        """Host name -> kind, as the last `up` recorded them."""
        try:
            fleet = json.loads((self.root / FLEET_FILE).read_text())
        except (OSError, ValueError):
            return {}
        names = [str(name) for name in fleet.get("hosts", [])]
        kinds = [str(kind) for kind in fleet.get("kinds", [])] or ["container"] * len(names)
        return dict(zip(names, kinds, strict=False))

    def engines(self) -> dict[str, str]:
        """Host name -> engine ("ollama" or "llamacpp"), as the last `up` recorded them."""
        try:
            recorded = json.loads((self.root / FLEET_FILE).read_text()).get("engines", [])
        except (OSError, ValueError):
            recorded = []
        names = self.names()
        engines = [str(engine) for engine in recorded] or ["ollama"] * len(names)
        return dict(zip(names, engines, strict=False))

    def kinds(self, count: int) -> list[str]:
        """The kinds `up(count)` would give hosts 1…count (env `SANDBOX_KIND`, else as they are)."""
        return host_kinds(count, None, self._recorded())

    def rootfs_of(self, kind: str) -> Path:
        """The cached rootfs hosts of ``kind`` mount."""
        return (
            self.rootfs
            if kind == "container"
            else self.rootfs.with_name(f"{self.rootfs.name}-{kind}")
        )

    def host(self, name: str, kind: str | None = None) -> Sandbox:
        """Return the host called ``name`` (``sandbox-<i>``), of ``kind`` (default: recorded)."""
        index = name.removeprefix(PREFIX)
        if not (name.startswith(PREFIX) and index.isdigit() and int(index) >= 1):
            raise SandboxError(
                f"{name!r} is not a sandbox host name; they are sandbox-1, sandbox-2…"
            )
        kind = kind or self._recorded().get(name)
        return Sandbox(
            self.root / name,
            name=name,
            kind=kind,
            rootfs=self.rootfs_of(kind or "container"),
            data_dir=self.data_root / name if self.data_root else None,
            ssh_port=None if self.base_port else 0,
            default_port=self.base_port + int(index) - 1 if self.base_port else None,
        )

    def hosts(self) -> list[Sandbox]:
        """Return the fleet's hosts, in order."""
        return [self.host(name) for name in self.names()]

    def up(
        self,
        count: int,
        *,
        kinds: list[str] | None = None,
        engines: list[str] | None = None,
        log: Log = print,
    ) -> list[Sandbox]:
        """Start hosts 1…count (those running stay as they are) and stop any beyond them.

        + kinds: each host's kind, the last repeated (default: env `SANDBOX_KIND`, else each
          host's current kind, "container" for a new one); a running host of another kind is
          stopped and booted as the new one
        + engines: each host's engine, the last repeated (default: env `SANDBOX_ENGINE`, else
          each host's recorded engine, "ollama" for a new one); read by inventories/local.py
        """
        if count < 1:
            raise SandboxError(
                f"A fleet needs at least one host, not {count}; use SANDBOX_HOSTS=1."
            )
        kinds = host_kinds(count, kinds, self._recorded())
        chosen = host_engines(count, engines, self.engines())
        wanted = dict(zip(host_names(count), kinds, strict=True))
        with lock(self.root / "fleet.lock"):
            for extra in sorted(set(self._known()) - set(wanted)):
                log(f"Stopping {extra} (the fleet now has {count} host(s))")
                self.host(extra).down()
            for name, kind in wanted.items():
                old = self.host(name)
                if old.kind != kind and old.is_running():
                    log(f"Stopping {name} to boot it as a {kind} host")
                    old.down()
            release.ensure_running(self.root)
            self._record(wanted, chosen)
        hosts = [self.host(name) for name in wanted]
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            list(pool.map(lambda box: box.up(log=log), hosts))
        return hosts

    def add(self, name: str, *, log: Log = print) -> Sandbox:
        """Start one container host called ``name`` and list it in the fleet, the others left
        as they are (the vast.ai double's rentals come one at a time); the release server
        starts with it."""
        with lock(self.root / "fleet.lock"):
            release.ensure_running(self.root)
            engines = {**self.engines(), name: "ollama"}
            self._record({**self._recorded(), name: "container"}, list(engines.values()))
        return self.host(name).up(log=log)

    def remove(self, name: str) -> None:
        """Destroy one host (its processes, container layer and state) and drop it from the
        fleet; the release server stops with the last host."""
        box = self.host(name)
        box.destroy()
        shutil.rmtree(box.state_dir, ignore_errors=True)
        with lock(self.root / "fleet.lock"):
            left = {other: kind for other, kind in self._recorded().items() if other != name}
            engines = self.engines()
            self._record(left, [engines.get(other, "ollama") for other in left])
            if not left:
                release.stop(self.root)

    def restart(self, name: str, *, log: Log = print) -> Sandbox:
        """Kill every process of one host and boot it again (its disk stays)."""
        if name not in self.names():
            raise SandboxError(
                f"{name} is not in the fleet ({', '.join(self.names()) or 'no hosts'}); "
                "start it with `make sandbox-up` (SANDBOX_HOSTS=N for more hosts)."
            )
        return self.host(name).restart(log=log)

    def down(self) -> list[str]:
        """Stop every host of the fleet directory and the release server; return their names."""
        names = self._known()
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            list(pool.map(lambda name: self.host(name).down(), names))
        release.stop(self.root)
        return names

    def destroy(self) -> list[str]:
        """Stop the fleet and delete every host's container layer (the rootfs stays)."""
        names = self.down()
        for name in names:
            self.host(name).destroy()
        (self.root / FLEET_FILE).unlink(missing_ok=True)
        return names

    def status(self) -> list[tuple[str, str]]:
        """Return (name, status) for each host of the fleet."""
        return [(box.name, box.status()) for box in self.hosts()]

    def _record(self, hosts: dict[str, str], engines: list[str]) -> None:
        """Write fleet.json: the hosts (name -> kind) and their engines, in order."""
        self.root.mkdir(parents=True, exist_ok=True)
        fleet = {"hosts": list(hosts), "kinds": list(hosts.values()), "engines": engines}
        (self.root / FLEET_FILE).write_text(json.dumps(fleet, indent=2) + "\n")

    def _known(self) -> list[str]:
        """Every host with a state directory here, in the fleet or left over from a bigger one."""
        found = {
            p.name
            for p in self.root.glob(f"{PREFIX}*")
            if p.name.removeprefix(PREFIX).isdigit() and (p / "id_ed25519").exists()
        }
        return sorted(found | set(self.names()), key=lambda n: int(n.removeprefix(PREFIX)))
