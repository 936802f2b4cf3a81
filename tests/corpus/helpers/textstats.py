"""A small helper module the sys_path_import notebook imports after adding `helpers/` to
`sys.path` (as notebooks do with a project's `src/` folder)."""

import re
from collections import Counter

WORD = re.compile(r"[a-z']+")


def words(text):
    return WORD.findall(text.lower())


def word_count(text):
    return len(words(text))


def top_words(text, n=3):
    return Counter(words(text)).most_common(n)
