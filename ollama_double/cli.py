"""Stand-in for the ``ollama`` binary, backed by the Ollama API **test double**. Not Ollama.

Commands: ``serve``, ``list``/``ls``, ``pull``, ``ps``, ``rm``, ``run MODEL PROMPT``, ``show``,
``-v``/``--version``. Client commands talk to the running server found through ``OLLAMA_HOST``
(default ``127.0.0.1:11434``), exactly like the real CLI. ``serve`` keeps pulled models as small
manifest files under ``$OLLAMA_MODELS`` (default ``~/.ollama/models``) so ``list`` survives a
restart. Extra, double-only environment for ``serve``: ``OLLAMA_DOUBLE_MODELS`` (comma list of
models present at start), ``OLLAMA_DOUBLE_THINKING_MODELS``, ``OLLAMA_DOUBLE_PULLABLE`` (comma list;
unset = anything can be pulled), ``OLLAMA_DOUBLE_PULL_DELAY`` (seconds per progress line).

Stdlib only, Python >= 3.10. ``archive.py`` concatenates server.py + this file (minus the marked
import block) into one executable script, so keep every server name used here in that block.
"""

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

# --- double-import-begin (stripped when building the single-file bin/ollama)
from .server import (
    DEFAULT_VERSION,
    OllamaDouble,
    normalize_model_name,
)

# --- double-import-end

ERR_NO_SERVER = "could not connect to ollama server, run 'ollama serve' to start it"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def parse_ollama_host(value: str | None = None) -> tuple[str, str, int]:
    """(scheme, host, port) from OLLAMA_HOST, following Ollama's envconfig.Host rules."""
    raw = (os.environ.get("OLLAMA_HOST", "") if value is None else value).strip().strip("\"'")
    scheme, default_port = "http", 11434
    if "://" in raw:
        scheme, raw = raw.split("://", 1)
        default_port = 443 if scheme == "https" else 80
    raw = raw.split("/", 1)[0]
    host, port = raw, default_port
    if raw.startswith("["):  # [::1]:port
        host, _, rest = raw[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif raw.count(":") == 1:
        host, _, p = raw.partition(":")
        if p.isdigit():
            port = int(p)
    return scheme, host or "127.0.0.1", port


def _base_url() -> str:
    scheme, host, port = parse_ollama_host()
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


class _NoServer(Exception):
    pass


def _request(method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(_base_url() + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        raise _NoServer(str(exc)) from exc


def _api_error(exc: urllib.error.HTTPError) -> str:
    try:
        return json.loads(exc.read().decode()).get("error") or str(exc)
    except ValueError:
        return str(exc)
    finally:
        exc.close()


def _heartbeat() -> None:
    try:
        with _request("HEAD", "/", timeout=5):
            pass
    except (_NoServer, urllib.error.HTTPError) as exc:
        raise _NoServer(ERR_NO_SERVER) from exc


def human_bytes(n: int) -> str:
    """Like Ollama's format.HumanBytes (decimal units)."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{round(value)} {unit}"
    return f"{n} B"


def human_time(seconds_ago: float) -> str:
    s = max(0.0, seconds_ago)
    if s < 1:
        return "Less than a second ago"
    if s < 60:
        return f"{int(s)} seconds ago"
    for unit, size in (("year", 31536000), ("week", 604800), ("day", 86400), ("hour", 3600),
                       ("minute", 60)):
        if s >= size:
            n = int(s // size)
            if n == 1:
                return f"About a{'n' if unit == 'hour' else ''} {unit} ago"
            return f"{n} {unit}s ago"
    return "Less than a second ago"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    lines = []
    for row in [headers, *rows]:
        lines.append("".join(str(c).ljust(w) + "    " for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def _parse_time(stamp: str) -> float:
    import datetime

    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


# --------------------------------------------------------------------------- commands


def cmd_version() -> int:
    try:
        with _request("GET", "/api/version", timeout=5) as resp:
            server_version = json.loads(resp.read().decode()).get("version", "")
    except (_NoServer, urllib.error.HTTPError, ValueError):
        server_version = ""
        print("Warning: could not connect to a running Ollama instance")
    if server_version:
        print(f"ollama version is {server_version}")
    if server_version != DEFAULT_VERSION:
        print(f"Warning: client version is {DEFAULT_VERSION}")
    return 0


def cmd_list() -> int:
    _heartbeat()
    with _request("GET", "/api/tags") as resp:
        models = json.loads(resp.read().decode()).get("models") or []
    rows = [[m["name"], m["digest"][:12], human_bytes(int(m["size"])),
             human_time(time.time() - _parse_time(m["modified_at"]))] for m in models]
    print(_table(["NAME", "ID", "SIZE", "MODIFIED"], rows))
    return 0


def cmd_ps() -> int:
    _heartbeat()
    with _request("GET", "/api/ps") as resp:
        models = json.loads(resp.read().decode()).get("models") or []
    rows = []
    for m in models:
        left = _parse_time(m["expires_at"]) - time.time()
        until = "Forever" if left > 10 * 31536000 else (
            f"{max(1, int(left // 60))} minutes from now" if left >= 60 else "Less than a minute"
        )
        rows.append([m["name"], m["digest"][:12], human_bytes(int(m["size"])), "100% GPU",
                     str(m.get("context_length", "")), until])
    print(_table(["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"], rows))
    return 0


def _ndjson(resp: Any) -> Iterator[dict[str, Any]]:
    """The events of an NDJSON response; an `error` line raises, as the real CLI reports it."""
    for raw in resp:
        if not raw.strip():
            continue
        event = json.loads(raw.decode())
        if "error" in event:
            raise RuntimeError(event["error"])
        yield event


def cmd_pull(model: str) -> int:
    _heartbeat()
    shown: dict[str, str] = {}
    with _request("POST", "/api/pull", {"model": model, "stream": True}, timeout=600) as resp:
        for event in _ndjson(resp):
            status = event.get("status", "")
            if event.get("digest") and event.get("total"):
                total, done = int(event["total"]), int(event.get("completed", 0))
                if done >= total and status not in shown:
                    shown[status] = status
                    sys.stderr.write(
                        f"{status}: 100% ▕{'█' * 16}▏ {human_bytes(total)}\n"
                    )
                continue
            sys.stderr.write(status + "\n")
            sys.stderr.flush()
    return 0


def cmd_rm(models: list[str]) -> int:
    _heartbeat()
    for model in models:
        with _request("DELETE", "/api/delete", {"model": model}):
            pass
        print(f"deleted '{model}'")
    return 0


def cmd_show(model: str) -> int:
    _heartbeat()
    with _request("POST", "/api/show", {"model": model}) as resp:
        info = json.loads(resp.read().decode())
    details = info.get("details", {})
    ctx = next((v for k, v in info.get("model_info", {}).items()
                if k.endswith(".context_length")), "")
    print("  Model")
    print(f"    architecture        {details.get('family', '')}")
    print(f"    parameters          {details.get('parameter_size', '')}")
    print(f"    context length      {ctx}")
    print(f"    quantization        {details.get('quantization_level', '')}")
    print("\n  Capabilities")
    for cap in info.get("capabilities", []):
        print(f"    {cap}")
    return 0


def cmd_run(model: str, prompt: str) -> int:
    _heartbeat()
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True}
    with _request("POST", "/api/chat", body, timeout=600) as resp:
        for event in _ndjson(resp):
            sys.stdout.write(event.get("message", {}).get("content", ""))
            sys.stdout.flush()
    sys.stdout.write("\n\n")
    return 0


def _env_list(name: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, "").split(",") if x.strip()]


def _log(level: str, msg: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    sys.stderr.write(f'time={stamp} level={level} source=routes.go:0 msg="{msg}"\n')
    sys.stderr.flush()


def cmd_serve() -> int:
    _scheme, host, port = parse_ollama_host()
    if host not in _LOOPBACK:
        _log("WARN", f"test double: refusing to bind {host}; listening on 127.0.0.1 instead")
        host = "127.0.0.1"
    models_dir = os.environ.get("OLLAMA_MODELS") or os.path.join(
        os.path.expanduser("~"), ".ollama", "models")
    os.makedirs(models_dir, exist_ok=True)
    pullable = _env_list("OLLAMA_DOUBLE_PULLABLE")
    num_parallel = int(os.environ.get("OLLAMA_NUM_PARALLEL") or 0) or None
    double = OllamaDouble(
        models=[normalize_model_name(m) for m in _env_list("OLLAMA_DOUBLE_MODELS")],
        version=DEFAULT_VERSION,
        thinking_models=_env_list("OLLAMA_DOUBLE_THINKING_MODELS"),
        default_num_ctx=int(os.environ.get("OLLAMA_CONTEXT_LENGTH") or 4096),
        host=host,
        port=port,
        models_dir=models_dir,
        pullable=pullable or None,
        pull_delay=float(os.environ.get("OLLAMA_DOUBLE_PULL_DELAY") or 0),
        num_parallel=num_parallel,
        max_queue=int(os.environ.get("OLLAMA_MAX_QUEUE") or 512),
        log_stream=sys.stderr,
    )
    for m in double.models:
        if not os.path.exists(double._manifest_path(m)):
            double._write_manifest(m)
    _log("WARN", "this is the llm-selfhost Ollama API TEST DOUBLE, not Ollama; no model runs here")
    sys.stderr.write(
        f'time={time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())} level=INFO '
        f'source=routes.go:0 msg="server config" env="map[OLLAMA_HOST:'
        f'{os.environ.get("OLLAMA_HOST", "")} OLLAMA_MODELS:{models_dir}]"\n'
    )
    try:
        double.start()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        sys.stderr.write(f"Error: listen tcp {host}:{port}: bind: {reason}\n")
        return 1

    def _stop(_signum: int, _frame: Any) -> None:
        double._stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    _log("INFO", f"Listening on {host}:{double.port} (version {DEFAULT_VERSION})")
    double.serve_forever()
    double.stop()
    return 0


def _build_parser() -> argparse.ArgumentParser:
    """The CLI's parser; each subcommand sets ``handler``, what runs it given the arguments."""
    parser = argparse.ArgumentParser(
        prog="ollama", description="Large language model runner (Ollama API test double)")
    parser.add_argument("-v", "--version", action="store_true", help="Show version information")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("serve", aliases=["start"], help="Start ollama")
    p.set_defaults(handler=lambda _args: cmd_serve())
    p = sub.add_parser("list", aliases=["ls"], help="List models")
    p.set_defaults(handler=lambda _args: cmd_list())
    p = sub.add_parser("ps", help="List running models")
    p.set_defaults(handler=lambda _args: cmd_ps())
    p = sub.add_parser("pull", help="Pull a model from a registry")
    p.add_argument("model")
    p.add_argument("--insecure", action="store_true")
    p.set_defaults(handler=lambda args: cmd_pull(args.model))
    p = sub.add_parser("rm", help="Remove a model")
    p.add_argument("models", nargs="+")
    p.set_defaults(handler=lambda args: cmd_rm(args.models))
    p = sub.add_parser("show", help="Show information for a model")
    p.add_argument("model")
    p.set_defaults(handler=lambda args: cmd_show(args.model))
    p = sub.add_parser("run", help="Run a model")
    p.add_argument("model")
    p.add_argument("prompt", nargs="*")
    p.set_defaults(handler=lambda args: cmd_run(args.model, " ".join(args.prompt) or "hello"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.version:
            return cmd_version()
        if "handler" not in args:
            parser.print_help()
            return 0
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except _NoServer as exc:
        sys.stderr.write(f"Error: {exc}\n")
    except urllib.error.HTTPError as exc:
        sys.stderr.write(f"Error: {_api_error(exc)}\n")
    except RuntimeError as exc:
        sys.stderr.write(f"Error: {exc}\n")
    return 1
