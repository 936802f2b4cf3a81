# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Random numbers with explicit generators
#
# The recommended NumPy style: create a `Generator` with a seed and pass it around.
# Its state travels with the value, so every draw continues where the previous cell left off.

# %%
import random

import numpy as np

rng = np.random.default_rng(0)


# %%
def simulate_walk(rng, steps):
    return np.cumsum(rng.choice([-1, 1], size=steps))


# %%
walk = simulate_walk(rng, 20)
print(walk)

# %%
sample = rng.normal(loc=5, scale=2, size=4)
sample.round(3)

# %%
rng.integers(0, 10, size=5)

# %% [markdown]
# Independent streams for parallel work come from a `SeedSequence`.

# %%
children = np.random.SeedSequence(123).spawn(3)
streams = [np.random.default_rng(s) for s in children]
[round(float(s.random()), 6) for s in streams]

# %%
[round(float(s.random()), 6) for s in streams]

# %% [markdown]
# The standard library has seeded generator objects too.

# %%
dice = random.Random(42)
[dice.randint(1, 6) for _ in range(5)]

# %%
deck = list("ABCDEFGH")
dice.shuffle(deck)
deck

# %%
round(dice.random(), 6), walk.max(), sample.mean().round(3)
