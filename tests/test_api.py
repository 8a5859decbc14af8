from __future__ import annotations

import types

import glidelimit


def test_all_is_sorted_and_complete() -> None:
    assert glidelimit.__all__ == sorted(glidelimit.__all__)
    public = {
        name
        for name, value in vars(glidelimit).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(glidelimit.__all__)


def test_core_does_not_import_glide() -> None:
    import subprocess
    import sys

    code = "import sys, glidelimit; print('glide' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # memory-only users do not pay glide's import
