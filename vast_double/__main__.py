"""`python -m vast_double`: serve the vast.ai double in its own process, for commands run as
subprocesses (`make up` with VAST_URL pointing here).

    python -m vast_double --offers tests/fixtures/vast/offers.json --api-key K \
        [--ssh-key ~/.ssh/id_ed25519.pub] [--hooks package.module:Class] [--port 0]

Prints `VAST_URL=http://127.0.0.1:PORT` on its first line, then serves until SIGTERM or Ctrl-C.
`--hooks` names an `InstanceHooks` class (built with no arguments) deciding what a rented
instance is, e.g. a sandbox host; the default gives made-up endpoints.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from vast_double.market import InstanceHooks, Market, StaticHooks, offers_from
from vast_double.server import VastDouble


def _hooks(spec: str | None) -> InstanceHooks:
    if not spec:
        return StaticHooks()
    module, _, name = spec.partition(":")
    hooks: InstanceHooks = getattr(importlib.import_module(module), name)()
    return hooks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vast_double", description="Serve the vast.ai API double."
    )
    parser.add_argument("--offers", type=Path, help="JSON file with an `offers` list")
    parser.add_argument("--api-key", default="vast-test-key", help="the only key accepted")
    parser.add_argument("--ssh-key", type=Path, action="append", default=[],
                        help="public key file registered with the account (repeatable)")
    parser.add_argument("--credit", type=float, default=25.0, help="account credit in $")
    parser.add_argument("--hooks", default=None, help="module:Class of InstanceHooks")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args = parser.parse_args(argv)
    offers = json.loads(args.offers.read_text())["offers"] if args.offers else []
    market = Market(
        offers=offers_from(offers),
        credit=args.credit,
        ssh_keys=[path.read_text().strip() for path in args.ssh_key],
        hooks=_hooks(args.hooks),
    )
    double = VastDouble(market, api_key=args.api_key, port=args.port).start()
    print(f"VAST_URL={double.url}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
