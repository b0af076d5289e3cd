"""Self-critical sequence training (SCST; Rennie et al., 2017): policy-gradient fine-tuning of a captioner on
its own sampled captions, rewarded by CIDEr-D, the metric it is judged by.

For each image ``K`` captions are sampled from the model (dropout off); each gets the reward
``CIDEr-D(sample, references)``, and the loss is ``-(reward - baseline) * log p(sample)`` per token. The
baseline is either the reward of the model's own greedy caption (the paper's "self-critical" baseline) or,
for each sample, the mean reward of the image's other ``K - 1`` samples (Luo, 2020, "A better variant of
self-critical sequence training"), which needs no extra decoding pass.

As in the paper's code (ruotianluo/self-critical.pytorch), ``<eos>`` is a word for the reward: it ends every
reference and every caption that the model ended, so a caption cut off at the length limit misses the
n-grams that close the references. Document frequencies are counted once over the training references.

Task-agnostic: ``SelfCritical`` needs a decoder with the ``CaptionDecoder`` interface (``init_state``,
``expand_state``, ``step``), features, the batch's image keys and a function turning token ids into text.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from vision2seq.evaluation.bleu import ngram_counts
from vision2seq.evaluation.cider import _MAX_N, _similarity, _to_vector
from vision2seq.evaluation.tokenizer import ptb_tokenize
from vision2seq.models.generation import _eval_mode, greedy

EOS_WORD = "<eos>"


class CiderDReward:
    """CIDEr-D of captions against the references of their image, with fixed document frequencies.

    The document frequency of an n-gram is the number of images of ``references`` (the training set)
    whose references contain it, so a caption's reward does not depend on the rest of its batch.
    Captions and references are tokenized as the COCO evaluation does (``ptb_tokenize``).

    Args:
        references: The raw reference captions of every training image, by image key.
    """

    def __init__(self, references: Mapping[Hashable, Sequence[str]]) -> None:
        if not references:
            raise ValueError("SCST needs the training references, got none")
        self._counts = {
            key: [ngram_counts([*ptb_tokenize(r), EOS_WORD], _MAX_N) for r in refs]
            for key, refs in references.items()
        }
        doc_freq: dict[tuple[str, ...], float] = defaultdict(float)
        for counts_of_image in self._counts.values():
            for ngram in set().union(*counts_of_image):
                doc_freq[ngram] += 1
        self._doc_freq = dict(doc_freq)
        self._log_images = math.log(float(len(self._counts)))
        self._vectors: dict[Hashable, list] = {}  # reference tf-idf vectors, computed on first use

    def _reference_vectors(self, key: Hashable) -> list:
        if key not in self._vectors:
            if key not in self._counts:
                raise KeyError(f"image {key!r} is not among the references the reward was built from")
            self._vectors[key] = [_to_vector(c, self._doc_freq, self._log_images) for c in self._counts[key]]
        return self._vectors[key]

    def __call__(
        self, keys: Sequence[Hashable], captions: Sequence[str], ended: Sequence[bool]
    ) -> list[float]:
        """The reward of each caption.

        Args:
            keys: The image of each caption.
            captions: Caption texts.
            ended: Whether the model ended each caption with ``<eos>`` (rather than the length limit).
        """
        rewards = []
        for key, caption, done in zip(keys, captions, ended, strict=True):
            words = [*ptb_tokenize(caption), EOS_WORD] if done else ptb_tokenize(caption)
            vector = _to_vector(ngram_counts(words, _MAX_N), self._doc_freq, self._log_images)
            refs = self._reference_vectors(key)
            total = sum(sum(_similarity(vector, ref)) for ref in refs)
            rewards.append(total / _MAX_N / len(refs) * 10.0)  # as corpus_cider: orders, references, x10
        return rewards


@dataclass
class Samples:
    """Captions sampled with gradients: ``tokens`` ``(R, T)``, their log-probabilities ``(R, T)`` and a mask
    ``(R, T)`` that is True up to and including each row's ``<eos>``."""

    tokens: Tensor
    log_probs: Tensor
    mask: Tensor

    def ended(self, eos_id: int) -> list[bool]:
        return (self.tokens == eos_id).any(dim=1).tolist()


def sample_captions(decoder, features: Tensor, bos_id: int, eos_id: int, k: int, max_len: int) -> Samples:
    """``k`` captions per image, sampled from the decoder's distribution (in its current mode), keeping the
    graph of the chosen tokens' log-probabilities. Rows ``b * k .. b * k + k - 1`` belong to image ``b``."""
    state = decoder.expand_state(decoder.init_state(features), k)
    rows = features.size(0) * k
    tokens = torch.full((rows,), bos_id, dtype=torch.long, device=features.device)
    finished = torch.zeros(rows, dtype=torch.bool, device=features.device)
    chosen, log_probs, masks = [], [], []
    for _ in range(max_len):
        step_log_probs, state, _ = decoder.step(tokens, state)  # (R, V)
        tokens = torch.multinomial(step_log_probs.detach().float().exp(), 1).squeeze(1)  # (R,)
        chosen.append(tokens)
        log_probs.append(step_log_probs.gather(1, tokens.unsqueeze(1)).squeeze(1))
        masks.append(~finished)  # the <eos> step itself counts; steps after it do not
        finished = finished | (tokens == eos_id)
        if bool(finished.all()):
            break
    return Samples(torch.stack(chosen, 1), torch.stack(log_probs, 1), torch.stack(masks, 1))


@dataclass
class SelfCritical:
    """The SCST loss of a batch of images.

    Attributes:
        reward: Scores captions of images (``CiderDReward``).
        to_text: Token ids (without ``<bos>``) -> caption text; stops at ``<eos>``.
        samples: Captions sampled per image (``K``).
        baseline: ``greedy`` or ``mean`` (of the image's other samples; needs ``samples >= 2``).
        max_len: Longest sampled caption, in tokens.
    """

    reward: Callable[[Sequence[Hashable], Sequence[str], Sequence[bool]], list[float]]
    to_text: Callable[[list[int]], str]
    samples: int = 5
    baseline: str = "greedy"
    max_len: int = 20

    def __post_init__(self) -> None:
        if self.baseline not in ("greedy", "mean"):
            raise ValueError(f"baseline must be 'greedy' or 'mean', got {self.baseline!r}")
        if self.samples < (2 if self.baseline == "mean" else 1):
            raise ValueError(f"the {self.baseline} baseline needs more samples per image, got {self.samples}")

    def __call__(
        self, decoder, features: Tensor, keys: Sequence[Hashable], bos_id: int, eos_id: int
    ) -> dict[str, Tensor]:
        """``loss`` (to minimise) plus the mean ``reward`` of the samples and the mean ``baseline``."""
        k = self.samples
        # Samples come from the policy that is deployed and that the greedy baseline decodes: dropout
        # off. With dropout on, samples score far below the (dropout-free) greedy caption, so nearly
        # every advantage is negative and the updates are mostly noise on small data.
        with _eval_mode(decoder):
            drawn = sample_captions(decoder, features, bos_id, eos_id, k, self.max_len)
        sample_keys = [key for key in keys for _ in range(k)]
        texts = [self.to_text(row) for row in drawn.tokens.tolist()]
        rewards = torch.tensor(self.reward(sample_keys, texts, drawn.ended(eos_id))).view(-1, k)  # (B, K)
        if self.baseline == "greedy":
            best = greedy(decoder, features.detach(), bos_id, eos_id, self.max_len)
            # greedy() cuts captions before their <eos>: one shorter than max_len is one the model ended.
            ended = [len(t) < self.max_len for t in best.tokens]
            base = torch.tensor(self.reward(keys, [self.to_text(t) for t in best.tokens], ended))
            baseline = base.view(-1, 1).expand(-1, k)  # (B, K)
        else:
            baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (k - 1)  # (B, K) mean of the others
        advantage = (rewards - baseline).reshape(-1, 1).to(drawn.log_probs)  # (B*K, 1)
        mask = drawn.mask.to(drawn.log_probs.dtype)
        loss = -(advantage * drawn.log_probs * mask).sum() / mask.sum().clamp_min(1.0)
        return {"loss": loss, "reward": rewards.mean(), "baseline": baseline.mean()}
