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
# # The theory figures, rebuilt and explored
#
# Each section below rebuilds one theorem-validation figure of `feddistort figures` with the
# library's own functions: it takes the figure's settings (a plain dict you can edit), computes
# the tidy plot data (one row per plotted point, with `panel, series, x, y, lo, hi`) and draws it.
# The closed forms and their sources are described in `docs/theory.md` of the repository.
#
# The notebook runs in **quick mode** by default (small grids, about a minute in all). Set
# `QUICK = False` in the next cell for the settings `feddistort figures` uses (several minutes).
# Everything it computes goes to a temporary folder that is removed at the end.

# %% tags=["parameters"]
QUICK = True

# %%
import tempfile
from pathlib import Path

import pandas as pd

from figures.registry import get_figure

workdir_handle = tempfile.TemporaryDirectory(prefix="feddistort-nb-")
WORKDIR = Path(workdir_handle.name)
NAMES = ["lemma-4.3", "thm-4.4", "thm-4.5", "kumar"]
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
# ## Lemma 4.3: where one fine-tuning step moves the features
#
# One FT step from the global model moves each shared feature row along the client's own
# direction, by an amount proportional to the shift `lambda`. Markers are simulated rows, lines
# the closed form. Try other `lam` or `vcom_norm` values through `build(..., lam=[...])`.

# %%
settings, data, fig = build("lemma-4.3")
data.groupby("panel").size()

# %% [markdown]
# ## Theorem 4.4: FT versus LP-FT under concept shift
#
# FT's global loss after one step against LP-FT's, as the shift grows; the phase panel shows
# where LP-FT wins, which depends on the step size (the condition `2 c_L eta s >= 1`).

# %%
settings, data, fig = build("thm-4.4")
data.head()

# %% [markdown]
# ## Theorem 4.5: covariate shift and the crossing point lambda*
#
# With client means `e_i + eps z`, the difference of the two global losses is a polynomial in
# `lambda`; where it changes sign LP-FT and FT swap places.

# %%
settings, data, fig = build("thm-4.5")
data.head()

# %% [markdown]
# ## Kumar et al.: finite samples and many steps
#
# The out-of-distribution loss along gradient-descent trajectories with fewer samples than
# dimensions: LP-FT keeps perfect features, FT distorts them.

# %%
settings, data, fig = build("kumar")
data.head()

# %% [markdown]
# ## Clean up
# The computed tables stay in `results`; the temporary folder is removed here.

# %%
workdir_handle.cleanup()
sorted(results)
