"""testinfra host checks against any pyinfra inventory, with the deploy's own expected values.

Three ways to pick the hosts:

- ``pytest tests/infra --inventory inventories/vast.py``: every host of that inventory, reached
  over ssh with a generated ssh_config (endpoint, key, project known_hosts from the host data);
  expected values are the host's data (group_data/ applied) over the roles' defaults. If the
  inventory cannot be loaded, every check fails with pyinfra's reason. ``--limit NAME``
  (repeatable, like pyinfra's) checks exactly those hosts of it (`make up` uses it; `-k` would
  match vast-1 in vast-10 too).
- ``pytest tests/infra --hosts=ssh://sandbox --ssh-config=.sandbox/ssh_config``: testinfra's own
  host selection; expected values are the roles' defaults with group_data/all.py.
- neither (the full suite): the tests' own two-host sandbox fleet, deployed once per session,
  sandbox-1 booting systemd, sandbox-2 a vast.ai-shaped container, both restarted before the
  checks (tests/deployed.py);
  skipped where the sandbox cannot run (not root, no debootstrap).
"""

from __future__ import annotations

import runpy
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import testinfra
from testinfra.host import Host

from fleet.errors import TunnelError
from fleet.hostdata import REPO, load_inventory, role_defaults
from roles.facts import SUPERVISOR_CONF
from tests.deployed import FLEET_HOSTS, DeployedFleet
from tests.deployed import INVENTORY as DEPLOYED_INVENTORY

LOADED = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--inventory",
        default=None,
        metavar="PATH",
        help="pyinfra inventory whose hosts tests/infra checks (e.g. inventories/local.py); "
        "default: the sandbox, deployed for the session",
    )
    parser.addoption(
        "--limit",
        action="append",
        default=[],
        metavar="NAME",
        help="with --inventory: check only this host of it, by its exact name (repeatable)",
    )


@dataclass
class Target:
    """The hosts under test: inventory data per name, and an ssh_config reaching them."""

    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    ssh_config: Path | None = None
    inventory: Path | None = None  # None with --hosts
    env: dict[str, str] = field(default_factory=dict)  # for tools loading the inventory


@dataclass
class InfraHost:
    """One host under check: inventory name (None with --hosts), testinfra host, its data."""

    name: str | None
    host: Host
    data: dict[str, Any]


def _loaded_inventory(config: pytest.Config) -> list[dict[str, Any]] | TunnelError:
    """Load ``--inventory`` once per session; a failure is kept to fail each check with."""
    if LOADED not in config.stash:
        try:
            config.stash[LOADED] = load_inventory(config.getoption("inventory"))
        except TunnelError as exc:
            config.stash[LOADED] = exc
    return config.stash[LOADED]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "infra_host" not in metafunc.fixturenames:
        return
    config = metafunc.config
    params: list[Any]
    if config.option.hosts:
        params = sorted(
            testinfra.get_hosts(
                config.option.hosts.split(","),
                connection=config.option.connection,
                ssh_config=config.option.ssh_config,
                ssh_identity_file=config.option.ssh_identity_file,
                sudo=config.option.sudo,
                sudo_user=config.option.sudo_user,
            ),
            key=lambda h: h.backend.get_pytest_id(),
        )
        ids = [h.backend.get_pytest_id() for h in params]
    elif config.getoption("inventory"):
        loaded = _loaded_inventory(config)
        params = ["<inventory>"] if isinstance(loaded, TunnelError) else [h["name"] for h in loaded]
        limit = config.getoption("limit")
        if limit and not isinstance(loaded, TunnelError):
            params = list(dict.fromkeys(limit))  # a name missing from it fails in infra_host
        ids = [str(p) for p in params]
    else:
        params = ids = list(FLEET_HOSTS)
    metafunc.parametrize("infra_host", params, ids=ids, indirect=True, scope="module")


def _ssh_config(hosts: list[dict[str, Any]], folder: Path) -> Path:
    """An OpenSSH config with one ``Host <name>`` block per inventory host."""
    blocks = []
    for entry in hosts:
        data = entry["data"]
        lines = [
            f"Host {entry['name']}",
            f"    HostName {data.get('ssh_hostname') or entry['name']}",
            f"    Port {data.get('ssh_port') or 22}",
            f"    User {data.get('ssh_user') or 'root'}",
        ]
        if data.get("ssh_key"):
            lines += [f"    IdentityFile {data['ssh_key']}", "    IdentitiesOnly yes"]
        if data.get("ssh_known_hosts_file"):
            lines.append(f"    UserKnownHostsFile {data['ssh_known_hosts_file']}")
        checking = data.get("ssh_strict_host_key_checking") or "accept-new"
        lines += [
            f"    StrictHostKeyChecking {checking}",
            "    BatchMode yes",
            "    LogLevel ERROR",
            f"    ControlPath {folder}/cm-%C",
        ]
        blocks.append("\n".join(lines))
    path = folder / "ssh_config"
    path.write_text("\n\n".join(blocks) + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def infra_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Target:
    config = request.config
    if config.option.hosts:
        return Target()
    env: dict[str, str] = {}
    if config.getoption("inventory"):
        loaded = _loaded_inventory(config)
        if isinstance(loaded, TunnelError):
            pytest.fail(str(loaded), pytrace=False)
        hosts, inventory = loaded, Path(config.getoption("inventory")).resolve()
    else:
        # The restart comes first, so the restarted host's checks run on services that came
        # back by themselves.
        request.getfixturevalue("restarted_hosts")
        deployed: DeployedFleet = request.getfixturevalue("deployed_fleet")
        hosts, inventory = deployed.hosts(), DEPLOYED_INVENTORY
        env.update(deployed.env)
    folder = tmp_path_factory.mktemp("ssh")
    by_name = {h["name"]: h["data"] for h in hosts}
    return Target(by_name, _ssh_config(hosts, folder), inventory, env)


def _plain_data() -> dict[str, Any]:
    """Expected values without an inventory: role defaults, then group_data/all.py."""
    shared = runpy.run_path(str(REPO / "group_data" / "all.py"))
    data = {
        k: v
        for k, v in shared.items()
        if not k.startswith("_") and not isinstance(v, (types.ModuleType, type, types.FunctionType))
    }
    return {**role_defaults(), **data}


@pytest.fixture(scope="module")
def infra_host(request: pytest.FixtureRequest, infra_target: Target) -> InfraHost:
    """The parametrized host with its expected data."""
    if isinstance(request.param, Host):
        return InfraHost(None, request.param, _plain_data())
    name = request.param
    if name not in infra_target.hosts:
        pytest.fail(
            f"--limit {name}: no such host in the inventory {infra_target.inventory} (it has"
            f" {', '.join(infra_target.hosts) or 'none'}).",
            pytrace=False,
        )
    host = testinfra.get_host(f"ssh://{name}", ssh_config=str(infra_target.ssh_config))
    return InfraHost(name, host, infra_target.hosts[name])


@pytest.fixture(scope="module", autouse=True)
def _deploy_env(infra_target: Target) -> Iterator[None]:
    """The environment of the deploy under check (its secrets folder) for reading its secrets."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in infra_target.env.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def host(infra_host: InfraHost) -> Host:
    """The testinfra host under check (overrides testinfra's own fixture in tests/infra)."""
    return infra_host.host


@pytest.fixture(scope="module")
def host_data(infra_host: InfraHost) -> dict[str, Any]:
    """The values the deploy used for this host: its data over the roles' defaults."""
    return infra_host.data


@pytest.fixture(scope="module")
def engine(host_data: dict[str, Any]) -> str:
    """The host's engine (host data ``engine``, as deploy.py reads it): "ollama" or "llamacpp"."""
    return str(host_data.get("engine") or "ollama")


def skip_unless_engine(engine: str, wanted: str, what: str) -> None:
    """Skip a check of ``what`` on hosts whose engine is not ``wanted`` (nothing to check)."""
    if engine != wanted:
        pytest.skip(f"the host's engine is {engine}: {what} is not deployed there")


@pytest.fixture(scope="module")
def uses_systemd(host: Host) -> bool:
    """Whether systemd runs the host (the same test the deploy makes)."""
    return bool(host.file("/run/systemd/system").is_directory)


@pytest.fixture
def program(host: Host, uses_systemd: bool) -> Callable[..., Any]:
    """``program(name, unit=None)``: supervisor program on containers, systemd unit otherwise."""

    def get(name: str, unit: str | None = None) -> Any:
        if uses_systemd:
            return host.service(unit or name)
        return host.supervisor(name, supervisorctl_conf=SUPERVISOR_CONF)

    return get


def listener_pid(host: Host, port: int) -> int:
    """The pid of the process listening on TCP ``port`` (from ``ss -ltnp``)."""
    out = host.check_output(f"ss -ltnpH 'sport = :{port}'")
    marker = "pid="
    assert marker in out, f"nothing listens on port {port}: {out!r}"
    return int(out.split(marker, 1)[1].split(",", 1)[0])
