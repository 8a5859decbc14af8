"""A Griffe extension for the API reference: interactive examples outside an `Examples:` section.

Google-style docstrings render `>>>` lines as examples only inside an `Examples:` section;
anywhere else Markdown reads them as nested block quotes (and a `# comment` in them as a
heading). This fences each run of `>>>` and `...` lines as a `pycon` code block instead, so
that such docstrings render as code. Loaded by mkdocs.yml (the python handler's `extensions`).
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """``text`` with every run of unindented ``>>>``/``...`` lines in a ```pycon fence."""
    out: list[str] = []
    in_fence = in_example = False
    for line in text.split("\n"):
        if line.startswith("```"):
            in_fence = not in_fence
        is_example = not in_fence and (
            line.startswith(">>>") or (in_example and line.startswith("..."))
        )
        if is_example and not in_example:
            out.append("```pycon")
        elif in_example and not is_example:
            out.append("```")
        in_example = is_example
        out.append(line)
    if in_example:
        out.append("```")
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fences the interactive examples of every docstring (see the module's docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
