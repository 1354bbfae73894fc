"""Packaging promises: one version everywhere, a light import, sane extras."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import pyinfer
from pyinfer import _core

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DISTRIBUTION = "pyinfer-toolkit"  # `pyinfer` on PyPI is an unrelated project
HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "tensorflow", "keras", "numpy")


def test_one_version_everywhere() -> None:
    version = PYPROJECT["project"]["version"]
    assert pyinfer.__version__ == version
    assert _core.__version__ == version
    try:
        assert importlib.metadata.version(DISTRIBUTION) == version
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{DISTRIBUTION} is not installed (in-place build): no metadata to compare")


def test_the_distribution_is_not_pypis_unrelated_pyinfer() -> None:
    # `pyinfer` on PyPI is another project: what pip is told to install must be this one's name,
    # while the import name, the command and the CMake package stay `pyinfer`.
    assert PYPROJECT["project"]["name"] == DISTRIBUTION
    assert PYPROJECT["project"]["scripts"] == {"pyinfer": "pyinfer.cli:main"}
    assert PYPROJECT["tool"]["scikit-build"]["wheel"]["packages"] == ["src/pyinfer"]
    for extra, requirements in PYPROJECT["project"]["optional-dependencies"].items():
        names = {Requirement(text).name for text in requirements}
        assert "pyinfer" not in names, extra


def test_the_cpp_extension_example_builds_against_this_distribution() -> None:
    example = ROOT / "examples" / "cpp_extension"
    requires = tomllib.loads((example / "pyproject.toml").read_text())["build-system"]["requires"]
    assert DISTRIBUTION in {Requirement(text).name for text in requires}
    assert "pyinfer" not in {Requirement(text).name for text in requires}
    cmake = (example / "CMakeLists.txt").read_text()
    assert "find_package(pyinfer CONFIG REQUIRED)" in cmake
    assert "pyinfer::headers" in cmake
    script = (ROOT / "scripts" / "check_cpp_extension.sh").read_text()
    assert "pyinfer_toolkit-*.whl" in script  # the wheel file name follows the distribution's


OLD_NAME = re.compile(r"""(?<![\w./-])pyinfer\[|pip install ["']?pyinfer(?![\w-])""")


def test_no_message_or_page_tells_pip_to_install_the_unrelated_pyinfer() -> None:
    texts = [*sorted((ROOT / "src" / "pyinfer").rglob("*.py")), ROOT / "README.md"]
    texts += sorted((ROOT / "docs").glob("*.md"))
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in texts
        for match in OLD_NAME.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []
    assert OLD_NAME.search("pip install 'pyinfer[onnx]'")
    assert OLD_NAME.search("pip install pyinfer")
    assert not OLD_NAME.search("pip install 'pyinfer-toolkit[onnx]' && pyinfer demo")


def test_the_reported_version_is_the_running_pyinfer(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyinfer.report import environment

    real = importlib.metadata.version

    def version(name: str) -> str:
        return "0.0.3" if name == "pyinfer" else real(name)  # PyPI's unrelated `pyinfer`

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert environment._versions()["pyinfer"] == pyinfer.__version__


def test_import_loads_no_framework_and_no_cuda() -> None:
    code = (
        "import json, sys, pyinfer\n"
        "maps = open('/proc/self/maps').read()\n"
        "print(json.dumps({'modules': sorted(m for m in sys.modules), 'cuda': 'libcuda' in maps}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=None
    )
    loaded = json.loads(result.stdout)
    heavy = [m for m in loaded["modules"] if m.split(".")[0] in HEAVY]
    assert heavy == []
    assert loaded["cuda"] is False


def _extra_requirements(extra: str, seen: frozenset[str] = frozenset()) -> set[str]:
    names: set[str] = set()
    for text in PYPROJECT["project"]["optional-dependencies"][extra]:
        requirement = Requirement(text)
        if requirement.name == DISTRIBUTION:
            for nested in requirement.extras - seen:
                names |= _extra_requirements(nested, seen | {extra})
        else:
            names.add(requirement.name)
    return names


@pytest.mark.parametrize("extra", sorted(PYPROJECT["project"]["optional-dependencies"]))
def test_no_extra_installs_both_onnxruntime_packages(extra: str) -> None:
    names = _extra_requirements(extra)
    assert not {"onnxruntime", "onnxruntime-gpu"} <= names


def test_extras_admit_the_frameworks_served_here() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    torch = {Requirement(r).name: Requirement(r).specifier for r in extras["torch"]}
    assert "2.14.1" in torch["torch"]
    assert "0.29.1" in torch["torchvision"]
    assert _extra_requirements("all") >= {"torch", "onnxruntime", "tensorflow"}
    assert "onnxruntime-gpu" in _extra_requirements("all-gpu")
    assert _extra_requirements("dev") >= {"pytest", "pytest-cov", "hypothesis", "ruff", "mypy"}
    for extra, requirements in extras.items():
        for text in requirements:
            requirement = Requirement(text)
            if requirement.name != DISTRIBUTION:
                assert str(requirement.specifier), f"{extra}: {text} needs a version range"


def test_public_api_is_typed_and_exported() -> None:
    assert (Path(pyinfer.__file__).parent / "py.typed").is_file()
    assert (Path(pyinfer.__file__).parent / "_core.pyi").is_file()
    for name in pyinfer.__all__:
        assert hasattr(pyinfer, name), name


@pytest.mark.skipif(shutil.which("nm") is None, reason="no nm (binutils) on PATH")
def test_the_module_exports_no_cxx_runtime() -> None:
    # A toolchain that links libstdc++ statically must not export it: a second, visible C++
    # runtime in the process crashed `import torch` after pyinfer (seen on a GPU machine).
    result = subprocess.run(
        ["nm", "-D", "--defined-only", _core.__file__],
        check=True,
        capture_output=True,
        text=True,
    )
    symbols = [line.split()[-1] for line in result.stdout.splitlines() if line.strip()]
    assert "PyInit__core" in symbols
    runtime = [s for s in symbols if s.startswith(("__cxa_", "__gxx_", "_ZNSt6locale"))]
    assert runtime == []
