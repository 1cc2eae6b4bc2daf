"""The names the command line offers (methods, metrics): plain tuples, no imports.

Kept apart from :mod:`synthetic.methods` and :mod:`synthetic.metrics` so that building the
``feddistort`` parser loads nothing but this module.
"""

from __future__ import annotations

METHODS: tuple[str, ...] = ("ft", "lp", "lpft", "proximal", "sparse", "soup", "align")
GLOBAL_METHOD = "global"

# Computed by default; the Monte-Carlo cross-check of Delta and ``feature_angle_max`` (one k x k
# eigenproblem per run) only on request.
DEFAULT_METRICS: tuple[str, ...] = (
    "local_loss",
    "global_loss",
    "global_loss_others",
    "ood_loss",
    "feature_distortion_fro",
    "feature_distortion_local",
    "delta_l2",
    "head_change",
)
METRICS: tuple[str, ...] = (*DEFAULT_METRICS, "delta_l2_mc", "delta_l2_se", "feature_angle_max")

__all__ = ["DEFAULT_METRICS", "GLOBAL_METHOD", "METHODS", "METRICS"]
