"""Self-critical sequence training (SCST; Rennie et al., 2017): policy-gradient fine-tuning of a captioner on
its own sampled captions, rewarded by CIDEr-D, the metric it is judged by.

For each image ``K`` captions are sampled from the model; each gets the reward
``CIDEr-D(sample, references)``, and the loss is ``-(reward - baseline) * log p(sample)`` per token. The
baseline is either the reward of the model's own greedy caption (the paper's "self-critical" baseline) or,
for each sample, the mean reward of the image's other ``K - 1`` samples (Luo, 2020, "A better variant of
self-critical sequence training"), which needs no extra decoding pass.

The whole policy, everything between the batch and the next-word distribution (encoder, a video
captioner's temporal encoder, decoder), is in eval mode for the samples and for the greedy baseline:
dropout off and batch norm on its running statistics, the policy that ``generate`` deploys.
self-critical.pytorch samples with dropout on and decodes the baseline with it off; with dropout on,
samples score far below the (dropout-free) greedy caption, so nearly every advantage is negative and the
updates are mostly noise on small data.

As in the paper's code (ruotianluo/self-critical.pytorch, ``rewards.py`` with CIDEr-D on token ids),
rewards are computed on token ids, and ``<eos>`` is a word for the reward: it ends every reference and
every caption that the model ended, so a caption cut off at the length limit misses the n-grams that close
the references. Text enters only once: the references and the vocabulary's words are PTB-tokenized when the
reward is built, and document frequencies are counted then, over the training references.

``SelfCriticalLoss`` is the model and the loss in one ``nn.Module`` (self-critical.pytorch's
``LossWrapper``), so DistributedDataParallel wraps the whole step and averages its gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vision2seq.evaluation.cider import CiderD
from vision2seq.evaluation.ptb_tokenizer import ptb_tokenize

EOS_WORD = "<eos>"

Reward = Callable[[Sequence[Hashable], Sequence[Sequence[int]]], list[float]]
"""``reward(keys, rows)``: one reward per caption; ``rows[i]`` are token ids (no ``<bos>``) of a caption of
image ``keys[i]``, ending with ``<eos>`` when the model ended it."""


class CiderDReward:
    """CIDEr-D of token-id captions against the references of their image, with fixed document frequencies.

    The document frequency of an n-gram is the number of images of ``references`` (the training set)
    whose references contain it, so a caption's reward does not depend on the rest of its batch.

    Scores equal those of the text route (ids -> words -> detokenized text -> ``ptb_tokenize``, as the
    COCO evaluation tokenizes captions) without it: each vocabulary id stands for the PTB tokens of its word
    (none for punctuation, two for ``man's``), worked out once. They differ only where PTB glues a word to
    the punctuation after it (``etc.``).

    Args:
        references: The raw reference captions of every training image, by image key.
        words: The vocabulary's words, by token id.
        eos_id: The id of ``<eos>``.
        special_ids: Ids that stand for no word (``<bos>``, ``<pad>``).
    """

    def __init__(
        self,
        references: Mapping[Hashable, Sequence[str]],
        words: Sequence[str],
        eos_id: int,
        special_ids: Sequence[int] = (),
    ) -> None:
        if not references:
            raise ValueError("SCST needs the training references, got none")
        self.eos_id = eos_id
        index: dict[str, int] = {}  # PTB token -> the integer the scorer counts

        def ids(tokens: Sequence[str]) -> tuple[int, ...]:
            return tuple(index.setdefault(t, len(index)) for t in tokens)

        self._eos = ids([EOS_WORD])
        self._scorer = CiderD(
            {key: [ids(ptb_tokenize(r)) + self._eos for r in refs] for key, refs in references.items()}
        )
        skip = set(special_ids)
        self._table = [() if i in skip else ids(ptb_tokenize(w)) for i, w in enumerate(words)]

    def tokens(self, row: Sequence[int]) -> list[int]:
        """The scorer's tokens of one caption of token ids: its words' PTB tokens, and ``<eos>`` if ended."""
        out: list[int] = []
        for i in row:
            if i == self.eos_id:
                return [*out, *self._eos]
            out.extend(self._table[i])
        return out

    def __call__(self, keys: Sequence[Hashable], rows: Sequence[Sequence[int]]) -> list[float]:
        """The reward of each caption (see ``Reward``)."""
        return [self._scorer(key, self.tokens(row)) for key, row in zip(keys, rows, strict=True)]


@dataclass
class Rollout:
    """Captions decoded for a batch: ``tokens`` ``(R, T)``, their log-probabilities ``(R, T)`` and a mask
    ``(R, T)`` that is True up to and including each row's ``<eos>``."""

    tokens: Tensor
    log_probs: Tensor
    mask: Tensor

    def rows(self) -> list[list[int]]:
        """Each caption's token ids up to and including its ``<eos>`` (none when cut at the length limit)."""
        lengths = self.mask.sum(dim=1).tolist()
        return [row[:n] for row, n in zip(self.tokens.tolist(), lengths, strict=True)]


def sample(probs: Tensor) -> Tensor:
    """One token per row, drawn from ``probs`` ``(R, V)``."""
    return torch.multinomial(probs, 1).squeeze(1)


def argmax(probs: Tensor) -> Tensor:
    """The most likely token of each row of ``probs`` ``(R, V)`` (greedy decoding)."""
    return probs.argmax(dim=1)


def rollout(
    decoder: Any,
    memory: Tensor,
    bos_id: int,
    eos_id: int,
    k: int,
    max_len: int,
    choose: Callable[[Tensor], Tensor] = sample,
) -> Rollout:
    """``k`` captions per image, each token picked by ``choose(probabilities (R, V)) -> (R,)`` from the
    decoder in its current mode, keeping the graph of the chosen tokens' log-probabilities when gradients
    are on. Rows ``b * k .. b * k + k - 1`` belong to image ``b``."""
    state = decoder.init_state(memory)
    if k > 1:
        state = decoder.expand_state(state, k)
    rows = memory.size(0) * k
    tokens = torch.full((rows,), bos_id, dtype=torch.long, device=memory.device)
    finished = torch.zeros(rows, dtype=torch.bool, device=memory.device)
    chosen, log_probs, masks = [], [], []
    for _ in range(max_len):
        step_log_probs, state, _ = decoder.step(tokens, state)  # (R, V)
        tokens = choose(step_log_probs.detach().float().exp())  # (R,)
        chosen.append(tokens)
        log_probs.append(step_log_probs.gather(1, tokens.unsqueeze(1)).squeeze(1))
        masks.append(~finished)  # the <eos> step itself counts; steps after it do not
        finished = finished | (tokens == eos_id)
        if bool(finished.all()):
            break
    return Rollout(torch.stack(chosen, 1), torch.stack(log_probs, 1), torch.stack(masks, 1))


@dataclass
class SelfCritical:
    """The SCST loss of a batch of images, from the decoder and the memory it reads (in the mode the
    caller chose; ``SelfCriticalLoss`` puts the whole policy in eval mode).

    Attributes:
        reward: Scores token-id captions of images (``CiderDReward``, or any ``Reward``).
        samples: Captions sampled per image (``K``).
        baseline: ``greedy`` or ``mean`` (of the image's other samples; needs ``samples >= 2``).
        max_len: Longest sampled caption, in tokens.
    """

    reward: Reward
    samples: int = 5
    baseline: str = "greedy"
    max_len: int = 20

    def __post_init__(self) -> None:
        if self.baseline not in ("greedy", "mean"):
            raise ValueError(f"baseline must be 'greedy' or 'mean', got {self.baseline!r}")
        if self.samples < (2 if self.baseline == "mean" else 1):
            raise ValueError(f"the {self.baseline} baseline needs more samples per image, got {self.samples}")

    def __call__(
        self, decoder: Any, memory: Tensor, keys: Sequence[Hashable], bos_id: int, eos_id: int
    ) -> dict[str, Tensor]:
        """``loss`` (to minimise) plus the mean ``reward`` of the samples and the mean ``baseline``."""
        k = self.samples
        drawn = rollout(decoder, memory, bos_id, eos_id, k, self.max_len, sample)
        sample_keys = [key for key in keys for _ in range(k)]  # row b * k + j is image b's
        rewards = torch.tensor(self.reward(sample_keys, drawn.rows()), dtype=torch.float32).view(-1, k)
        if self.baseline == "greedy":
            with torch.no_grad():
                best = rollout(decoder, memory.detach(), bos_id, eos_id, 1, self.max_len, argmax)
            base = torch.tensor(self.reward(keys, best.rows()), dtype=torch.float32)
            baseline = base.view(-1, 1).expand(-1, k)  # (B, K)
        else:
            baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (k - 1)  # (B, K) mean of the others
        advantage = (rewards - baseline).reshape(-1, 1).to(drawn.log_probs)  # (B*K, 1)
        mask = drawn.mask.to(drawn.log_probs.dtype)
        loss = -(advantage * drawn.log_probs * mask).sum() / mask.sum().clamp_min(1.0)
        return {"loss": loss, "reward": rewards.mean(), "baseline": baseline.mean()}


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Every submodule of ``module`` in eval mode for the call, each one's flag put back afterwards."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training


class SelfCriticalLoss(nn.Module):
    """A captioning model and its SCST loss as one module: ``forward(batch)`` runs the whole step (features,
    memory, samples, baseline, loss) with the whole model in eval mode, so that DistributedDataParallel,
    wrapping this module, sees every trained parameter in its forward and averages their gradients.

    Args:
        model: A ``CaptionModel`` or ``VideoCaptionModel`` (``features``, ``memory``, ``decoder``,
            ``bos_id``, ``eos_id``).
        loss: The SCST loss.
    """

    def __init__(self, model: nn.Module, loss: SelfCritical) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """The loss dict of a batch of images (one item per image, with its ``keys``)."""
        model: Any = self.model
        with eval_mode(model):
            memory = model.memory(model.features(batch))
            return self.loss(model.decoder, memory, batch["keys"], model.bos_id, model.eos_id)
