"""Helpers for the vast.ai dynamic inventory (``inventories/vast.py``).

Plain functions of their arguments (an environment mapping, API rows), except ``fetch_instances``
(paged ``GET /api/v1/instances/`` through the official ``vastai`` SDK) and ``ensure_known_hosts``
(creates the project-local known_hosts file).

    build_hosts(os.environ, known_hosts_file(os.environ))
    -> [("vast-4100001", {"ssh_hostname": "203.0.113.10", "ssh_port": 40022,
                          "ssh_user": "root", "ssh_known_hosts_file": ".../secrets/known_hosts",
                          "vast_id": 4100001, "vast_label": "llm", ...})]
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from pyinfra.api.exceptions import InventoryError
from vastai import VastAI

HostEntry = tuple[str, dict[str, Any]]


class VastInventoryError(InventoryError):
    """Raised when the vast inventory cannot be built; the message says how to fix it."""


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def _expand_user(path: str, env: Mapping[str, str]) -> str:
    """Expand a leading `~` with env's HOME (os.path.expanduser would read the process's)."""
    if path == "~" or path.startswith("~/"):
        return str(_home(env) / path[2:])
    return path


def api_key_files(env: Mapping[str, str]) -> list[Path]:
    """Return the key files vast.ai's CLI/SDK use, in lookup order (XDG file, then legacy)."""
    home = _home(env)
    xdg = env.get("XDG_CONFIG_HOME", "")
    # XDG: a relative value is invalid and ignored (so does the `xdg` package the SDK uses).
    config_dir = Path(xdg) if os.path.isabs(xdg) else home / ".config"
    return [config_dir / "vastai" / "vast_api_key", home / ".vast_api_key"]


def label_of(env: Mapping[str, str]) -> str:
    """The label that marks our instances: VAST_LABEL, default `llm-selfhost` (`*`: any)."""
    return env.get("VAST_LABEL", "").strip() or DEFAULT_LABEL


def deploy_data(env: Mapping[str, str]) -> dict[str, Any]:
    """The JSON object in VAST_DATA_FILE (deploy data for every vast host), else {}.

    For values that belong to where the hosts are, not to the project: e.g. an Ollama release
    mirror (`ollama_download_url`, `ollama_sha256`), as the vast.ai double's sandbox hosts need.
    """
    name = env.get("VAST_DATA_FILE", "").strip()
    if not name:
        return {}
    path = Path(_expand_user(name, env))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VastInventoryError(
            f"Cannot read VAST_DATA_FILE {path}: {exc.strerror}; unset it or point it at a JSON"
            " file of deploy data."
        ) from exc
    except ValueError as exc:
        raise VastInventoryError(f"VAST_DATA_FILE {path} is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise VastInventoryError(
            f"VAST_DATA_FILE {path} holds a JSON {type(data).__name__}; it must be an object of"
            ' deploy data, e.g. {"ollama_sha256": "…"}.'
        )
    return data


def find_api_key(env: Mapping[str, str]) -> str | None:
    """Return the API key from VAST_API_KEY, the XDG config file or ~/.vast_api_key, else None."""
    key = env.get("VAST_API_KEY", "").strip()
    if key:
        return key
    for path in api_key_files(env):
        try:
            key = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise VastInventoryError(
                f"Cannot read the vast.ai API key file {path}: {exc.strerror}."
            ) from exc
        if key:
            return key
    return None


def sdk_client(api_key: str, server_url: str | None = None) -> VastAI:
    """The official SDK's client for `api_key` at `server_url` (default https://console.vast.ai)."""
    # Passed explicitly: the SDK reads VAST_URL once, at import time.
    sdk = VastAI(api_key=api_key, server_url=server_url or DEFAULT_SERVER_URL)
    sdk.client.timeout = DEFAULT_TIMEOUT
    return sdk


def fetch_instances(api_key: str, server_url: str | None = None) -> list[dict[str, Any]]:
    """Return every instance row of the account; the SDK follows `next_token` across pages."""
    sdk = sdk_client(api_key, server_url)
    try:
        rows: list[dict[str, Any]] = sdk.show_instances()
        return rows
    except (requests.RequestException, KeyError, TypeError, ValueError) as exc:
        failure = explain(exc, "listing instances", server_url or DEFAULT_SERVER_URL)
        raise VastInventoryError(f"{failure.text} No inventory was built.") from exc


@dataclass(frozen=True)
class ApiFailure:
    """A failed vast.ai API call told as a sentence, with vast's HTTP status and error code."""

    text: str
    status: int | None = None
    code: str = ""


def explain(exc: Exception, doing: str, where: str) -> ApiFailure:
    """The one place vast.ai's errors become sentences (the inventory and `python -m fleet`).

    + exc: what the SDK raised (`requests` exceptions, or KeyError/TypeError/ValueError for an
      answer of the wrong shape)
    + doing: what was being done, `listing instances`
    + where: the API's base URL
    """
    if isinstance(exc, requests.HTTPError):
        return _http_failure(exc, doing)
    if isinstance(exc, requests.RequestException):
        return ApiFailure(
            f"Cannot reach the vast.ai API at {where} while {doing} ({type(exc).__name__});"
            " check the network or VAST_URL."
        )
    return ApiFailure(
        f"The vast.ai API at {where} answered {doing} with an unexpected shape ({exc!r})."
    )


def _http_failure(exc: requests.HTTPError, doing: str) -> ApiFailure:
    response = exc.response
    status = response.status_code if response is not None else None
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        body = {}
    code = str(body.get("error") or "") if isinstance(body, dict) else ""
    detail = str(body.get("msg") or "") if isinstance(body, dict) else ""
    if status in (401, 403) and code != "insufficient_credit":
        text = (
            f"The vast.ai API refused the API key while {doing} (HTTP {status}); check"
            " VAST_API_KEY or run `vastai set api-key KEY` with a key from"
            " https://cloud.vast.ai/manage-keys/."
        )
    elif code == "insufficient_credit" or "credit" in detail.lower():
        text = (
            f"vast.ai refused {doing} for lack of credit ({detail or code}); add credit at"
            " https://cloud.vast.ai/billing/ and run the command again."
        )
    else:
        said = f" ({code}: {detail})" if code or detail else ""
        text = f"The vast.ai API answered HTTP {status} while {doing}{said}."
    return ApiFailure(text, status=status, code=code)


def running_instances(
    rows: Iterable[Mapping[str, Any]], label: str | None = None
) -> list[Mapping[str, Any]]:
    """Keep rows whose `actual_status` is running and, if `label` is given, whose label matches."""
    return [
        row
        for row in rows
        if row.get("actual_status") == "running"
        and (not label or (row.get("label") or "").strip() == label)
    ]


def ssh_endpoint(row: Mapping[str, Any]) -> tuple[str, int]:
    """Return (host, port) the way `vastai ssh-url` does: direct 22/tcp mapping, else the proxy.

    + row: one instance row from the API
    Direct: `public_ipaddr` and the mapped `ports["22/tcp"][0]["HostPort"]`. Proxy: `ssh_host` and
    `ssh_port`, plus 1 when `image_runtype` mentions jupyter (the CLI's rule; not the SDK's).
    """
    mapped = (row.get("ports") or {}).get("22/tcp")
    try:
        if mapped:
            host, port = row["public_ipaddr"], int(mapped[0]["HostPort"])
        else:
            host, port = row["ssh_host"], int(row["ssh_port"])
            if "jupyter" in (row.get("image_runtype") or ""):
                port += 1
        if not host or not 0 < port < 65536:
            raise ValueError(f"host {host!r}, port {port}")
        return str(host), port
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise VastInventoryError(
            f"vast.ai instance {row.get('id')} has no usable SSH endpoint (no 22/tcp mapping and no"
            f" ssh_host/ssh_port: {exc!r}); check its launch mode, `args` runs no sshd."
        ) from exc


def instance_host(row: Mapping[str, Any], connection: Mapping[str, Any]) -> HostEntry:
    """Turn one running instance row into a pyinfra host named `vast-<id>`."""
    hostname, port = ssh_endpoint(row)
    data: dict[str, Any] = {
        "ssh_hostname": hostname,
        "ssh_port": port,
        **connection,
        "vast_id": row["id"],
        "vast_label": row.get("label"),
        "vast_gpu_name": row.get("gpu_name"),
        "vast_num_gpus": row.get("num_gpus"),
    }
    return f"vast-{row['id']}", data


_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_IPV6 = re.compile(r"\[([0-9A-Fa-f:.]+)\]")


def parse_vast_hosts(value: str) -> list[tuple[str, int]]:
    """Parse VAST_HOSTS ("host:port,[v6]:port,…") into (host, port) pairs, rejecting bad entries."""
    endpoints: list[tuple[str, int]] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        host, _, port_text = item.rpartition(":")
        v6 = _IPV6.fullmatch(host)
        if v6:
            host = v6.group(1)
        valid_host = bool(v6) or bool(_HOSTNAME.fullmatch(host))
        if not (valid_host and port_text.isdigit() and 0 < int(port_text) < 65536):
            raise VastInventoryError(
                f"VAST_HOSTS entry {item!r} is not host:port; expected e.g."
                f' VAST_HOSTS="{VAST_HOSTS_EXAMPLE}".'
            )
        endpoint = (host, int(port_text))
        if endpoint in endpoints:
            raise VastInventoryError(f"VAST_HOSTS lists {item} twice.")
        endpoints.append(endpoint)
    if not endpoints:
        raise VastInventoryError(
            f'VAST_HOSTS is set but names no host; expected e.g. VAST_HOSTS="{VAST_HOSTS_EXAMPLE}".'
        )
    return endpoints


def static_host(host: str, port: int, connection: Mapping[str, Any]) -> HostEntry:
    """Turn one VAST_HOSTS endpoint into a pyinfra host named `vast-<host>-<port>`."""
    name = f"vast-{host.replace(':', '-')}-{port}"
    return name, {"ssh_hostname": host, "ssh_port": port, **connection}


def known_hosts_file(env: Mapping[str, str]) -> str:
    """Return the project-local known_hosts path (VAST_KNOWN_HOSTS, else secrets/known_hosts)."""
    return _expand_user(env.get("VAST_KNOWN_HOSTS") or str(DEFAULT_KNOWN_HOSTS), env)


def ensure_known_hosts(path: str) -> None:
    """Create the known_hosts file (and its directory) so pyinfra can load and append to it."""
    file = Path(path)
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    file.touch(mode=0o600, exist_ok=True)


def connection_data(env: Mapping[str, str], known_hosts: str) -> dict[str, Any]:
    """Return the SSH data every vast host shares: root, own known_hosts, optional VAST_SSH_KEY."""
    # vast reuses proxy host:port pairs across rentals; a shared ~/.ssh/known_hosts would then
    # reject the new key (pyinfra #737, #789).
    data: dict[str, Any] = {"ssh_user": "root", "ssh_known_hosts_file": known_hosts}
    ssh_key = env.get("VAST_SSH_KEY", "").strip()
    if ssh_key:
        data["ssh_key"] = _expand_user(ssh_key, env)
    return data


def no_running_message(rows: Sequence[Mapping[str, Any]], label: str | None) -> str:
    """Explain an empty inventory: which label was looked for and which statuses exist."""
    if label:
        rows = [row for row in rows if (row.get("label") or "").strip() == label]
        wanted, scope = f' with label "{label}"', "with that label"
    else:
        wanted, scope = "", "in the account"
    counts = Counter(row.get("actual_status") or "provisioning" for row in rows)
    found = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    summary = f"{len(rows)} {scope}: {found}" if rows else f"none {scope}"
    return (
        f"No running vast.ai instance{wanted} ({summary}); refusing to deploy to an empty"
        " inventory."
    )


def no_key_message(env: Mapping[str, str]) -> str:
    """Name both ways out when there is neither an API key nor VAST_HOSTS."""
    xdg_file, legacy_file = api_key_files(env)
    return (
        f"No vast.ai API key found (looked at VAST_API_KEY, {xdg_file} and {legacy_file}): set"
        " VAST_API_KEY or run `vastai set api-key KEY`, or list the hosts yourself with"
        f' VAST_HOSTS="{VAST_HOSTS_EXAMPLE}".'
    )


def build_hosts(env: Mapping[str, str], known_hosts: str) -> list[HostEntry]:
    """Return the `vast` group's hosts: VAST_HOSTS if set, else running instances from the API.

    + env: environment (VAST_HOSTS, VAST_API_KEY, VAST_URL, VAST_LABEL, VAST_SSH_KEY,
      VAST_DATA_FILE, HOME, ...)
    + known_hosts: path stored as every host's `ssh_known_hosts_file`
    Raises VastInventoryError rather than returning an empty list.
    """
    extra = deploy_data(env)
    return [(name, {**extra, **data}) for name, data in _hosts(env, known_hosts)]


def _hosts(env: Mapping[str, str], known_hosts: str) -> list[HostEntry]:
    connection = connection_data(env, known_hosts)
    static = env.get("VAST_HOSTS", "").strip()
    if static:
        return [static_host(host, port, connection) for host, port in parse_vast_hosts(static)]

    api_key = find_api_key(env)
    if api_key is None:
        raise VastInventoryError(no_key_message(env))
    rows = fetch_instances(api_key, env.get("VAST_URL") or None)
    label: str | None = label_of(env)
    if label == ANY_LABEL:
        label = None
    running = running_instances(rows, label)
    if not running:
        raise VastInventoryError(no_running_message(rows, label))
    return [instance_host(row, connection) for row in running]


DEFAULT_LABEL = "llm-selfhost"  # what `python -m fleet up` labels its rentals
ANY_LABEL = "*"  # VAST_LABEL=* : every running instance of the account
DEFAULT_SERVER_URL = "https://console.vast.ai"
DEFAULT_TIMEOUT = 30  # seconds per API request; the SDK's own default is 120
DEFAULT_KNOWN_HOSTS = Path(__file__).resolve().parent.parent / "secrets" / "known_hosts"
VAST_HOSTS_EXAMPLE = "ssh4.vast.ai:12345,203.0.113.7:40022"
