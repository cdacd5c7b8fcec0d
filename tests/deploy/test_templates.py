"""Rendered templates: systemd units pass `systemd-analyze verify`, supervisor programs and
redis.conf say what the roles promise, and every file carries the managed-by header."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest

from roles.llamacpp.defaults import DEFAULTS as LLAMACPP
from roles.llamacpp.endpoint import command_line, server_args
from roles.ollama.defaults import DEFAULTS as OLLAMA
from roles.proxy.defaults import DEFAULTS as PROXY
from roles.redis.defaults import DEFAULTS as REDIS
from roles.services import jinja_options

ROLES = Path(__file__).resolve().parents[2] / "roles"
TEMPLATES = sorted(ROLES.glob("*/templates/**/*.j2"))

OLLAMA_ENV = {
    "OLLAMA_HOST": f"{OLLAMA['ollama_bind']}:{OLLAMA['ollama_port']}",
    "OLLAMA_MODELS": "/workspace/ollama/models",
    "OLLAMA_CONTEXT_LENGTH": "32768",
    "OLLAMA_KEEP_ALIVE": "30m",
    "OLLAMA_FLASH_ATTENTION": "1",
}
LLAMA_SERVER = f"{LLAMACPP['llamacpp_prefix']}/{LLAMACPP['llamacpp_version']}/llama-server"
LLAMA_ARGS = server_args(
    {**LLAMACPP, "llamacpp_extra_args": ["--override-kv", "llama.context_length=int:32768"]},
    "/var/lib/llama-server/models/model with space.gguf",
)
SAMPLE = {
    "llamacpp": {
        "command": command_line([LLAMA_SERVER, *LLAMA_ARGS]),
        "run_as": LLAMACPP["llamacpp_user"],
        "home": LLAMACPP["llamacpp_home"],
    },
    "ollama": {
        "binary": f"{OLLAMA['ollama_prefix']}/bin/ollama",
        "run_as": OLLAMA["ollama_user"],
        "home": OLLAMA["ollama_home"],
        "groups": ["video", "render"],
        "env": OLLAMA_ENV,
    },
    "proxy": {
        "python": f"{PROXY['proxy_dir']}/venv/bin/python",
        "env_file": "/etc/proxy_app/proxy.env",
        "run_as": PROXY["proxy_user"],
        "home": PROXY["proxy_home"],
        "env": {"PROXY_HOST": "127.0.0.1", "PROXY_REDIS_URL": "rediss://:pw@localhost:6379/0"},
        "unit_extra": "",
    },
    "redis": {
        "config": "/etc/redis/redis.conf",
        "bind": REDIS["redis_bind"],
        "tls_port": REDIS["redis_tls_port"],
        "tls_dir": REDIS["redis_tls_dir"],
        "tls_auth_clients": REDIS["redis_tls_auth_clients"],
        "tls_protocols": REDIS["redis_tls_protocols"],
        "password": "pw",
        "maxmemory": REDIS["redis_maxmemory"],
        "maxmemory_policy": REDIS["redis_maxmemory_policy"],
        "extra_config": "",
        "pidfile": "",
    },
}


def render(template: Path, **extra: object) -> str:
    """Render like files.template does (StrictUndefined, trailing newline, our block options)."""
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, **jinja_options()
    )
    role = template.relative_to(ROLES).parts[0]
    data = {"program": role, "unit": role, "log_to_stdout": True, "log_file": "/x.log"}
    return env.from_string(template.read_text()).render({**data, **SAMPLE[role], **extra})


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROLES)))
def test_every_template_says_it_is_managed(template: Path) -> None:
    assert "managed by pyinfra" in render(template).splitlines()[0].lower()


@pytest.fixture(scope="module")
def unit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root holding systemd's own units, stub binaries and our rendered units."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze missing: apt-get install systemd")
    root = tmp_path_factory.mktemp("unit-root")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for binary in (SAMPLE["ollama"]["binary"], SAMPLE["proxy"]["python"], LLAMA_SERVER):
        stub = root / binary.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    for template in sorted(ROLES.glob("*/templates/systemd/*.j2")):
        role, name = template.parts[-4], template.name.removesuffix(".j2")
        dest = root / "etc/systemd/system" / name
        if not name.endswith(".service"):
            dest = root / "etc/systemd/system" / f"{role}.service.d" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(render(template))
    return root


@pytest.mark.parametrize("unit", ["ollama.service", "proxy.service", "llama-server.service"])
def test_unit_passes_systemd_analyze_verify(unit_root: Path, unit: str) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={unit_root}", unit],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("unit", ["ollama.service", "proxy.service", "llama-server.service"])
def test_unit_is_hardened_and_not_root(unit_root: Path, unit: str) -> None:
    text = (unit_root / "etc/systemd/system" / unit).read_text()
    for line in ("NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem="):
        assert line in text
    assert "User=root" not in text and "\nUser=" in text


def test_ollama_unit_keeps_gpus_visible(unit_root: Path) -> None:
    lines = (unit_root / "etc/systemd/system/ollama.service").read_text().splitlines()
    settings = [line for line in lines if not line.startswith("#")]
    assert not [line for line in settings if line.startswith(("PrivateDevices", "DeviceAllow"))]


def test_ollama_environment_lives_in_the_drop_in(unit_root: Path) -> None:
    drop_in = (unit_root / "etc/systemd/system/ollama.service.d/override.conf").read_text()
    for key, value in OLLAMA_ENV.items():
        assert f'Environment="{key}={value}"' in drop_in
    assert "OLLAMA_" not in (unit_root / "etc/systemd/system/ollama.service").read_text()


PROGRAMS = {"llamacpp": "llama-server"}  # role -> supervisor program, where they differ


def _program(role: str, **extra: object) -> configparser.SectionProxy:
    name = PROGRAMS.get(role, role)
    parser = configparser.RawConfigParser()
    template = ROLES / role / "templates/supervisor" / f"{name}.conf.j2"
    parser.read_string(render(template, **{"program": name, **extra}))
    return parser[f"program:{name}"]


@pytest.mark.parametrize("role", ["ollama", "llamacpp", "redis", "proxy"])
def test_supervisor_program_logs_to_stdout_by_default(role: str) -> None:
    program = _program(role)
    assert program["autostart"] == program["autorestart"] == "true"
    assert program["redirect_stderr"] == "true"
    assert program["stdout_logfile"] == "/dev/stdout"
    assert program["stdout_logfile_maxbytes"] == "0"
    assert program["user"] != "root"


@pytest.mark.parametrize("role", ["ollama", "llamacpp", "redis", "proxy"])
def test_supervisor_program_can_log_to_a_file(role: str) -> None:
    program = _program(role, log_to_stdout=False, log_file=f"/var/log/supervisor/{role}.log")
    assert program["stdout_logfile"] == f"/var/log/supervisor/{role}.log"


def test_supervised_ollama_gets_its_environment() -> None:
    environment = _program("ollama")["environment"]
    for key, value in OLLAMA_ENV.items():
        assert f'{key}="{value}"' in environment


def test_llama_server_gets_the_same_arguments_from_both_managers(unit_root: Path) -> None:
    """supervisord splits command= as a shell would; systemd's ExecStart= honours "…" alike."""
    unit = (unit_root / "etc/systemd/system/llama-server.service").read_text()
    exec_start = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    expected = [LLAMA_SERVER, *LLAMA_ARGS]
    assert shlex.split(exec_start.removeprefix("ExecStart=")) == expected
    assert shlex.split(_program("llamacpp")["command"]) == expected


def test_supervised_proxy_reads_the_env_file() -> None:
    command = _program("proxy")["command"]
    assert command.startswith("/bin/sh -c 'set -a; . /etc/proxy_app/proxy.env; exec ")
    assert command.endswith("/venv/bin/python -m proxy_app'")


def test_proxy_env_file_quotes_every_value() -> None:
    text = render(ROLES / "proxy/templates/proxy.env.j2")
    assert "PROXY_REDIS_URL='rediss://:pw@localhost:6379/0'" in text.splitlines()


def test_redis_conf_is_tls_only_on_loopback_in_the_foreground() -> None:
    lines = render(ROLES / "redis/templates/redis.conf.j2").splitlines()
    for line in (
        "bind 127.0.0.1",
        "port 0",
        "tls-port 6379",
        "tls-auth-clients no",
        "daemonize no",
        "maxmemory-policy allkeys-lru",
        "requirepass pw",
    ):
        assert line in lines
    assert "# redis_extra_config" not in lines


def test_redis_extra_config_is_appended() -> None:
    text = render(ROLES / "redis/templates/redis.conf.j2", extra_config="hz 20")
    assert text.rstrip().endswith("hz 20")


def test_redis_pidfile_only_where_systemd_reads_it() -> None:
    assert not [
        ln
        for ln in render(ROLES / "redis/templates/redis.conf.j2").splitlines()
        if ln.startswith("pidfile")
    ]
    text = render(ROLES / "redis/templates/redis.conf.j2", pidfile="/run/redis/redis-server.pid")
    assert "pidfile /run/redis/redis-server.pid" in text.splitlines()


def test_onstart_hook_is_a_managed_posix_script(tmp_path: Path) -> None:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, **jinja_options()
    )
    template = ROLES / "templates" / "onstart.sh.j2"
    text = env.from_string(template.read_text()).render(
        supervisor_conf="/etc/supervisor/supervisord.conf",
        vast_supervisor_launch="/etc/vast_boot.d/65-supervisor-launch.sh",
    )
    assert text.startswith("#!/bin/sh\n# managed by pyinfra")
    script = tmp_path / "onstart.sh"
    script.write_text(text)
    checked = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert 'supervisord -c "$conf"' in text
