"""Nesting: the depth measure, and the arguments check that keeps Ollama's body writable."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy_app.api.nesting import ARGUMENTS_LEVEL, MAX_DEPTH, fits_as_arguments, json_depth


def nested(levels: int, container: str) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"k": value} if container == "object" else [value]
    return value


@pytest.mark.parametrize("container", ["object", "array"])
@pytest.mark.parametrize("levels", [0, 1, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 600])
def test_fits_exactly_up_to_the_limit(levels: int, container: str) -> None:
    value = nested(levels, container)
    assert json_depth(value) == levels
    assert fits_as_arguments(value) is (levels <= MAX_DEPTH)


def test_the_limit_is_what_orjson_can_write_at_the_arguments_level() -> None:
    orjson.dumps(nested(MAX_DEPTH + ARGUMENTS_LEVEL, "array"))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(nested(MAX_DEPTH + ARGUMENTS_LEVEL + 1, "array"))


def test_depth_counts_the_deepest_branch() -> None:
    assert json_depth({"a": [1, 2, {"b": "c"}], "d": {"e": [[]]}}) == 4
