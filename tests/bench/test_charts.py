"""bench/charts.py: PNG charts drawn from a bench results JSON (small ones here, no bench run)."""

from __future__ import annotations

import copy
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import charts

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED_PIXELS = (int(charts.SIZE[0] * charts.DPI), int(charts.SIZE[1] * charts.DPI))


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (after checking the signature)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def row(target: str, mode: str, c: int, p50: float, rps: float) -> dict[str, Any]:
    return {
        "target": target,
        "mode": mode,
        "concurrency": c,
        "rps": rps,
        "latency_ms": {"p50": p50, "p90": p50 * 1.5, "p99": p50 * 2},
    }


def results(*targets: tuple[str, float, float]) -> dict[str, Any]:
    """A results object with every (mode, c) case for each (target, p50 ms, req/s)."""
    rows = [
        row(target, mode, c, p50 * (8 if c == 16 else 1), rps)
        for target, p50, rps in targets
        for mode, c in charts.CASES
    ]
    return {"date": "2026-11-30T10:00:00+00:00", "machine": {"nproc": 2}, "rows": rows}


SMALL = results(("direct", 2.0, 400.0), ("proxy_app", 6.0, 180.0), ("proxy_app+hit", 2.8, 360.0),
                ("litellm", 55.0, 19.0))  # fmt: skip


def test_every_chart_is_a_png_of_the_planned_size(tmp_path: Path) -> None:
    written = charts.render(SMALL, tmp_path)
    assert [p.name for p in written] == ["latency.png", "throughput.png", "cache_hit.png"]
    for path in written:
        assert path.stat().st_size > 0
        assert png_size(path) == EXPECTED_PIXELS


def test_the_images_are_drawn_from_the_json(tmp_path: Path) -> None:
    charts.render(SMALL, tmp_path / "a")
    charts.render(copy.deepcopy(SMALL), tmp_path / "b")
    slower = copy.deepcopy(SMALL)
    for r in slower["rows"]:
        if r["target"] == "proxy_app":
            r["latency_ms"]["p50"] *= 3
            r["rps"] /= 3
    charts.render(slower, tmp_path / "c")
    for name in ("latency.png", "throughput.png", "cache_hit.png"):
        same = (tmp_path / "a" / name).read_bytes()
        assert (tmp_path / "b" / name).read_bytes() == same  # same JSON, same bytes
        assert (tmp_path / "c" / name).read_bytes() != same  # other numbers, other picture


def test_gateway_overhead_is_drawn_only_when_measured(tmp_path: Path) -> None:
    (tmp_path / "gateway.png").write_bytes(b"stale")
    charts.render(SMALL, tmp_path)
    assert not (tmp_path / "gateway.png").exists()
    with_gateway = results(("proxy_app", 6.0, 180.0), ("gateway", 6.4, 170.0))
    written = charts.render(with_gateway, tmp_path)
    assert tmp_path / "gateway.png" in written
    assert png_size(tmp_path / "gateway.png") == EXPECTED_PIXELS


def test_the_command_draws_the_latest_results(tmp_path: Path) -> None:
    """`python -m bench.charts` redraws from latest.json; the committed charts are its output
    (same size; bytes compared only where matplotlib is the version that drew them)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.charts", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in ("latency.png", "throughput.png", "cache_hit.png"):
        assert f"wrote {tmp_path / name}" in done.stdout
        committed = REPO / "bench" / "results" / name
        assert png_size(committed) == png_size(tmp_path / name) == EXPECTED_PIXELS


def test_latest_results_name_every_charted_target() -> None:
    latest = json.loads((REPO / "bench" / "results" / "latest.json").read_text())
    assert {r["target"] for r in latest["rows"]} >= set(charts.COLOURS)
