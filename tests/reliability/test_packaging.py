"""What the wheel ships: every non-Python file the package reads at run time, and nothing the
package-data patterns promise but cannot find."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[2]


def _package_data() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]["package-data"]["recsys"]


def _data_files() -> set[str]:
    return {str(p.relative_to(REPO / "recsys")) for p in (REPO / "recsys").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}


def test_every_package_data_pattern_matches_a_file():
    for pattern in _package_data():
        assert list((REPO / "recsys").glob(pattern)), f"package-data pattern '{pattern}' matches no file under recsys/"


def test_every_data_file_of_the_package_is_shipped():
    shipped = {str(p.relative_to(REPO / "recsys")) for pattern in _package_data()
               for p in (REPO / "recsys").glob(pattern)}
    assert "data/downloads.yaml" in shipped  # read by `recsys data download`
    assert _data_files() <= shipped, f"not in [tool.setuptools.package-data]: {_data_files() - shipped}"


@pytest.mark.slow
def test_built_wheel_holds_every_module_and_the_download_catalogue(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 68:
        pytest.skip(f"setuptools {setuptools.__version__} is older than the build requirement (68)")
    source = tmp_path / "src"  # build from a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "recsys", source / "recsys", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(source),
                    "-w", str(tmp_path / "wheel")], check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("recsys-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(REPO)) for p in (REPO / "recsys").rglob("*.py")}
    assert modules <= names, modules - names
    assert "recsys/data/downloads.yaml" in names
    assert not [n for n in names if n.startswith("recsys/") and n.endswith(".yaml") and n != "recsys/data/downloads.yaml"]
