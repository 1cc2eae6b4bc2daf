"""Regenerate figures: images, the tidy CSV of the plotted data, and ``manifest.json``.

Each figure is computed, plotted and written on its own; a failure is recorded in the
manifest and reported, and the other figures are still produced.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMATS: tuple[str, ...] = ("png", "pdf", "svg")


@dataclass
class BuildReport:
    """Outcome of :func:`build_figures`.

    Attributes
    ----------
    written : dict of str to list of Path
        Files written per figure.
    failed : dict of str to str
        Error message per failed figure.
    """

    written: dict[str, list[Path]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_formats(text: str) -> list[str]:
    """Parse ``png,pdf``; a ValueError names the bad value and the choices."""
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"--format={text!r} is invalid: expected a comma list of {FORMATS}")
    return list(dict.fromkeys(formats))


def build_figures(
    names: Sequence[str] | None,
    out: str | Path,
    *,
    quick: bool = False,
    formats: Sequence[str] = ("png",),
    progress: bool = True,
) -> BuildReport:
    """Compute, plot and write the chosen figures and update ``out/manifest.json``.

    Parameters
    ----------
    names : sequence of str or None
        Registered figure names (all when None).
    out : str or Path
        Output folder; ``out/_work`` holds resumable caches (the real experiment runs).
    quick : bool
        Small settings (fewer seeds, grid points and rounds).
    formats : sequence of str
        Image formats among :data:`FORMATS`.
    progress : bool
        Progress bars: the figures, weighted by their expected time (see
        :mod:`figures._progress`), and the experiment runs inside a figure.

    Returns
    -------
    BuildReport
    """
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    from feddistort_io import __version__, atomic_write_csv, atomic_write_json
    from figures._progress import FigureBar, expected_seconds, showing_inner_progress
    from figures._style import DPI, polish
    from figures.registry import figure_names, get_figure

    chosen = figure_names(on_request=False) if not names else list(dict.fromkeys(names))
    specs = [get_figure(n) for n in chosen]  # validates every name before any work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest: dict[str, Any] = {"figures": {}}
    if manifest_path.exists():
        import json

        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError:
            manifest = {"figures": {}}
    manifest.setdefault("figures", {})
    report = BuildReport()
    bar = FigureBar(expected_seconds(chosen, manifest, quick), progress)
    for spec in specs:
        bar.start(spec.name)
        start = time.perf_counter()
        settings = spec.settings(quick)
        entry: dict[str, Any] = {
            "name": spec.name, "caption": spec.caption, "config": settings,
            "seeds": settings.get("seeds", []), "quick": quick, "package_version": __version__,
        }  # fmt: skip
        try:
            with showing_inner_progress(bar.inner(spec.name) if progress else False):
                data = spec.data(settings, out / "_work" / spec.name)
            records = spec.records(data)
            entry |= {"caption": spec.render_caption(records),
                      "trends": [r.as_dict() for r in records]}  # fmt: skip
            csv_path = atomic_write_csv(out / f"{spec.name}.csv", data)
            fig = polish(spec.plot(data))
            files = [csv_path]
            try:
                for fmt in formats:
                    target = out / f"{spec.name}.{fmt}"
                    tmp = out / f".{spec.name}.tmp.{fmt}"
                    fig.savefig(tmp, format=fmt, dpi=DPI, metadata=_metadata(fmt))
                    tmp.replace(target)
                    files.append(target)
            finally:
                plt.close(fig)
            entry |= {
                "status": "ok", "csv": csv_path.name, "sha256": sha256_file(csv_path),
                "rows": len(data), "files": [p.name for p in files],
            }  # fmt: skip
            report.written[spec.name] = files
        except Exception as err:  # noqa: BLE001 - one figure's failure must not stop the others
            message = f"{type(err).__name__}: {err}"
            entry |= {"status": "failed", "error": message}
            report.failed[spec.name] = message
            tqdm.write(f"figure {spec.name} failed: {message}")
            tqdm.write(traceback.format_exc(limit=3))
        entry["seconds"] = round(time.perf_counter() - start, 1)
        manifest["figures"][spec.name] = entry
        atomic_write_json(manifest_path, manifest)
        bar.finish(spec.name)
    bar.close()
    return report


def _metadata(fmt: str) -> dict[str, Any] | None:
    """Drop creation dates so unchanged figures give identical files where possible."""
    if fmt == "png":
        return {"Software": None}
    if fmt == "pdf":
        return {"CreationDate": None, "ModDate": None}
    if fmt == "svg":
        return {"Date": None}
    return None
