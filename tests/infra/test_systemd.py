"""What only systemd can answer, on hosts it runs: each unit active, enabled, running as its user,
no failed unit, and each unit's `systemd-analyze security` exposure at or below the recorded
score. Container hosts (supervisord) skip these; tests/infra's other modules cover them alike.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from testinfra.host import Host

from tests.infra.conftest import skip_unless_engine

pytestmark = pytest.mark.infra

# unit -> the host data key naming its user (None: the package's fixed user)
UNITS = {
    "ollama": "ollama_user",
    "llama-server": "llamacpp_user",
    "redis-server": None,
    "proxy": "proxy_user",
}
# Units only one engine's hosts run (the others, proxy_app included, run on every host).
ENGINE_OF = {"ollama": "ollama", "llama-server": "llamacpp"}
# `systemd-analyze security` overall exposure (0 = locked down, 10 = exposed), measured on the
# sandbox's systemd host (Debian 12, systemd 252); a regression above these fails.
EXPOSURE = {"ollama": 3.4, "llama-server": 3.4, "redis-server": 1.1, "proxy": 3.0}


@pytest.fixture(autouse=True)
def _systemd_only(uses_systemd: bool) -> None:
    if not uses_systemd:
        pytest.skip("not a systemd host: its programs run under supervisord")


@pytest.fixture
def unit(request: pytest.FixtureRequest, engine: str) -> str:
    """The parametrized unit, skipped on hosts whose engine does not run it."""
    name = str(request.param)
    skip_unless_engine(engine, ENGINE_OF.get(name, engine), f"{name}.service")
    return name


@pytest.mark.parametrize("unit", UNITS, indirect=True)
def test_unit_is_active_and_enabled(host: Host, unit: str) -> None:
    service = host.service(unit)
    assert service.is_running and service.is_enabled


@pytest.mark.parametrize("unit, user_key", UNITS.items(), indirect=["unit"])
def test_unit_runs_as_its_user(
    host: Host, host_data: dict[str, Any], unit: str, user_key: str | None
) -> None:
    pid = host.check_output(f"systemctl show -p MainPID --value {unit}")
    assert pid not in ("", "0"), f"{unit} has no main process"
    user = host.check_output(f"ps -o user= -p {pid}")
    assert user == (host_data[user_key] if user_key else "redis")


def test_no_unit_failed(host: Host) -> None:
    assert host.check_output("systemctl --failed --no-legend --plain") == ""


@pytest.mark.parametrize("unit", UNITS, indirect=True)
def test_exposure_score_is_at_most_the_recorded_one(host: Host, unit: str) -> None:
    out = host.check_output(f"systemd-analyze security --no-pager {unit}.service")
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert found, out[-500:]
    score = float(found.group(1))
    print(f"{unit}.service exposure {score}")
    assert score <= EXPOSURE[unit], f"{unit}.service exposure {score} > {EXPOSURE[unit]}"
