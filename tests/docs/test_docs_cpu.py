"""Performance figures in README.md and docs/ say which CPU they were measured on, and the docs send
readers nowhere they cannot go (issue 27 item 6: "the docs describe another machine").

Speed depends on the CPU's vector width (an AVX2-only CPU and an AVX-512 one differ by about 3x for the
same dense model), and the machines this project measured on changed between sessions, so a figure
without its CPU class misleads. The checks are textual and narrow on purpose: README's performance
section is a table with an AVX2 column and an AVX-512 column; every other README paragraph that quotes a
latency, speed-up or run time names a CPU class; every heading of docs/ that introduces measurements names
one; no page points at the project's own shared folder (a reader's clone has none).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A CPU class as the docs name it: an instruction set, a core generation, or a GPU for GPU figures.
CPU_CLASS = re.compile(r"AVX2|AVX-512|AVX512|Zen ?[2-5]|H100|H200|GPU")
# A performance figure: a latency, a speed-up, a step time, or a run time.
FIGURE = re.compile(
    r"\d(?:[.,]\d+)?\s?(?:ms|µs|s/step)\b|\d(?:\.\d+)?x (?:faster|slower)\b|\d+(?:–\d+)? (?:minutes|hours)\b"
)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", FENCE.sub("", text)) if p.strip()]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_sends_readers_to_the_projects_shared_folder(page):
    text = page.read_text(encoding="utf-8")
    for bad in ("../shared/", "TOOLCHAIN.md"):
        assert bad not in text, f"{page.name} points at {bad}, which a clone of the repository does not have"


def test_readme_performance_table_has_an_avx2_and_an_avx512_column():
    section = _section((ROOT / "README.md").read_text(encoding="utf-8"), "## Performance, by CPU")
    headers = [line for line in section.splitlines() if line.startswith("| variant |")]
    assert headers, "README's performance section has no table"
    for header in headers:
        cells = [c.strip() for c in header.strip("|").split("|")]
        assert any("AVX2 only" in c for c in cells), f"no AVX2-only column: {header}"
        assert any("AVX-512" in c and "capped" not in c for c in cells), f"no AVX-512 column: {header}"
    rows = [
        line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| variant")
    ]
    assert all(line.count("|") == headers[0].count("|") for line in rows), "a row has a missing column"


def test_every_readme_paragraph_with_a_performance_figure_names_its_cpu_class():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    unlabeled = [p.strip()[:120] for p in _paragraphs(text) if FIGURE.search(p) and not CPU_CLASS.search(p)]
    assert not unlabeled, "README paragraphs with figures but no CPU class:\n" + "\n".join(unlabeled)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_measurement_heading_names_its_cpu_class(page):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    headings = [
        line
        for line in text.splitlines()
        if line.startswith("#") and re.search(r"[Mm]easured|[Ss]tep times|[Ss]erving load", line)
    ]
    unlabeled = [h for h in headings if not CPU_CLASS.search(h) and h.strip("# ") != "Measured"]
    assert not unlabeled, f"{page.name}: measurement headings without a CPU class: {unlabeled}"


def test_the_checks_catch_what_they_are_for():
    """The patterns find an unlabeled figure and accept a labeled one (so the tests above can fail)."""
    assert FIGURE.search("runs 2.1x faster than its dense twin on this machine")
    assert not CPU_CLASS.search("runs 2.1x faster than its dense twin on this machine")
    assert FIGURE.search("dense 9.6 ms at batch 1") and FIGURE.search("about 9 minutes")
    assert CPU_CLASS.search("on an AMD EPYC Zen 3, AVX2 only") and CPU_CLASS.search("AVX-512 VNNI")
    assert not FIGURE.search("90 % sparse, 3 seeds, SST-2 dev")
