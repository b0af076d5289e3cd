"""The caption vocabulary: words of the training split above a minimum frequency, plus special tokens."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from vision2seq.errors import UserError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)  # ids 0..3 in this order; padding is id 0


class VocabularyError(UserError, ValueError):
    """A word list that is not a vocabulary (as stored in a damaged or hand-edited checkpoint)."""


class Vocabulary:
    """A word <-> id mapping. Stored in checkpoints as its plain list of words (``to_list``)."""

    def __init__(self, words: Sequence[str]) -> None:
        """Raises:
        VocabularyError: ``words`` is not a list of strings starting with ``SPECIALS``, each once.
        """
        if not isinstance(words, list | tuple):
            raise VocabularyError(f"a vocabulary must be a list of words, got {type(words).__name__}")
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise VocabularyError(f"a vocabulary must start with {' '.join(SPECIALS)}")
        odd = next((w for w in words if not isinstance(w, str) or not w), None)
        if odd is not None:
            raise VocabularyError(f"a vocabulary holds non-empty words, not {_short(odd)}")
        self.words: list[str] = list(words)
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            twice = next(w for i, w in enumerate(self.words) if self.index[w] != i)
            raise VocabularyError(f"a vocabulary cannot list a word twice ({_short(twice)})")
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(len(SPECIALS))

    @classmethod
    def build(cls, tokenized: Iterable[Sequence[str]], min_freq: int = 5) -> Vocabulary:
        """Words occurring at least ``min_freq`` times, most frequent first (ties alphabetical)."""
        counts = Counter(token for tokens in tokenized for token in tokens)
        kept = sorted(
            (w for w, c in counts.items() if c >= min_freq and w not in SPECIALS),
            key=lambda w: (-counts[w], w),
        )
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Sequence[str], max_len: int | None = None) -> list[int]:
        """``<bos>`` + word ids (unknown words -> ``<unk>``, truncated to ``max_len``) + ``<eos>``."""
        tokens = tokens[:max_len] if max_len is not None else tokens
        return [self.bos_id, *(self.index.get(t, self.unk_id) for t in tokens), self.eos_id]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of ``ids``, stopping at ``<eos>`` and dropping ``<bos>``/``<pad>``."""
        words = []
        for i in ids:
            if i == self.eos_id:
                break
            if i not in (self.bos_id, self.pad_id):
                words.append(self.words[i])
        return words

    def to_list(self) -> list[str]:
        return list(self.words)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
