"""The vast.ai account through the official `vastai` SDK: connect, call, list labelled instances.

Every request the fleet commands make goes through ``call``, which turns the SDK's `requests`
exceptions into a sentence (``ApiError``) naming what was being done and the fix.

    sdk = connect(os.environ)
    rows = labelled(sdk, label_of(os.environ))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
from vastai import VastAI

from fleet.errors import ApiError, FleetError
from inventories.vast_api import (
    ANY_LABEL,
    DEFAULT_LABEL,
    VastInventoryError,
    api_key_files,
    find_api_key,
    sdk_client,
)
from inventories.vast_api import label_of as inventory_label

T = TypeVar("T")
Row = dict[str, Any]


def label_of(env: Mapping[str, str]) -> str:
    """The label that marks our instances: VAST_LABEL, default `llm-selfhost` (never `*`)."""
    label = inventory_label(env)
    if label == ANY_LABEL:
        raise FleetError(
            "VAST_LABEL=* selects every instance for the inventory only; the fleet commands"
            f" rent, stop and destroy by label: unset it (default {DEFAULT_LABEL}) or name one."
        )
    return label


def connect(env: Mapping[str, str]) -> VastAI:
    """An SDK client with the user's key, against VAST_URL (default https://console.vast.ai)."""
    try:
        key = find_api_key(env)
    except VastInventoryError as exc:
        raise FleetError(str(exc)) from exc
    if key is None:
        xdg_file, legacy_file = api_key_files(env)
        raise FleetError(
            f"No vast.ai API key found (looked at VAST_API_KEY, {xdg_file} and {legacy_file}):"
            " set VAST_API_KEY or run `vastai set api-key KEY` with a key from"
            " https://cloud.vast.ai/manage-keys/."
        )
    return sdk_client(key, env.get("VAST_URL") or None)


def call(sdk: VastAI, doing: str, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one SDK method; failures become an ApiError sentence about `doing`."""
    where = sdk.client.server_url
    try:
        return method(*args, **kwargs)
    except requests.HTTPError as exc:
        raise _http_error(exc, doing) from exc
    except requests.RequestException as exc:
        raise ApiError(
            f"Cannot reach the vast.ai API at {where} while {doing} ({type(exc).__name__});"
            " check the network or VAST_URL."
        ) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(
            f"The vast.ai API at {where} answered {doing} with an unexpected shape ({exc!r})."
        ) from exc


def _http_error(exc: requests.HTTPError, doing: str) -> ApiError:
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
    return ApiError(text, status=status, code=code)


def labelled(sdk: VastAI, label: str) -> list[Row]:
    """Every instance of the account carrying `label`, oldest first, in any state."""
    rows = call(sdk, "listing instances", sdk.show_instances)
    return [row for row in rows if (row.get("label") or "").strip() == label]


def state(row: Mapping[str, Any]) -> str:
    """The instance's state as the user sees it: actual_status, `provisioning` before one."""
    return str(row.get("actual_status") or "provisioning")


def host_name(row: Mapping[str, Any]) -> str:
    """The inventory name inventories/vast.py gives this instance."""
    return f"vast-{row['id']}"
