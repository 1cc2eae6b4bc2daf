"""Feature-distortion metrics for real networks and a small federated experiment on CPU."""

from empirical.checkpoints import (
    CheckpointError,
    CorruptCheckpointError,
    StateDictMismatchError,
    UnsafeCheckpointError,
    load_model,
    load_state_dict,
)
from empirical.compare import compare_checkpoints
from empirical.data import ClientData, ClientDataConfig, load_digits_images, make_clients
from empirical.drift import weight_drift
from empirical.experiment import (
    PRESETS,
    ExperimentConfig,
    load_epoch_log,
    load_metrics,
    make_preset,
    run_experiment,
    summarize,
)
from empirical.features import (
    LayerNotFoundError,
    NonFiniteFeaturesError,
    capture,
    extract_features,
    resolve_layers,
)
from empirical.inputs import load_inputs
from empirical.metrics import (
    StreamingLinearCKA,
    delta_l2,
    linear_cka,
    mean_cosine_distance,
    minibatch_cka,
    principal_angles,
    procrustes_distance,
    relative_l2,
)
from empirical.model_spec import ModelSpec, resolve_model_spec
from empirical.models import MODEL_REGISTRY, build_model, split_parts
from empirical.pft import VARIANTS, PFTConfig, personalize
from empirical.training import FedAvgConfig, LocalConfig, fedavg

__all__: list[str] = [
    "CheckpointError",
    "CorruptCheckpointError",
    "LayerNotFoundError",
    "ModelSpec",
    "NonFiniteFeaturesError",
    "StateDictMismatchError",
    "StreamingLinearCKA",
    "UnsafeCheckpointError",
    "capture",
    "compare_checkpoints",
    "delta_l2",
    "extract_features",
    "linear_cka",
    "load_inputs",
    "load_model",
    "load_state_dict",
    "mean_cosine_distance",
    "minibatch_cka",
    "principal_angles",
    "procrustes_distance",
    "relative_l2",
    "resolve_layers",
    "resolve_model_spec",
    "weight_drift",
    "ClientData",
    "ClientDataConfig",
    "load_digits_images",
    "make_clients",
    "PRESETS",
    "ExperimentConfig",
    "load_epoch_log",
    "load_metrics",
    "make_preset",
    "run_experiment",
    "summarize",
    "MODEL_REGISTRY",
    "build_model",
    "split_parts",
    "VARIANTS",
    "PFTConfig",
    "personalize",
    "FedAvgConfig",
    "LocalConfig",
    "fedavg",
]
