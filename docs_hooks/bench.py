"""mkdocs hook: the benchmark page shows bench/results/ as the bench last wrote it, never copied.

A line ``<!-- bench: NAME -->`` in a page becomes, at build time:

- ``NAME.md`` (a report the bench writes beside its JSON, e.g. ``latest.md``): that file, its
  headings moved two levels down so they sit under the page's own sections;
- ``deploy_times.json`` or ``autoscale.json`` (results with no report of their own): a table
  rendered from the JSON.

The charts (``bench/results/*.png``, redrawn by ``make bench`` / ``make bench-charts``) are
published as ``bench/NAME.png`` beside the pages. A missing file fails the build.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

MARKER = re.compile(r"^<!-- bench: (?P<name>[\w./-]+) -->$", re.M)
HEADING = re.compile(r"^(#+) ")


def _results(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).parent / "bench" / "results"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Publish every chart the bench drew, as bench/<name>.png."""
    for chart in sorted(_results(config).glob("*.png")):
        files.append(File.generated(config, f"bench/{chart.name}", abs_src_path=str(chart)))
    return files


def demote(markdown: str, levels: int = 2) -> str:
    """Headings `levels` deeper, fenced code left alone."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and HEADING.match(line):
            line = "#" * levels + line
        out.append(line)
    return "\n".join(out) + "\n"


def _deploy_times(data: dict[str, Any]) -> str:
    rows = [
        "| hosts | first run (s) | re-run (s) | re-run changes | re-run errors |",
        "|---|---|---|---|---|",
    ]
    rows += [
        f"| {r['hosts']} | {r['first_run_s']} | {r['rerun_s']} | {r['rerun_changes']} "
        f"| {r['rerun_errors']} |"
        for r in data["runs"]
    ]
    start, end = (" / ".join(str(v) for v in load) for load in data["load_average"])
    note = (
        f"{data['date']}, {data['machine']}, {data['inventory']}; load average {start} at the "
        f"start, {end} at the end."
    )
    return "\n".join(rows) + f"\n\n{note}\n"


def _autoscale(data: dict[str, Any]) -> str:
    labels = {
        "rented_to_serving_s": "rented → serving (s)",
        "pressure_to_second_host_serving_s": "queue formed → second host serving (s)",
        "streams_during_join": "streams meanwhile (0 failed)",
        "stopped_to_serving_s": "stopped → serving (s)",
        "stopped_to_serving_client": "client of the stopped → serving run",
    }
    rows = ["| measure | latest run |", "|---|---|"]
    rows += [f"| {labels.get(key, key)} | {value} |" for key, value in data.items()]
    return "\n".join(rows) + "\n"


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "deploy_times.json": _deploy_times,
    "autoscale.json": _autoscale,
}


def render(name: str, results: Path) -> str:
    """The markdown for one marker; PluginError when the file is missing or unknown."""
    path = results / name
    if not path.is_file():
        raise PluginError(f"<!-- bench: {name} -->: {path} does not exist (run the bench)")
    if name.endswith(".md"):
        return demote(path.read_text())
    renderer = RENDERERS.get(name)
    if renderer is None:
        raise PluginError(f"<!-- bench: {name} -->: no renderer for {name}")
    return renderer(json.loads(path.read_text()))


def on_page_markdown(
    markdown: str, page: Page, config: MkDocsConfig, files: Files, **_: Any
) -> str:
    """Replace every bench marker in the page with what the bench last wrote."""
    del page, files
    results = _results(config)
    return MARKER.sub(lambda m: render(m.group("name"), results), markdown)
