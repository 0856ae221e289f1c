"""The Beam pipelines are installed as ``keras_det.beam``; the checkout's ``pipelines/`` only runs them.

A top-level ``pipelines`` package in the wheel would clash with any other of that name, so
pyproject.toml's ``[tool.setuptools.packages.find]`` must select ``keras_det`` alone.
"""

import importlib
import os
import subprocess
import sys

import pytest
import setuptools

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = ("sources", "tf_example", "driver", "proposals", "predict", "evaluate", "portable")
ENTRY_POINTS = ("proposals", "predict", "evaluate")


def _packages_find():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]


def test_keras_det_beam_modules_import():
    import keras_det.beam

    assert os.path.dirname(keras_det.beam.__file__) == os.path.join(ROOT, "keras_det", "beam")
    for name in MODULES:
        assert importlib.import_module(f"keras_det.beam.{name}").__name__ == f"keras_det.beam.{name}"


def test_wheel_packages_are_keras_det_only():
    find = _packages_find()
    packages = setuptools.find_packages(where=ROOT, include=find["include"], exclude=find.get("exclude", ()))
    assert "keras_det" in packages and "keras_det.beam" in packages
    assert all(p == "keras_det" or p.startswith("keras_det.") for p in packages), packages
    assert not any(p.split(".")[0] in ("pipelines", "tests", "benchmarks") for p in packages)
    # pipelines/ is still a package of the checkout, so the selection (not its absence) keeps it out.
    assert "pipelines" in setuptools.find_packages(where=ROOT)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_checkout_entry_points_call_keras_det_beam(name):
    shim = importlib.import_module(f"pipelines.{name}")
    assert shim.main is importlib.import_module(f"keras_det.beam.{name}").main


def test_python_m_pipelines_runs_from_the_repository_root():
    proc = subprocess.run([sys.executable, "-m", "pipelines.proposals", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--max_proposals" in proc.stdout
