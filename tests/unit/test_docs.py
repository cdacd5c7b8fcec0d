"""The documentation (README.md and the site in docs/) documents every PROXY_* setting, make
target, Makefile variable and environment variable; every command it shows is checked or says
why not; its benchmark tables come from bench/results/; and `mkdocs build --strict` passes.

Role variables are checked against each role's defaults.py in tests/deploy/test_variables.py.

The convention for commands, in README.md and docs/*.md:

- a fenced block in `sh` (or `bash`, `shell`, `console`) holds commands; output (a screen, a
  log line) goes in a `text` block; every fence names its language;
- in a command block with no marker, every command must be `make TARGET` (a target of the
  Makefile) or `python -m MODULE` (`.venv/bin/python`, an importable module), env assignments
  allowed in front: these are checked here, not run;
- any other block is preceded by `<!-- tested: tests/PATH[, tests/PATH] -->` (the tests that
  run those commands; each path must exist) or `<!-- not tested: REASON -->`;
- anywhere in the text, `make X` in backticks must name a target and `python -m X` a module.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from proxy_app.config import Settings

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
PAGES = {p.name: p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}
# ARCHITECTURE.md is a page of the site too (docs/architecture.md includes it).
DOCS = "\n".join([README, (ROOT / "ARCHITECTURE.md").read_text(), *PAGES.values()])
SOURCES = {"README.md": README} | {f"docs/{name}": text for name, text in PAGES.items()}
MAKEFILE = (ROOT / "Makefile").read_text().replace("\\\n", " ")


def _table_keys(text: str) -> set[str]:
    """Every backticked name in the first cell of a table row."""
    cells = re.findall(r"^\| ([^|]+) \|", text, re.M)
    return {name for cell in cells for name in re.findall(r"`([^`]+)`", cell)}


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_has_its_row_in_the_proxy_app_settings_table(name: str) -> None:
    assert f"PROXY_{name.upper()}" in _table_keys(PAGES["proxy_app.md"]), (
        f"docs/proxy_app.md's settings table lacks PROXY_{name.upper()}"
    )


def _make_targets() -> list[str]:
    """Every target the Makefile declares .PHONY (its user-facing commands)."""
    phony = re.search(r"^\.PHONY:(.*)$", MAKEFILE, re.M)
    assert phony, "the Makefile declares no .PHONY targets"
    return sorted(phony.group(1).split())


TARGETS = set(_make_targets())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_make_target_is_in_make_help_and_the_docs(target: str) -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert re.search(rf"^make {re.escape(target)}\s", done.stdout, re.M), done.stdout
    assert f"make {target}" in DOCS, f"the docs lack `make {target}`"


@pytest.mark.parametrize("name", sorted(set(re.findall(r"^([A-Z_]+)\s*\?=", MAKEFILE, re.M))))
def test_every_makefile_variable_is_documented(name: str) -> None:
    assert re.search(rf"`{name}[`=]", DOCS), f"the docs lack the make variable {name}"


def _environment_names() -> list[str]:
    """The project's own environment variables, as the control-side code spells them."""
    prefixes = "VAST|SANDBOX|AUTOSCALE|GATEWAY|SELFHOST|LLAMACPP|DEPLOY"
    pattern = re.compile(rf"\"((?:{prefixes})_[A-Z_]+)\"")
    names: set[str] = set()
    for folder in ("fleet", "sandbox", "inventories", "devkit", "roles", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(pattern.findall(path.read_text()))
    for path in (ROOT / "deploy.py", ROOT / "config.py"):
        names |= set(pattern.findall(path.read_text()))
    return sorted(names)


@pytest.mark.parametrize("name", _environment_names())
def test_every_environment_variable_is_documented(name: str) -> None:
    assert f"`{name}" in DOCS, f"the docs lack the environment variable {name}"


# --- every command the docs show is checked, run by a named test, or says why not ----------

FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.M | re.S)
MARKER = re.compile(r"<!-- (?P<kind>tested|not tested): (?P<what>.+?) -->\n*\Z", re.S)
SHELL = {"sh", "bash", "shell", "console"}
PY_MODULE = re.compile(r"(?:^|[\s/])python3? -m ([\w.]+)")
ASSIGNMENT = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*")


def _blocks() -> list[tuple[str, str, str, str]]:
    """(source, language, body, what precedes the block) for every fenced block."""
    found = []
    for source, text in SOURCES.items():
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n\n", 1)[-1]
            found.append((source, match["lang"], match["body"], before + "\n"))
    return found


BLOCKS = _blocks()


def _commands(body: str) -> list[str]:
    """The commands of a shell block: continuations joined, comments and heredocs dropped."""
    commands, heredoc = [], None
    for line in body.replace("\\\n", " ").splitlines():
        if heredoc is not None:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        if (end := re.search(r"<<-?'?(\w+)'?", line)) is not None:
            heredoc = end.group(1)
        command = re.split(r"\s+#\s|^#", line, maxsplit=1)[0].strip()
        if command:
            commands.append(command)
    return commands


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _checked(command: str) -> bool:
    """`make TARGET …` with a real target, or `python -m MODULE …` with a real module."""
    bare = ASSIGNMENT.sub("", command)
    if (make := re.match(r"make ([a-z][a-z-]*)(\s|$)", bare)) is not None:
        return make.group(1) in TARGETS
    if (python := re.match(r"(?:\.venv/bin/)?python3? -m ([\w.]+)(\s|$)", bare)) is not None:
        return _importable(python.group(1))
    return False


@pytest.mark.parametrize(
    ("source", "lang", "body", "before"),
    BLOCKS,
    ids=[f"{source}:{body.splitlines()[0][:40] if body else ''}" for source, _, body, _ in BLOCKS],
)
def test_every_command_block_is_checked_tested_or_marked(
    source: str, lang: str, body: str, before: str
) -> None:
    assert lang, f"{source}: a fenced block without a language (sh for commands, text for output)"
    if lang not in SHELL:
        return
    marker = MARKER.search(before)
    if marker is None:
        unchecked = [c for c in _commands(body) if not _checked(c)]
        assert not unchecked, (
            f"{source}: {unchecked} are neither a make target nor an importable python -m; "
            "mark the block <!-- tested: tests/… --> or <!-- not tested: why -->"
        )
    elif marker["kind"] == "tested":
        for path in re.split(r",\s*", marker["what"]):
            assert (ROOT / path).exists(), f"{source}: <!-- tested: {path} --> does not exist"
    else:
        assert len(marker["what"].strip()) > 10, f"{source}: say why the block is not tested"


def test_no_indented_code_blocks() -> None:
    """Indented code escapes the convention: every code block is fenced, with its language."""
    for source, text in SOURCES.items():
        outside = FENCE.sub("", text)
        indented = re.findall(r"\n\n((?: {4}|\t)(?![-*\d]).+)", outside)
        assert not indented, f"{source}: indented code blocks {indented}"


INLINE_MAKE = re.compile(r"`(?:[A-Z_]+=\S+ )*make ([a-z][a-z-]*)")


@pytest.mark.parametrize("target", sorted(set(INLINE_MAKE.findall(DOCS))))
def test_every_make_command_in_the_text_is_a_target(target: str) -> None:
    assert target in TARGETS, f"the docs show `make {target}`, which the Makefile lacks"


@pytest.mark.parametrize("module", sorted(set(PY_MODULE.findall(DOCS))))
def test_every_python_module_the_docs_run_exists(module: str) -> None:
    assert _importable(module), f"the docs run `python -m {module}`, which does not import"


# --- benchmark tables come from bench/results/ ---------------------------------------------

RESULTS = ROOT / "bench" / "results"


def _latest_results() -> list[str]:
    """Each report the bench writes (not the dated copies), and the JSON that has none."""
    names = [
        p.relative_to(RESULTS).as_posix()
        for p in sorted(RESULTS.rglob("*.md"))
        if not re.fullmatch(r"\d{8}-\d{6}\.md", p.name)
    ]
    names += [
        p.relative_to(RESULTS).as_posix()
        for p in sorted(RESULTS.rglob("*.json"))
        if not p.with_suffix(".md").exists() and not re.fullmatch(r"\d{8}-\d{6}\.json", p.name)
    ]
    return names


@pytest.mark.parametrize("name", _latest_results())
def test_every_bench_result_is_rendered_in_the_docs(name: str) -> None:
    assert f"<!-- bench: {name} -->" in PAGES["benchmarks.md"] + PAGES["autoscaling.md"], (
        f"bench/results/{name} is not rendered in docs/benchmarks.md"
    )


def test_the_benchmarks_page_copies_no_table_by_hand() -> None:
    """Its tables all come from the hook; prose describes, the rendered tables give numbers."""
    rows = re.findall(r"^\|.*\d.*\|$", PAGES["benchmarks.md"], re.M)
    assert not rows, f"docs/benchmarks.md has hand-copied table rows: {rows[:3]}"


def test_the_bench_hook_renders_the_results() -> None:
    sys.path.insert(0, str(ROOT))
    from docs_hooks import bench

    deploy = bench.render("deploy_times.json", RESULTS)
    assert deploy.startswith("| hosts | first run (s) |"), deploy
    latest = bench.render("latest.md", RESULTS)
    assert latest.startswith("### "), "a report's title sits under the page's sections"
    assert bench.demote("# a\n```\n# not a heading\n```\n") == "### a\n```\n# not a heading\n```\n"
    with pytest.raises(Exception, match="does not exist"):
        bench.render("nothing.md", RESULTS)


# --- the site builds, strictly -------------------------------------------------------------


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """Broken links or anchors, pages left out of nav, a missing snippet: any warning fails.
    (Not --quiet: it hides the warnings from --strict, which then passes a broken site.)"""
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "architecture.html").exists()
    html = (tmp_path / "site" / "benchmarks.html").read_text()
    assert "bench/latency.png" in html and "<!-- bench:" not in html
