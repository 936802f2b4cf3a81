# %% [markdown]
# # Word statistics with the standard library
#
# `collections.Counter`, `defaultdict`, regular expressions, a dataclass and an enum.

# %%
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from enum import Enum

TEXT = """It was the best of times, it was the worst of times, it was the age of wisdom,
it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity,
it was the season of Light, it was the season of Darkness, it was the spring of hope,
it was the winter of despair."""

# %%
words = re.findall(r"[a-z]+", TEXT.lower())
len(words), len(set(words))

# %%
counts = Counter(words)
counts.most_common(5)

# %%
by_letter = defaultdict(list)
for word in sorted(set(words)):
    by_letter[word[0]].append(word)
dict(sorted(by_letter.items())[:4])

# %%
counts.update(["times", "times"])
counts["times"], sum(counts.values())


# %%
class Mood(Enum):
    GOOD = "good"
    BAD = "bad"
    NEUTRAL = "neutral"


GOOD_WORDS = {"best", "wisdom", "belief", "light", "hope"}
BAD_WORDS = {"worst", "foolishness", "incredulity", "darkness", "despair"}


def mood(word):
    if word in GOOD_WORDS:
        return Mood.GOOD
    if word in BAD_WORDS:
        return Mood.BAD
    return Mood.NEUTRAL


# %%
Counter(mood(w) for w in words)


# %%
@dataclass(frozen=True)
class Phrase:
    text: str

    @property
    def n_words(self):
        return len(self.text.split())


phrases = [Phrase(p.strip()) for p in TEXT.replace("\n", " ").split(",") if p.strip()]
phrases[:2], max(p.n_words for p in phrases)

# %%
for phrase in sorted(phrases, key=lambda p: (p.n_words, p.text))[:3]:
    print(f"{phrase.n_words:2d}  {phrase.text}")

# %%
title = " ".join(w.capitalize() for w in words[:6])
f"{title!r:>40}", title.center(30, "*")
