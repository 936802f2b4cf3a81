# %% [markdown]
# # Changing the working directory
#
# Move into the data folder once, then open files by their bare names.

# %%
import os

os.path.isdir("data")

# %%
os.chdir("data")

# %%
with open("stores.csv") as f:
    header = f.readline().strip()
header

# %%
sorted(os.listdir("."))

# %%
os.chdir("..")
os.path.isdir("data")
