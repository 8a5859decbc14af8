"""The package as it is installed: its version, what the wheel holds, and what a missing
extra says."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

import glidelimit

ROOT = Path(__file__).resolve().parent.parent


def test_version_is_the_installed_distributions() -> None:
    assert glidelimit.__version__ == version("glidelimit")


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [("glidelimit.fastapi", "starlette", "fastapi"), ("glidelimit.aiohttp", "aiohttp", "aiohttp")],
)
def test_a_missing_framework_names_the_extra(module: str, framework: str, extra: str) -> None:
    # None in sys.modules makes `import starlette` fail as if it were not installed
    code = f"import sys; sys.modules[{framework!r}] = None; import {module}"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError:"), done.stderr
    assert f"pip install 'glidelimit[{extra}]'" in last


def test_the_core_imports_no_framework() -> None:
    code = (
        "import sys\n"
        "for name in ('starlette', 'fastapi', 'aiohttp', 'opentelemetry'):\n"
        "    sys.modules[name] = None\n"
        "import glidelimit, glidelimit.keys, glidelimit.testing\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.slow
def test_the_wheel_holds_the_license_and_the_package_data(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("glidelimit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    dist_info = f"glidelimit-{glidelimit.__version__}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    for data in ("py.typed", "demo_page.html", "algorithms/_driver.lua", "algorithms/gcra.lua"):
        assert f"glidelimit/{data}" in names
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    for extra in ("fastapi", "aiohttp", "cli", "otel", "all"):
        assert f"Provides-Extra: {extra}" in metadata
