"""What installing lmm gives: a typed package, its runtime dependencies, the README's one
install command, and public functions whose options signature help can show."""

from __future__ import annotations

import inspect
import pathlib
import re
import sys

import pytest

import lmm

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    path = ROOT / "pyproject.toml"
    if not path.is_file():
        pytest.skip("not run from a clone of the repository")
    with path.open("rb") as fh:
        return tomllib.load(fh)


def test_the_package_is_marked_typed():
    # Without py.typed, mypy and pyright treat every lmm import as untyped.
    assert (pathlib.Path(lmm.__file__).parent / "py.typed").is_file()
    assert "python/lmm" in _pyproject()["tool"]["scikit-build"]["wheel"]["packages"]  # py.typed goes with it


def test_threadpoolctl_is_a_runtime_dependency():
    # lmm limits BLAS threads with threadpoolctl (refits, small dense blocks); as an optional
    # import the limit was silently missing, and the bootstrap ran 3-20 times slower at random.
    names = [re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0] for d in _pyproject()["project"]["dependencies"]]
    assert "threadpoolctl" in names


def test_the_readme_installs_the_test_and_plot_extras_in_one_build():
    # Each "pip install ..." of an extra builds the package again (2 minutes each): the README's
    # command installs the extras the tests and plots need in the same build.
    extras = _pyproject()["project"]["optional-dependencies"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = readme.split("## Install\n", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r'pip install "?\.\[([a-z,]+)\]"?', install)
    assert any({"test", "plots"} <= set(c.split(",")) for c in commands), install
    assert {"test", "plots"} <= set(extras)
    assert set(extras["plots"]) <= set(extras["test"])  # the plot tests run with the test extra


def test_public_functions_show_their_options():
    # lmer(**kwargs) hid its options from signature help: they are explicit keywords now.
    params = inspect.signature(lmm.lmer).parameters
    for name in ("formula", "data", "REML", "weights", "offset", "contrasts", "sigma", "missing", "start",
                 "optimizer", "tol", "maxiter", "verbose"):
        assert name in params, name
    assert params["weights"].kind is inspect.Parameter.KEYWORD_ONLY
    params = inspect.signature(lmm.LinearMixedModel).parameters
    for name in ("formula", "data", "REML", "weights", "offset", "contrasts", "sigma", "missing"):
        assert name in params, name
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    # (lmm.mixedlm keeps statsmodels' own signature, *args and **kwargs included.)


def test_the_readme_builds_the_cpp_library_in_parallel():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    cpp = readme.split("## Using lmm from C++\n", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"cmake --build \S+ -j", cpp), cpp[:500]
