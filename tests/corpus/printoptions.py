# %% [markdown]
# # Printing arrays compactly
#
# `np.set_printoptions` at the top of the notebook, arrays printed below.

# %%
import numpy as np

np.set_printoptions(precision=3, suppress=True)

# %%
m = np.array([[1 / 3, 2 / 3], [1e-6, 12345.6789]])
print(m)

# %%
np.linspace(0, 1, 7)

# %%
ratios = np.arange(1, 6) / 7
ratios

# %%
np.get_printoptions()["precision"]
