"""Feature-distortion metrics for real networks, computed from checkpoints.

The metrics (:mod:`empirical.metrics`), checkpoint loading (:mod:`empirical.checkpoints`),
feature extraction (:mod:`empirical.features`) and the comparison of a global checkpoint with
clients' checkpoints (:func:`compare_checkpoints`). The federated experiment that writes such
checkpoints is the subpackage :mod:`empirical.experiment`. Names load lazily (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from feddistort_io import lazy_exports

if TYPE_CHECKING:
    from empirical.checkpoints import (  # noqa: F401
        CheckpointError,
        CorruptCheckpointError,
        StateDictMismatchError,
        UnsafeCheckpointError,
        load_model,
        load_state_dict,
    )
    from empirical.compare import compare_checkpoints  # noqa: F401
    from empirical.drift import weight_drift  # noqa: F401
    from empirical.features import (  # noqa: F401
        LayerNotFoundError,
        NonFiniteFeaturesError,
        capture,
        extract_features,
        resolve_layers,
    )
    from empirical.inputs import load_inputs  # noqa: F401
    from empirical.metrics import (  # noqa: F401
        StreamingLinearCKA,
        delta_l2,
        linear_cka,
        mean_cosine_distance,
        minibatch_cka,
        principal_angles,
        procrustes_distance,
        relative_l2,
    )
    from empirical.model_spec import ModelSpec, resolve_model_spec  # noqa: F401

# Public name -> the module that defines it (loaded on first use, PEP 562).
_EXPORTS: dict[str, str] = {
    "CheckpointError": "empirical.checkpoints",
    "CorruptCheckpointError": "empirical.checkpoints",
    "StateDictMismatchError": "empirical.checkpoints",
    "UnsafeCheckpointError": "empirical.checkpoints",
    "load_model": "empirical.checkpoints",
    "load_state_dict": "empirical.checkpoints",
    "compare_checkpoints": "empirical.compare",
    "weight_drift": "empirical.drift",
    "LayerNotFoundError": "empirical.features",
    "NonFiniteFeaturesError": "empirical.features",
    "capture": "empirical.features",
    "extract_features": "empirical.features",
    "resolve_layers": "empirical.features",
    "load_inputs": "empirical.inputs",
    "StreamingLinearCKA": "empirical.metrics",
    "delta_l2": "empirical.metrics",
    "linear_cka": "empirical.metrics",
    "mean_cosine_distance": "empirical.metrics",
    "minibatch_cka": "empirical.metrics",
    "principal_angles": "empirical.metrics",
    "procrustes_distance": "empirical.metrics",
    "relative_l2": "empirical.metrics",
    "ModelSpec": "empirical.model_spec",
    "resolve_model_spec": "empirical.model_spec",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
