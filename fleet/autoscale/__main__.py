"""`python -m fleet.autoscale` (`make autoscale`): the gateway with an autoscaler, foreground.

Starts HAProxy on 127.0.0.1:PORT with no host (requests get 529 + retry-after, which Claude Code
honours), then every INTERVAL seconds looks at the labelled instances (VAST_LABEL) and the
gateway's numbers and does at most one thing: rent, start, join, drain, stop or destroy a host
(fleet/autoscale/policy.py says which). One log line per decision; the state in AUTOSCALE_STATE
(`make status` shows it); its metrics on 127.0.0.1:METRICS_PORT/metrics. Ctrl-C (or SIGTERM)
stops the gateway and leaves the instances as they are (`make stop` / `make down`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fleet.autoscale import metrics
from fleet.autoscale.loop import Autoscaler
from fleet.autoscale.policy import Settings
from fleet.autoscale.pool import Pool
from fleet.autoscale.state import DEFAULT_PATH
from fleet.claude_code import claude_env, env_lines, proxy_key_file
from fleet.errors import FleetError, TunnelError
from fleet.haproxy import GatewayConfig, GatewayError
from fleet.hostdata import group_data
from fleet.provider import Rental, Wanted
from fleet.steps import Steps
from fleet.vast import from_env, label_of
from fleet.vram import required_gb
from roles import secrets
from roles.services import ONSTART_COMMAND

D = Settings()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fleet.autoscale", description=__doc__)
    add = p.add_argument
    add("--min-hosts", type=int, default=D.min_hosts, help="hosts kept up (0: scale to zero)")
    add("--max-hosts", type=int, default=D.max_hosts)
    add("--max-price", type=float, default=D.max_price, help="$/h per host, disk included")
    add("--budget-per-hour", type=float, default=D.budget_per_hour, help="$/h, whole fleet")
    add("--budget-per-day", type=float, default=D.budget_per_day, help="$ per UTC day")
    add("--wait-seconds", type=float, default=D.wait_seconds, help="queue wait that is pressure")
    add("--sustain-seconds", type=float, default=D.sustain_seconds, help="pressure this long")
    add("--idle-minutes", type=float, default=D.idle_minutes)
    add("--scale-in", choices=("stop", "destroy"), default=D.scale_in)
    add("--interruptible", action="store_true", help="rent interruptible instances at --bid")
    add("--bid", type=float, default=None, help="$/h bid (default: --max-price)")
    add("--boot-minutes", type=float, default=D.boot_minutes, help="then a host is stuck")
    add("--drain-seconds", type=float, default=D.drain_seconds)
    add("--interval", type=float, default=10.0, help="seconds between looks")
    add("--host-maxconn", type=int, default=4, help="requests a host gets at once; more wait")
    add("--gpu", default=Wanted.gpu, help="GPU name, _ for spaces")
    add("--disk", type=float, default=Wanted.disk_gb)
    add("--image", default="vastai/base-image:cuda-12.4.1-auto")
    add("--port", type=int, default=int(os.environ.get("GATEWAY_PORT") or 8001))
    add("--stats-port", type=int, default=int(os.environ.get("GATEWAY_STATS_PORT") or 8404))
    add("--metrics-port", type=int, default=int(os.environ.get("AUTOSCALE_METRICS_PORT") or 8405))
    add("--state", type=Path, default=Path(os.environ.get("AUTOSCALE_STATE") or DEFAULT_PATH))
    return p


def settings_of(args: argparse.Namespace) -> Settings:
    return Settings(
        min_hosts=args.min_hosts,
        max_hosts=args.max_hosts,
        max_price=args.max_price,
        budget_per_hour=args.budget_per_hour,
        budget_per_day=args.budget_per_day,
        wait_seconds=args.wait_seconds,
        sustain_seconds=args.sustain_seconds,
        idle_minutes=args.idle_minutes,
        scale_in=args.scale_in,
        interruptible=args.interruptible,
        bid=args.bid,
        boot_minutes=args.boot_minutes,
        drain_seconds=args.drain_seconds,
    )


def _wanted(args: argparse.Namespace, data: dict[str, Any]) -> Wanted:
    return Wanted(
        gpu=args.gpu,
        max_price=args.max_price,
        disk_gb=args.disk,
        interruptible=args.interruptible,
        bid=(args.bid or args.max_price) if args.interruptible else None,
        min_vram_gb=required_gb(data["ollama_models"], int(data["ollama_context_length"])),
    )


def _serve(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> None:
    """Run the gateway and the loop until Ctrl-C or SIGTERM."""
    settings = settings_of(args)
    data = group_data()
    wanted = _wanted(args, data)
    label = label_of(env)
    provider = from_env(env)
    secrets.token("proxy_api_key")  # what the first deploy would create: clients need it now
    key = proxy_key_file()
    cfg = GatewayConfig(
        port=args.port, stats_port=args.stats_port, server_maxconn=args.host_maxconn
    )
    rental = Rental(label, args.image, args.disk, ONSTART_COMMAND, wanted.bid)
    with Pool(cfg, workdir) as pool, metrics.MetricsServer(args.metrics_port) as server:
        scaler = Autoscaler(settings, provider, pool, Steps(), args.state, env, rental, wanted)
        print("# In the shell that runs `claude`:")
        print("\n".join(env_lines(claude_env(data, cfg.port, key))))
        print(f"Gateway ready on http://127.0.0.1:{cfg.port}; autoscaling {label}.", flush=True)

        def publish() -> None:
            text = metrics.render(scaler.state, settings)
            server.update(text)
            metrics.write(args.state.parent, text, pool.ports)

        scaler.run(args.interval, after=publish)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # `kill <pid>` stops it like Ctrl-C does, through the `with` blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with tempfile.TemporaryDirectory(prefix="llm-autoscale-") as workdir:
            _serve(args, dict(os.environ), Path(workdir))
    except KeyboardInterrupt:
        return 0
    except (FleetError, GatewayError, TunnelError) as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
