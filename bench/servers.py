"""Start/stop the bench's servers as subprocesses on free 127.0.0.1 ports, with readiness checks.

Servers: the Ollama API double, proxy_app (`python -m proxy_app`), a TLS-only redis-server
(devkit/redis_tls.py) and the LiteLLM proxy (its own venv, bench/.litellm-venv). Each `Proc` can
report its process tree's peak RSS (VmHWM, reset per load case through /proc/PID/clear_refs) and
CPU time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devkit.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
LITELLM_VENV = BENCH / ".litellm-venv"
# Pinned: newer releases need `litellm-proxy`/`litellm-proxy-extras` builds the index lacks.
LITELLM_SPEC = "litellm[proxy]==1.108.5"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(p) for p in fh.read().split()]
        except OSError:
            continue
    return out


def process_tree(pid: int) -> list[int]:
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo += _children(p)
    return seen


def _status_kb(pid: int, field_name: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    url: str
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def pids(self) -> list[int]:
        return process_tree(self.pid)

    def reset_peak_rss(self) -> bool:
        """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
        ok = True
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as fh:
                    fh.write("5")
            except OSError:
                ok = False
        return ok

    def peak_rss_kb(self) -> int:
        return sum(_status_kb(pid, "VmHWM") for pid in self.pids())

    def rss_kb(self) -> int:
        return sum(_status_kb(pid, "VmRSS") for pid in self.pids())

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGINT if self.name.startswith("proxy") else signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in reversed(self.pids()):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.popen.wait(timeout=5)


class StartError(RuntimeError):
    pass


def _spawn(
    argv: list[str], env: dict[str, str], log_path: Path, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child
    try:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def wait_http(proc: Proc, path: str, timeout: float, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StartError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            req = urllib.request.Request(proc.url + path, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.1)
    proc.stop()
    raise StartError(
        f"{proc.name} not ready on {path} after {timeout:.0f}s ({last}):\n{proc.log_tail()}"
    )


def start_double(workdir: Path, reply: str) -> Proc:
    port = free_port()
    argv = [sys.executable, "-m", "bench.double_runner", "--port", str(port), "--reply", reply]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = workdir / "double.log"
    proc = Proc("double", _spawn(argv, env, log), f"http://{HOST}:{port}", log)
    wait_http(proc, "/api/version", 20)
    return proc


def start_proxy(
    workdir: Path,
    name: str,
    ollama_url: str,
    api_key: str,
    *,
    redis_url: str = "",
    redis_ca_file: str = "",
    workers: int = 1,
    profile_to: Path | None = None,
    source: Path = ROOT,
    settings: dict[str, str] | None = None,
) -> Proc:
    """python -m proxy_app; `source` is the directory holding the proxy_app package to run;
    `settings`, more PROXY_* variables (e.g. PROXY_ENGINE)."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(source),
        "PROXY_HOST": HOST,
        "PROXY_PORT": str(port),
        "PROXY_API_KEYS": api_key,
        "PROXY_OLLAMA_URL": ollama_url,
        "PROXY_LOG_LEVEL": "warning",
        "PROXY_WORKERS": str(workers),
        "PROXY_REDIS_URL": redis_url,
        "PROXY_REDIS_CA_FILE": redis_ca_file,
        "PROXY_CACHE_MODE": "all" if redis_url else "off",
        **(settings or {}),
    }
    argv = [sys.executable]
    if profile_to is not None:
        argv += ["-m", "cProfile", "-o", str(profile_to)]
    argv += ["-m", "proxy_app"]
    log = workdir / f"{name}.log"
    proc = Proc(name, _spawn(argv, env, log, cwd=source), f"http://{HOST}:{port}", log)
    wait_http(proc, "/health", 30)
    return proc


def export_proxy_app(ref: str, dest: Path) -> Path:
    """proxy_app as it was at git `ref`, unpacked under `dest` (for before/after runs)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "proxy_app"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def litellm_version() -> str | None:
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        return None
    try:
        out = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return out.stdout.strip() or None


def ensure_litellm(log_path: Path, install: bool) -> str:
    """LiteLLM's version, installing it into bench/.litellm-venv first if needed and allowed."""
    version = litellm_version()
    if version:
        return version
    if not install:
        raise StartError(f"LiteLLM is not installed in {LITELLM_VENV} (run without --no-install)")
    print(f"installing {LITELLM_SPEC} into {LITELLM_VENV.relative_to(ROOT)} (once) ...", flush=True)
    with open(log_path, "wb") as log:
        for argv in (
            [sys.executable, "-m", "venv", str(LITELLM_VENV)],
            [str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", "--upgrade", "pip"],
            [str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", LITELLM_SPEC],
        ):
            try:
                subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=600, check=True)
            except (subprocess.SubprocessError, OSError) as exc:
                raise StartError(f"installing LiteLLM failed ({exc}); see {log_path}") from exc
    version = litellm_version()
    if not version:
        raise StartError(f"LiteLLM installed but not importable; see {log_path}")
    return version


def start_litellm(workdir: Path, ollama_url: str, model_name: str, api_key: str) -> Proc:
    port = free_port()
    config = workdir / "litellm.yaml"
    # JSON is valid YAML: no PyYAML needed on this side.
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": model_name,
                        "litellm_params": {
                            "model": "ollama_chat/qwen2.5-coder:7b",
                            "api_base": ollama_url,
                        },
                    }
                ],
                "litellm_settings": {"telemetry": False, "drop_params": True, "set_verbose": False},
                "general_settings": {"master_key": api_key},
            },
            indent=2,
        )
    )
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map from the internet
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
        "NO_DOCS": "True",
        "NO_REDOC": "True",
    }
    for var in ("DATABASE_URL", "REDIS_HOST", "REDIS_URL"):
        env.pop(var, None)
    argv = [
        str(LITELLM_VENV / "bin" / "litellm"),
        "--config",
        str(config),
        "--host",
        HOST,
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    log = workdir / "litellm.log"
    proc = Proc("litellm", _spawn(argv, env, log), f"http://{HOST}:{port}", log)
    wait_http(proc, "/health/liveliness", 120)
    return proc
