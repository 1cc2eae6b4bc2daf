"""Every notebook runs in quick mode."""

from __future__ import annotations

import runpy
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.py"))


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_quick(path, monkeypatch):
    monkeypatch.setenv("FEDDISTORT_QUICK", "1")
    namespace = runpy.run_path(str(path))
    assert set(namespace["results"]) == set(namespace["NAMES"])
    for _, data, fig in namespace["results"].values():
        assert len(data) > 0
        assert fig.axes
    plt.close("all")
