"""The documentation's examples run and print what the pages show.

Every ``pycon`` block of a page in ``docs/`` is a doctest; a page's blocks run in order
in one namespace, so later blocks use the fits of earlier ones. Inside a block a blank
line belongs to the output (a printed summary has blank lines), so examples within a
block follow each other without blank lines. Code in other fences is not run: lmm code
must therefore be in ``pycon`` blocks, which a test checks.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))
# A fenced block: its language and its text, with the line of its first text line.
_FENCE = re.compile(r"^```([^\s`]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _blocks(page: Path, language: str) -> list[tuple[int, str]]:
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(2)), m.group(2))
            for m in _FENCE.finditer(text) if m.group(1) == language]


def _as_doctest(block: str) -> str:
    """The block with its blank lines marked as output (doctest would end the output there)."""
    return "\n".join(line if line.strip() else "<BLANKLINE>" for line in block.rstrip().splitlines()) + "\n"


EXAMPLE_PAGES = [p for p in PAGES if _blocks(p, "pycon")]


def test_the_pages_with_examples_are_found():
    names = {p.name for p in EXAMPLE_PAGES}
    assert {"index.md", "guide.md", "lme4.md", "statsmodels.md"} <= names


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=lambda p: p.name)
def test_examples_run_and_print_what_the_page_shows(page: Path):
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    globs: dict = {"__name__": f"docs.{page.stem}"}
    report: list[str] = []
    for lineno, block in _blocks(page, "pycon"):
        test = parser.get_doctest(_as_doctest(block), globs, page.name, str(page), lineno)
        runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs  # (a DocTest runs in a copy of the namespace it is given)
    assert runner.failures == 0, "".join(report)
    assert runner.tries > 0


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_lmm_code_is_only_in_blocks_that_run(page: Path):
    for language in ("python", "py", "ipython", "default", ""):
        for lineno, block in _blocks(page, language):
            assert not re.search(r"\blmm\.|import lmm", block), (
                f"{page.name}:{lineno + 1}: lmm code in a ```{language} block is not run; "
                "write it as a ```pycon doctest")


# --- the benchmark figure's numbers ---------------------------------------------------------------

ROOT = DOCS.parent
TIMES = ROOT / "benchmarks" / "results" / "fit_times.csv"
_SYSTEMS = ["lmm", "lme4", "lme4 noderivs", "statsmodels"]


def _readme_fit_times() -> dict[tuple[str, str], tuple]:
    """README's first benchmark table: (model, system) → (rows, status, seconds, seconds_max)."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Benchmarks\n", 1)[1]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:6] == ["model", "rows", *_SYSTEMS], header
    out = {}
    for line in lines[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) != len(header):
            break  # the next table
        model = cells[0].split()[0]
        for system, cell in zip(_SYSTEMS, cells[2:6]):
            if m := re.fullmatch(r"([\d.]+)(?:–([\d.]+))?", cell):
                value = ("ok", float(m.group(1)), float(m.group(2)) if m.group(2) else None)
            elif m := re.match(r"> ([\d.]+)", cell):
                value = ("timeout", float(m.group(1)), None)
            else:
                value = (cell, None, None)
            out[model, system] = (int(cells[1].replace(",", "")), *value)
    return out


def test_benchmark_figure_data_are_the_readme_table():
    import csv

    with TIMES.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    got = {(r["model"], r["system"]): (int(r["rows"]), r["status"], float(r["seconds"]) if r["seconds"] else None,
                                       float(r["seconds_max"]) if r["seconds_max"] else None) for r in rows}
    assert got == _readme_fit_times()


def test_benchmark_figure_is_drawn_from_its_data():
    pytest.importorskip("matplotlib")
    import importlib.util

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = importlib.util.spec_from_file_location("plot_fit_times", ROOT / "benchmarks" / "plot_fit_times.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    times = module.read_times(TIMES)
    fig = module.plot(times)
    ax = fig.axes[0]
    assert len(ax.get_yticks()) == times["model"].nunique()
    assert ax.get_xscale() == "log"
    timed = times[times["status"].isin(["ok", "timeout"])]
    assert len(ax.patches) == len(timed)  # one bar per measured (or stopped) fit
    plt.close(fig)
