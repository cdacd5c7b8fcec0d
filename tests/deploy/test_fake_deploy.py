"""The whole deploy on pyinfra's @fake connector: a systemd host and a container host.

No target is touched; facts answer from tests/deploy/fake_inventory.py (Debian 12, nothing
installed). Proves the deploy renders every template with default data only, takes the right
service-manager branch per host, refuses unsupported systems, and never prints a secret.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from roles import secrets

REPO = Path(__file__).resolve().parents[2]
PYINFRA = Path(sys.executable).with_name("pyinfra")
INVENTORY = REPO / "tests" / "deploy" / "fake_inventory.py"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Secrets folder and a stand-in wheel (the fake host never installs it)."""
    root = tmp_path_factory.mktemp("fake-deploy")
    (root / "llm_selfhost_proxy-0.1.0-py3-none-any.whl").write_bytes(b"not a real wheel")
    return root


def run_fake(workdir: Path, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SELFHOST_SECRETS_DIR": str(workdir / "secrets"),
        "PYINFRA_FAKE_DELAY": "0",
        "PYINFRA_FAKE_DELAY_JITTER": "0",
        "PYTHONPATH": str(REPO),
    }
    wheel = workdir / "llm_selfhost_proxy-0.1.0-py3-none-any.whl"
    return subprocess.run(
        [
            str(PYINFRA),
            "-y",
            "-vv",
            "--json",
            "--data",
            f"proxy_wheel={wheel}",
            *args,
            str(INVENTORY),
            str(REPO / "deploy.py"),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def fake_run(workdir: Path) -> subprocess.CompletedProcess[str]:
    return run_fake(workdir)


def commands_of(run: subprocess.CompletedProcess[str], host: str) -> list[str]:
    prefix = f"[@fake/{host}]"
    return [
        line.split(">>>", 1)[1].strip()
        for line in run.stderr.splitlines()
        if line.strip().startswith(prefix) and ">>>" in line
    ]


def test_deploy_succeeds_on_both_kinds_of_host(fake_run: subprocess.CompletedProcess[str]) -> None:
    assert fake_run.returncode == 0, fake_run.stderr[-3000:]
    totals = json.loads(fake_run.stdout)["results"]["totals"]
    assert totals["error"] == 0 and totals["hosts"] > 0


def test_container_host_uses_supervisor_only(fake_run: subprocess.CompletedProcess[str]) -> None:
    commands = commands_of(fake_run, "containerhost")
    assert any("supervisorctl" in c and "update" in c for c in commands)
    assert not [c for c in commands if "systemctl" in c]


def test_systemd_host_uses_systemd_only(fake_run: subprocess.CompletedProcess[str]) -> None:
    commands = commands_of(fake_run, "systemdhost")
    assert "systemctl daemon-reload" in commands
    assert not [c for c in commands if "supervisor" in c]


def test_no_secret_is_printed(
    workdir: Path, fake_run: subprocess.CompletedProcess[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SELFHOST_SECRETS_DIR", str(workdir / "secrets"))
    for value in (secrets.token("proxy_api_key"), secrets.token("redis_password")):
        assert value not in fake_run.stdout + fake_run.stderr


def test_role_defaults_alone_render(workdir: Path, tmp_path: Path) -> None:
    # From an empty directory: no config.py, no group_data/ -- only the roles' defaults.
    run = run_fake(workdir, "--limit", "@fake/containerhost", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]


def test_unsupported_system_is_refused_with_a_sentence(workdir: Path) -> None:
    release = {"cat /etc/os-release": ["ID=ubuntu", 'VERSION_ID="20.04"'], "uname -m": ["x86_64"]}
    run = run_fake(
        workdir, "--limit", "@fake/containerhost", "--data", f"fake_responses={json.dumps(release)}"
    )
    assert run.returncode != 0
    assert "supports only Ubuntu 22.04, Ubuntu 24.04 and Debian 12" in run.stderr


def test_diff_is_refused_because_it_would_print_secrets(workdir: Path) -> None:
    run = run_fake(workdir, "--diff", "--limit", "@fake/containerhost")
    assert run.returncode != 0
    assert "--diff would print the Redis key" in run.stderr


def test_external_redis_skips_the_redis_role(workdir: Path) -> None:
    ca = workdir / "external-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    run = run_fake(
        workdir,
        "--limit",
        "@fake/containerhost",
        "--data",
        "redis_external_url=rediss://:pw@cache.example:6380/0",
        "--data",
        f"redis_external_ca_file={ca}",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    names = [op["name"] for op in json.loads(run.stdout)["results"]["operations"]]
    assert not [name for name in names if name.startswith("Deploy Redis")]
    assert "Deploy proxy | Upload the Redis CA certificate" in names


NVIDIA_SMI = (
    "nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null || true"
)


def _with_gpu(mib: int) -> str:
    responses = {
        "cat /etc/os-release": ["ID=debian", 'VERSION_ID="12"'],
        "uname -m": ["x86_64"],
        "uname -s": ["Linux"],
        "command -v useradd": ["/usr/sbin/useradd"],
        NVIDIA_SMI: [str(mib)],
    }
    return f"fake_responses={json.dumps(responses)}"


def test_models_that_cannot_fit_the_gpu_are_refused_with_a_sentence(workdir: Path) -> None:
    """The default models (7b + 1.5b at 32768 tokens, 10.5 GB) on an 8 GB card."""
    run = run_fake(workdir, "--limit", "@fake/containerhost", "--data", _with_gpu(8192))
    assert run.returncode != 0
    assert "need 10.5 GB of GPU memory together, but this GPU has 8.6 GB" in run.stderr
    assert "use the 8 GB profile (qwen2.5-coder:7b with no background model" in run.stderr


def test_models_that_fit_the_gpu_deploy(workdir: Path) -> None:
    run = run_fake(workdir, "--limit", "@fake/containerhost", "--data", _with_gpu(24564))
    assert run.returncode == 0, run.stderr[-3000:]
