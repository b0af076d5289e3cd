"""Caption tokenization that needs no downloaded data (unlike ``nltk.word_tokenize``)."""

from __future__ import annotations

import re

# A word (letters/digits/underscore, with inner apostrophes such as "man's") or one punctuation mark.
_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-case ``text`` and split it into words, with each punctuation mark as its own token.

    >>> tokenize("A dog, running on the Beach.")
    ['a', 'dog', ',', 'running', 'on', 'the', 'beach', '.']
    """
    return _TOKEN.findall(text.lower())


_SPACE_BEFORE_PUNCT = re.compile(r" ([.,!?;:%)\]}])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[{]) ")


def detokenize(tokens: list[str]) -> str:
    """Join tokens into text, attaching punctuation to the word before it (``dog .`` -> ``dog.``)."""
    text = " ".join(tokens)
    return _SPACE_AFTER_OPEN.sub(r"\1", _SPACE_BEFORE_PUNCT.sub(r"\1", text))
