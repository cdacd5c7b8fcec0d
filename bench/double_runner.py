"""`python -m bench.double_runner --port P --reply TEXT`: the Ollama API double, alone in a process.

The bench runs the double in its own process so that its (threaded, pure-Python) work does not
share an interpreter with the load generator. Request recording is switched off: the double keeps
every request body in `double.requests`, which would grow by ~50 KB per request over a run.
Prints `READY <url>` on stdout once listening; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from ollama_double.server import OllamaDouble, Reply

MODEL = "qwen2.5-coder:7b"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reply", default="ok")
    args = parser.parse_args()
    # exact_counts off: the floor measures HTTP and JSON, not the double's own tokenising
    double = OllamaDouble(models=[MODEL], default_num_ctx=32768, port=args.port, exact_counts=False)
    double.default_reply = Reply(args.reply)
    double._record = lambda _request: None  # type: ignore[method-assign]  # no request log
    double.start()

    def stop(_signum: int, _frame: Any) -> None:
        double._stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"READY {double.url}", flush=True)
    double.serve_forever()
    double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
