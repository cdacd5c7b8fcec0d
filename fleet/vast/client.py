"""The vast.ai account through the official `vastai` SDK: the key, the client, one call.

Every request goes through ``call``, which turns the SDK's exceptions into an ``ApiError``
sentence (worded by ``inventories.vast_api.explain``, the one place for vast.ai's errors).
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
    explain,
    find_api_key,
    sdk_client,
)
from inventories.vast_api import label_of as inventory_label

T = TypeVar("T")


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
    try:
        return method(*args, **kwargs)
    except (requests.RequestException, KeyError, TypeError, ValueError) as exc:
        failure = explain(exc, doing, sdk.client.server_url)
        raise ApiError(failure.text, status=failure.status, code=failure.code) from exc
