# %% [markdown]
# # A notebook as a plain Python file
#
# This is the jupytext "percent" format: every `# %%` line starts a cell. nbmemo reads it just
# like an `.ipynb`, so the notebook diffs and reviews like ordinary code:
#
#     nbmemo run percent.py
#
# A marker can carry a title (`# %% Load data`) or cell metadata (`# %% tags=["report"]`).

# %% Load data
inventory = {"apples": 12, "pears": 0, "plums": 31, "figs": 7}
print(f"{len(inventory)} products on the list")

# %% Prices
prices = {"apples": 0.5, "pears": 0.8, "plums": 0.3, "figs": 1.2}
print(f"prices for {len(prices)} products")

# %% [markdown]
# The two cells above are independent: nbmemo runs them in parallel. The next cell reads only
# `inventory`; the last one reads `inventory`, `prices` and `in_stock`.

# %%
in_stock = sorted(k for k in inventory if inventory[k] > 0)
print(f"in stock: {in_stock}")

# %% tags=["report"]
value = sum(inventory[k] * prices[k] for k in in_stock)
print(f"stock value: {value:.2f} ({', '.join(in_stock)})")
