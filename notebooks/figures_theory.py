# %% [markdown]
# # Figures: theory family
# Rebuild and explore each figure with small, editable settings (library code only).
# Set FEDDISTORT_QUICK=1 for the quick settings (the test suite does).

# %%
import os
import tempfile
from pathlib import Path

from figures.registry import get_figure

QUICK = os.environ.get("FEDDISTORT_QUICK", "1") == "1"
NAMES = "lemma-4.3 thm-4.4 thm-4.5 kumar".split()
WORKDIR = Path(tempfile.mkdtemp(prefix="feddistort-nb-"))

# %%
results = {}
for name in NAMES:
    spec = get_figure(name)
    settings = spec.settings(QUICK)  # edit entries here to explore
    data = spec.data(settings, WORKDIR / name)
    fig = spec.plot(data)
    results[name] = (settings, data, fig)
    print(name, len(data), "rows:", spec.caption[:80], "...")
