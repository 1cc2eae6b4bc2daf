"""A vectorized simulator of two-layer linear models f(x) = V^T B x across federated clients."""

from synthetic.config import ConfigError, SimConfig

__all__ = ["ConfigError", "SimConfig"]
