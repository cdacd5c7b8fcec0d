"""`python -m fleet {up,down,stop,start,status}`: the vast.ai fleet's life, one command each.

Every command acts on the instances labelled VAST_LABEL (default `llm-selfhost`), through the
official `vastai` SDK (VAST_API_KEY or vast's key file; VAST_URL for another API server). A
problem the user fixes exits 2 with sentences on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fleet.autoscale.state import DEFAULT_PATH as AUTOSCALE_STATE
from fleet.down import down
from fleet.errors import FleetError
from fleet.hostdata import group_data
from fleet.provider import Wanted
from fleet.start import start
from fleet.status import status
from fleet.steps import Steps
from fleet.stop import stop
from fleet.up import UpOptions, up
from fleet.vast import from_env, label_of
from fleet.vram import required_gb


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fleet",
        description="Rent, deploy, stop, start, destroy and cost the vast.ai instances labelled"
        " VAST_LABEL (default llm-selfhost).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = Wanted()
    upp = sub.add_parser(
        "up",
        help="rent up to COUNT instances, deploy, check, print tunnels",
        description="Rent until COUNT labelled instances exist (the cheapest"
        " matching offers, after asking), wait for them, deploy, run the host"
        " checks and print the tunnel lines. Existing labelled instances count.",
    )
    upp.add_argument("--count", type=int, default=1, help="instances wanted (default 1)")
    upp.add_argument("--gpu", default=d.gpu, help=f"GPU name, _ for spaces (default {d.gpu})")
    upp.add_argument("--gpus", type=int, default=d.gpus, help="GPUs per instance (default 1)")
    upp.add_argument(
        "--max-price",
        type=float,
        default=d.max_price,
        help=f"$/h cap per instance, disk included (default {d.max_price})",
    )
    upp.add_argument(
        "--interruptible", action="store_true", help="rent interruptible (bid) instances"
    )
    upp.add_argument(
        "--bid", type=float, default=None, help="$/h bid for --interruptible (default: --max-price)"
    )
    upp.add_argument("--disk", type=float, default=d.disk_gb, help="disk GB (default 40)")
    upp.add_argument(
        "--min-vram",
        type=float,
        default=None,
        help="VRAM GB per GPU (default: what the configured models need)",
    )
    upp.add_argument("--min-reliability", type=float, default=d.min_reliability)
    upp.add_argument(
        "--min-download", type=float, default=d.min_inet_down, help="download Mbit/s (default 200)"
    )
    upp.add_argument("--image", default=UpOptions.image, help="container image")
    upp.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds to wait for running + SSH (default 900)",
    )
    upp.add_argument("--yes", action="store_true", help="rent without asking")
    dn = sub.add_parser("down", help="destroy the labelled instances (asks first)")
    dn.add_argument("--yes", action="store_true", help="destroy without asking")
    sub.add_parser("stop", help="stop them: GPUs released, disks kept (still billed)")
    st = sub.add_parser("start", help="start the stopped ones; services come back, re-checked")
    st.add_argument("--timeout", type=float, default=900.0)
    ss = sub.add_parser("status", help="state, cost, health and tokens per instance; totals")
    ss.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _wanted(args: argparse.Namespace) -> Wanted:
    data = group_data()
    vram = args.min_vram
    if vram is None:
        vram = required_gb(data["ollama_models"], int(data["ollama_context_length"]))
    return Wanted(
        gpu=args.gpu,
        gpus=args.gpus,
        max_price=args.max_price,
        disk_gb=args.disk,
        interruptible=args.interruptible,
        bid=args.bid,
        min_vram_gb=vram,
        min_reliability=args.min_reliability,
        min_inet_down=args.min_download,
    )


def main(argv: Sequence[str] | None = None, steps: Steps | None = None) -> int:
    args = _parser().parse_args(argv)
    steps = steps or Steps()
    env = dict(os.environ)
    try:
        label = label_of(env)
        provider = from_env(env)
        if args.command == "up":
            options = UpOptions(
                count=args.count,
                wanted=_wanted(args),
                image=args.image,
                yes=args.yes,
                timeout=args.timeout,
                label=label,
            )
            up(provider, options, steps, env)
        elif args.command == "down":
            down(provider, label, steps, yes=args.yes)
        elif args.command == "stop":
            stop(provider, label, steps)
        elif args.command == "start":
            start(provider, label, steps, env, timeout=args.timeout)
        else:
            prices = group_data()["fleet_anthropic_prices"]
            state = Path(env.get("AUTOSCALE_STATE") or AUTOSCALE_STATE)
            status(provider, label, steps, env, prices, as_json=args.json, autoscale_state=state)
    except FleetError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
