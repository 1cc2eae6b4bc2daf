"""The ``feddistort figures`` command: files, manifest hashes, failure isolation, bad input."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from feddistort.cli import main
from figures import registry

SUBSET = ["lemma-4.3", "kumar"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _check_outputs(out, names, formats=("png",)):
    manifest = json.loads((out / "manifest.json").read_text())["figures"]
    for name in names:
        entry = manifest[name]
        assert entry["status"] == "ok"
        csv = out / f"{name}.csv"
        assert entry["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
        for fmt in formats:
            assert (out / f"{name}.{fmt}").stat().st_size > 1000
        spec = registry.get_figure(name)
        assert entry["caption"].startswith(spec.caption)  # then the sentences from its records
        assert isinstance(entry["trends"], list)
        assert bool(entry["trends"]) == (spec.trends is not None)
        assert entry["seeds"] == entry["config"]["seeds"]
        assert entry["package_version"]
    return manifest


def test_quick_subset_writes_files_and_manifest(tmp_path):
    out = tmp_path / "out"
    code = main(["figures", "--quick", "--no-progress", "--out", str(out), "--format",
                 "png,svg", "--only", *SUBSET])  # fmt: skip
    assert code == 0
    first = _check_outputs(out, SUBSET, ("png", "svg"))
    # Unchanged inputs give identical CSVs.
    assert main(["figures", "--quick", "--no-progress", "--out", str(out), "--only", *SUBSET]) == 0
    second = _check_outputs(out, SUBSET)
    for name in SUBSET:
        assert first[name]["sha256"] == second[name]["sha256"]


def test_failing_figure_is_isolated(tmp_path, monkeypatch, capsys):
    def broken(settings, workdir):
        raise RuntimeError("boom in data")

    spec = registry.get_figure("lemma-4.3")
    monkeypatch.setitem(registry.REGISTRY, "lemma-4.3", dataclasses.replace(spec, data=broken))
    out = tmp_path / "out"
    code = main(["figures", "--quick", "--no-progress", "--out", str(out), "--only", *SUBSET])
    assert code == 1
    manifest = json.loads((out / "manifest.json").read_text())["figures"]
    assert manifest["lemma-4.3"]["status"] == "failed"
    assert "boom in data" in manifest["lemma-4.3"]["error"]
    assert not (out / "lemma-4.3.png").exists()
    _check_outputs(out, ["kumar"])
    assert "lemma-4.3 failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--only", "no-such-figure"], "no-such-figure"),
        (["--format", "png,bmp"], "png,bmp"),
    ],
)
def test_bad_input_exits_2_naming_the_value(tmp_path, capsys, argv, needle):
    code = main(["figures", "--quick", "--no-progress", "--out", str(tmp_path), *argv])
    assert code == 2
    assert needle in capsys.readouterr().err


@pytest.mark.slow
def test_quick_run_of_every_figure_writes_every_file(tmp_path):
    """The whole ``feddistort figures --quick``: every registered figure, files and hashes."""
    out = tmp_path / "all"
    assert main(["figures", "--quick", "--no-progress", "--out", str(out)]) == 0
    names = registry.figure_names(on_request=False)
    assert len(names) >= 7
    assert "split-depth" not in names  # a study built only when named (registry.ON_REQUEST)
    manifest = _check_outputs(out, names)
    assert set(manifest) == set(names)
