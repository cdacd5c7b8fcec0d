"""The shipped alert rules and scrape configuration, checked by the tool that reads them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: `make apt` installs Debian's prometheus package"
    return subprocess.run(
        [tool, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "rules", "rules.yml"),
        ("test", "rules", "rules_test.yml"),
        ("check", "config", "prometheus.yml"),
    ],
    ids=["check-rules", "unit-tests", "check-config"],
)
def test_autoscale_alert_rules_pass_promtool(args: tuple[str, ...]) -> None:
    done = promtool(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_autoscale_alert_rules_name_what_the_issue_asks_for() -> None:
    text = (MONITORING / "rules.yml").read_text()
    for alert in (
        "HostDown",
        "Overloaded529Rising",
        "SpendNearBudget",
        "HostStuckLoading",
        "AutoscalerUnableToAct",
        "TimeToFirstTokenDegrading",
    ):
        assert f"alert: {alert}\n" in text
        assert f"alertname: {alert}\n" in (MONITORING / "rules_test.yml").read_text()
