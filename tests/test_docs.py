"""Every Python sample in the documentation runs.

Each ```python block of docs/**/*.md is run on its own, as a user would paste it: top-level
`await` is allowed, and `valkey://127.0.0.1:6379` (or `localhost`) is this suite's server. A
block that is deliberately not runnable (a fragment, one that needs a TLS server or an ACL
user) is marked by an HTML comment on the line before it, which the site does not show:

    <!-- not-run: the reason -->

An unmarked block that raises fails its test.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# The README's samples run like the docs' (the README is also the package index's page).
RUN_README_SAMPLES = True
SOURCES = sorted((ROOT / "docs").rglob("*.md")) + ([README] if RUN_README_SAMPLES else [])
README_MAX_BYTES = 12 * 1024  # one page to read, not a second documentation site

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:(?P<reason>.*?)-->\s*$")
CLUSTER_URLS = ("valkey://127.0.0.1:6379?cluster=true", "valkey://localhost:6379?cluster=true")
URLS = ("valkey://127.0.0.1:6379", "valkey://localhost:6379")
TIMEOUT = 60  # seconds a sample may take; the samples are meant to take well under one


@dataclass(frozen=True)
class Sample:
    path: Path
    line: int  # of the first line of code, 1-based
    code: str
    not_run: str | None  # the reason given, if it is marked not to run

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def samples_in(path: Path) -> list[Sample]:
    """The ```python blocks of a Markdown file, indented ones (in a list, an admonition) too."""
    found = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].split()[0] if opening["info"].strip() else ""
        start = i + 1
        i = start
        while i < len(lines):
            closing = FENCE.match(lines[i])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            i += 1
        else:
            raise AssertionError(f"{path}:{start}: a code block is never closed")
        if language == "python":
            body = [
                line[len(indent) :] if line.startswith(indent) else line.lstrip()
                for line in lines[start:i]
            ]
            before = next((lines[j] for j in range(start - 2, -1, -1) if lines[j].strip()), "")
            marked = NOT_RUN.match(before)
            found.append(
                Sample(path, start + 1, "\n".join(body), marked["reason"] if marked else None)
            )
        i += 1
    return found


SAMPLES = [sample for path in SOURCES for sample in samples_in(path)]


def test_samples_are_found() -> None:
    # a parser that found nothing would pass every sample vacuously
    assert len(SAMPLES) >= 20
    assert all(sample.code.strip() for sample in SAMPLES)
    assert sum(sample.path == README for sample in SAMPLES) >= 3


def test_the_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes, over {README_MAX_BYTES}: move the detail to docs/"
    )


def test_the_readme_links_work_on_the_package_index() -> None:
    # The package index shows README.md away from the repository: a relative link or image
    # there points nowhere.
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets
    relative = [target for target in targets if not target.startswith(("https://", "#"))]
    assert relative == [], f"README.md links must be absolute: {relative}"


@pytest.mark.parametrize(
    "sample", [s for s in SAMPLES if s.not_run is not None], ids=lambda s: s.id
)
def test_not_run_marks_give_a_reason(sample: Sample) -> None:
    assert sample.not_run is not None
    assert sample.not_run.strip(), (
        f"{sample.id}: say why the sample does not run: <!-- not-run: the reason -->"
    )


def run(code: str, filename: str, line: int) -> None:
    """Run ``code`` as a module whose first line is ``line`` of ``filename``, so that a
    traceback points into the Markdown file."""
    compiled = compile(
        "\n" * (line - 1) + code,
        filename,
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        dont_inherit=True,
    )
    namespace: dict[str, object] = {"__name__": "__main__"}
    if compiled.co_flags & inspect.CO_COROUTINE:  # it awaits at top level
        coroutine = eval(compiled, namespace)
        asyncio.run(asyncio.wait_for(coroutine, TIMEOUT))
    else:
        exec(compiled, namespace)


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s.not_run is None], ids=lambda s: s.id)
def test_sample_runs(sample: Sample, request: pytest.FixtureRequest) -> None:
    code = sample.code
    if any(url in code for url in CLUSTER_URLS):
        cluster_url = request.getfixturevalue("cluster_url")
        for url in CLUSTER_URLS:
            code = code.replace(url, cluster_url)
    if any(url in code for url in URLS):
        valkey_url = request.getfixturevalue("valkey_url")
        for url in URLS:
            code = code.replace(url, valkey_url)
    run(code, str(sample.path), sample.line)
    # a client the sample left open warns when collected: here, not in a later test
    gc.collect()
