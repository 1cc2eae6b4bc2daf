# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The personalized fine-tuning figures: the linear model beside a real network
#
# Each section rebuilds one comparison figure of `feddistort figures`: the two-layer linear
# model simulated by `synthetic` next to a small federated CNN trained on scikit-learn's digits
# (`empirical.experiment`). Each takes the figure's settings (a plain dict you can edit),
# computes the tidy plot data and draws it.
#
# The notebook runs in **quick mode** by default (one seed, few rounds: a few minutes on a
# laptop CPU). Set `QUICK = False` in the next cell for the settings `feddistort figures` uses.
# The experiment's runs go to a temporary folder that is removed at the end.

# %% tags=["parameters"]
QUICK = True

# %%
import tempfile
from pathlib import Path

import pandas as pd

from figures.registry import get_figure

workdir_handle = tempfile.TemporaryDirectory(prefix="feddistort-nb-")
WORKDIR = Path(workdir_handle.name)
NAMES = ["tradeoff", "distortion", "flooding", "frontier"]
results: dict[str, tuple[dict, pd.DataFrame, object]] = {}


def build(name: str, **overrides):
    """Settings (with ``overrides``), tidy data and the figure of ``name``; kept in ``results``."""
    spec = get_figure(name)
    settings = {**spec.settings(QUICK), **overrides}
    data = spec.data(settings, WORKDIR / name)
    fig = spec.plot(data)
    results[name] = (settings, data, fig)
    caption = spec.render_caption(spec.records(data))  # its trend sentences come from `data`
    print(f"{name}: {len(data)} rows\n{caption}")
    return settings, data, fig


# %% [markdown]
# ## Local versus global performance
#
# For every PFT method: how well the personalized model does on its own client (local) and on
# the other clients (global). Lower is better for the linear model's losses, higher for the
# network's accuracies.

# %%
settings, data, fig = build("tradeoff")
data.head()

# %% [markdown]
# ## Feature distortion and the drop on other clients
#
# How far each method moves the shared features (Delta) against how much the other clients lose.
# The caption printed with it gives the rank correlation between the two within each shift
# strength, with a bootstrap interval over seeds, computed from the table below.

# %%
settings, data, fig = build("distortion")
data.head()

# %% [markdown]
# ## FT and LP-FT at matched local loss (loss flooding)
#
# Flooding stops FT from driving its local loss below a level, which lets FT and LP-FT be
# compared at the same local loss.

# %%
settings, data, fig = build("flooding")
data.head()

# %% [markdown]
# ## Methods at equal personalization (the frontier)
#
# Each method traced over its own knob (GD steps in the linear model, epochs on digits) on the
# local-versus-global plane, and compared where the methods reach the same local loss, which
# removes the confound of methods personalizing by different amounts.

# %%
settings, data, fig = build("frontier")
data.head()

# %% [markdown]
# ## Clean up

# %%
workdir_handle.cleanup()
sorted(results)
