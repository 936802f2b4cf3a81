# %% [markdown]
# A jupytext percent script: `pytest --nbmemo` collects it because of its `# %%` lines.

# %%
words = "the quick brown fox jumps over the lazy dog".split()
print(f"{len(words)} words")

# %% Longest word
longest = max(words, key=len)
print(f"longest: {longest}")
