"""Sandbox deploy times: the first deploy and the idempotent re-run, for fleets of 1 and 2 hosts.

    python -m bench.deploy        (make bench-deploy; run as root)

Each size gets a fresh fleet of its own (own fleet directory, container layers and secrets), so a
developer's fleet is untouched; the rootfs is built first and is not timed (a cached rootfs is the
normal case). Goals (issue 9): first deploy of one host under 3 minutes, re-run under 15 s with 0
changes. Writes bench/results/deploy_times.json, which `make bench` folds into its report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox import Fleet, build_rootfs

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "deploy_times.json"
PYINFRA = Path(sys.executable).with_name("pyinfra")
SIZES = (1, 2)


def _deploy(env: dict[str, str]) -> tuple[float, dict[str, int]]:
    started = time.monotonic()
    done = subprocess.run(
        [str(PYINFRA), "-y", "--json", "inventories/local.py", "deploy.py"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"the deploy failed:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout)["results"]["totals"]


def measure(size: int) -> dict[str, object]:
    """Deploy a fresh fleet of ``size`` hosts twice; return the times and the re-run's totals."""
    with tempfile.TemporaryDirectory(prefix=f"bench-fleet-{size}-") as tmp:
        fleet = Fleet(Path(tmp) / "fleet", data_root=Path(tmp) / "layers", base_port=0)
        env = {"SANDBOX_STATE_DIR": str(fleet.root), "SELFHOST_SECRETS_DIR": f"{tmp}/secrets"}
        try:
            started = time.monotonic()
            fleet.up(size, log=lambda *_: None)
            boot = time.monotonic() - started
            first, _ = _deploy(env)
            rerun, totals = _deploy(env)
        finally:
            fleet.destroy()
    return {
        "hosts": size,
        "fleet_up_s": round(boot, 1),
        "first_run_s": round(first, 1),
        "rerun_s": round(rerun, 1),
        "rerun_changes": totals["success"],
        "rerun_errors": totals["error"],
    }


def main() -> int:
    build_rootfs(log=lambda line: print(line, file=sys.stderr))
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs = []
    for size in SIZES:
        print(f"deploying a fresh fleet of {size} host(s)…", file=sys.stderr)
        runs.append(measure(size))
        print(json.dumps(runs[-1]), file=sys.stderr)
    result = {
        "inventory": "inventories/local.py (sandbox fleet, cached rootfs)",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} cores",
        # other processes on the machine slow a deploy: the load before and after the runs
        "load_average": [load_before, [round(x, 2) for x in os.getloadavg()]],
        "runs": runs,
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
