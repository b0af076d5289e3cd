"""Java's ``String.toLowerCase()``, which the reference tokenizer applies to every token.

It equals Python's :meth:`str.lower` except for the capital sigma, which becomes the final form ``ς`` when
a cased letter precedes it and none follows *within the same word*, where Java's (legacy) word iterator
decides what a word is: runs of letters and numbers, with dashes, ``_``, quotes and periods between
letters and quotes, periods and commas between digits (``ΣΑΣ-rrb`` is one word, ``οδΣ1-800`` ends after
``1``). Python instead skips only case-ignorable characters around the sigma.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["java_lower"]

_SIGMA = "\u03a3"
# Ideographs and kana form words of their own in Java's rules, never with letters.
_KANA_KANJI = re.compile("[\u3005\u4e00-\u9fa5\uf900-\ufa2d\u3099-\u309c\u30a1-\u30fe\u3041-\u309e\u30fc]")
# Over one class letter per character: L letter, D digit, Q quote or period (between letters or digits),
# M dash (between letters), C comma (between digits), P a sign after a number, x anything else.
_WORD_SEGMENT = re.compile(r"(?:L+(?:[MQ]L+)*|D+(?:[QC]D+)*)+P?")


def _break_class(char: str) -> str:
    category = unicodedata.category(char)
    if _KANA_KANJI.match(char):
        return "x"
    if char in "\u00ad_":
        return "M"  # soft hyphens and underscores join letters like a dash
    if category in ("Mn", "Me", "Cf"):
        return "i"  # ignored after a letter or digit (it belongs to it), a break after anything else
    if category[0] == "L" or category == "Mc":
        return "L"
    if category[0] == "N":
        return "D"
    if char in "\"'.":
        return "Q"
    if category == "Pd" or char == "\u2027":
        return "M"
    if char in ",\u066b":
        return "C"
    return "P" if char in "%&\u00a2\u066a\u2030\u2031" else "x"


def _segment_of(text: str, index: int) -> tuple[int, int]:
    """The (start, end) of the word segment of ``text`` that holds position ``index``."""
    kept: list[int] = []
    classes = ""
    for i, char in enumerate(text):
        kind = _break_class(char)
        if kind == "i" and classes[-1:] in ("L", "D"):
            continue
        kept.append(i)
        classes += "x" if kind == "i" else kind
    pos = 0
    while pos < len(kept):
        match = _WORD_SEGMENT.match(classes, pos)
        end = match.end() if match else pos + 1
        start_index = kept[pos]
        end_index = kept[end] if end < len(kept) else len(text)
        if start_index <= index < end_index:
            return start_index, end_index
        pos = end
    return index, index + 1


def _cased(char: str) -> bool:
    return unicodedata.category(char) in ("Lu", "Ll", "Lt") or char.islower() or char.isupper()


def java_lower(token: str) -> str:
    """Lower-case ``token`` as Java's ``String.toLowerCase(Locale.ENGLISH)`` does.

    >>> java_lower("ΟΔΟΣ"), java_lower("B7Σ"), java_lower("ΣΑΣ-RRB")
    ('οδος', 'b7ς', 'σασ-rrb')
    """
    if _SIGMA not in token:
        return token.lower()
    out = []
    for i, char in enumerate(token):
        if char != _SIGMA:
            out.append(char.lower())
            continue
        start, end = _segment_of(token, i)
        final = any(_cased(c) for c in token[start:i]) and not any(_cased(c) for c in token[i + 1 : end])
        out.append("\u03c2" if final else "\u03c3")
    return "".join(out)
