"""Caption generation with any ``CaptionDecoder``: greedy, beam search and sampling.

Every function decodes all images of a batch at once (beam search: all images and all beams at once,
as ``B * K`` rows), runs under ``torch.no_grad`` and in eval mode (dropout off): the decoder's train/eval
flags are set for the call and restored afterwards.

Returned token lists exclude ``<bos>`` and ``<eos>``. ``max_len`` is the number of decoding steps, so a
caption has at most ``max_len`` tokens (``max_len - 1`` when it ends with ``<eos>``). Scores are sums of
the model's log-probabilities over the decoded tokens, the final ``<eos>`` included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from vision2seq.config import GenerationConfig
    from vision2seq.models.caption_model import CaptionDecoder


@dataclass
class Generation:
    """Generated captions for a batch of images.

    Attributes:
        tokens: Per image, the token ids without ``<bos>`` and ``<eos>``.
        scores: Per image, the sum of log-probabilities (beam search: the length-penalised score).
        attention: Per image, the attention weights ``(len(tokens), N)`` used to predict each token, for
            drawing over the image; None unless requested from a decoder with attention.
        hypotheses: Beam search only: per image, every finished ``(tokens, score)`` hypothesis (at most
            ``beam_size``), best first; ``hypotheses[i][0]`` is ``(tokens[i], scores[i])``.
    """

    tokens: list[list[int]]
    scores: list[float]
    attention: list[Tensor] | None = None
    hypotheses: list[list[tuple[list[int], float]]] | None = None


@contextmanager
def _eval_mode(decoder: CaptionDecoder) -> Iterator[None]:
    """Switch dropout off for the call and put every submodule's flag back afterwards."""
    flags = [(module, module.training) for module in decoder.modules()]
    decoder.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


def _check_max_len(max_len: int) -> None:
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")


def _caption_lengths(sequences: Tensor, eos_id: int) -> Tensor:
    """Number of tokens before the first ``<eos>`` of each row of ``sequences`` ``(B, T)`` (T if none)."""
    is_eos = sequences == eos_id
    # argmax returns the first maximum, i.e. the first <eos>.
    first_eos = is_eos.int().argmax(dim=1)
    return torch.where(is_eos.any(dim=1), first_eos, sequences.size(1))  # (B,)


def _decode_one_path(
    decoder: CaptionDecoder,
    features: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int,
    return_attention: bool,
    choose: Callable[[Tensor], Tensor],
) -> Generation:
    """Decode one hypothesis per image, picking each token with ``choose(log_probs (B, V)) -> (B,)``."""
    _check_max_len(max_len)
    batch = features.size(0)
    state = decoder.init_state(features)
    tokens = torch.full((batch,), bos_id, dtype=torch.long, device=features.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=features.device)
    scores = torch.zeros(batch, device=features.device)
    steps: list[Tensor] = []
    alphas: list[Tensor | None] = []
    for _ in range(max_len):
        log_probs, state, alpha = decoder.step(tokens, state)  # (B, V), ..., (B, N) | None
        tokens = choose(log_probs)  # (B,)
        chosen = log_probs.gather(1, tokens.unsqueeze(1)).squeeze(1)  # (B,)
        # Finished captions keep decoding with the batch, but their later tokens are cut off below.
        scores = scores + chosen.masked_fill(finished, 0.0)
        steps.append(tokens)
        alphas.append(alpha)
        finished = finished | (tokens == eos_id)
        if bool(finished.all()):
            break

    sequences = torch.stack(steps, dim=1)  # (B, T)
    lengths = _caption_lengths(sequences, eos_id).tolist()
    rows = sequences.tolist()
    attention = None
    if return_attention and alphas[0] is not None:
        weights = torch.stack(alphas, dim=1)  # (B, T, N)
        attention = [weights[i, :n] for i, n in enumerate(lengths)]
    return Generation(
        tokens=[row[:n] for row, n in zip(rows, lengths, strict=True)],
        scores=scores.tolist(),
        attention=attention,
    )


@torch.no_grad()
def greedy(
    decoder: CaptionDecoder,
    features: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int = 20,
    return_attention: bool = False,
) -> Generation:
    """Caption every image with its most likely next token at each step.

    Args:
        decoder: Any decoder with the ``CaptionDecoder`` interface.
        features: Image features, pooled ``(B, D)`` or a grid ``(B, N, D)``.
        bos_id: Token fed first.
        eos_id: Token that ends a caption.
        max_len: Maximum number of decoding steps.
        return_attention: Also return the attention weights of every produced token.
    """
    with _eval_mode(decoder):
        return _decode_one_path(
            decoder, features, bos_id, eos_id, max_len, return_attention, lambda lp: lp.argmax(dim=-1)
        )


@torch.no_grad()
def sample(
    decoder: CaptionDecoder,
    features: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int = 20,
    temperature: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
    return_attention: bool = False,
) -> Generation:
    """Caption every image by sampling each token from the (tempered, top-k) next-token distribution.

    Scores are the model's own log-probabilities of the sampled tokens, before temperature and top-k.

    Args:
        decoder: Any decoder with the ``CaptionDecoder`` interface.
        features: Image features, pooled ``(B, D)`` or a grid ``(B, N, D)``.
        bos_id: Token fed first.
        eos_id: Token that ends a caption.
        max_len: Maximum number of decoding steps.
        temperature: Divides the log-probabilities; below 1 sharpens, above 1 flattens. Must be > 0.
        top_k: Sample among the ``top_k`` most likely tokens only; 0 means all tokens.
        generator: Random generator (on the features' device) for reproducible samples.
        return_attention: Also return the attention weights of every produced token.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use greedy() for argmax decoding), got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")

    def choose(log_probs: Tensor) -> Tensor:
        logits = log_probs / temperature  # (B, V)
        if 0 < top_k < logits.size(-1):
            kth_best = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
            logits = logits.masked_fill(logits < kth_best, float("-inf"))
        probs = F.softmax(logits, dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)

    with _eval_mode(decoder):
        return _decode_one_path(decoder, features, bos_id, eos_id, max_len, return_attention, choose)


def _length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ``((5 + length) / 6) ** alpha`` (Wu et al., 2016); 1 when ``alpha`` is 0."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    decoder: CaptionDecoder,
    features: Tensor,
    bos_id: int,
    eos_id: int,
    beam_size: int = 3,
    max_len: int = 20,
    length_penalty: float = 0.0,
    return_attention: bool = False,
) -> Generation:
    """Caption every image with the best of ``beam_size`` hypotheses, all images and beams decoded at once.

    Hypotheses are ranked by ``sum log p / ((5 + length) / 6) ** length_penalty`` (the GNMT length
    penalty), where ``length`` counts the scored tokens, ``<eos>`` included; ``length_penalty > 0``
    favours longer captions and 0 ranks by the plain sum of log-probabilities.

    At each step the ``2 * beam_size`` best extensions of an image's live hypotheses are ranked: those
    ending with ``<eos>`` among the first ``beam_size`` join the image's finished pool (its best
    ``beam_size``), and the best ``beam_size`` that do not end stay live. An image is done once its
    pool is full and no live hypothesis can beat the worst pooled one (exact, not a heuristic); at
    ``max_len`` the live hypotheses of unfinished images join the pool unended. With ``beam_size=1``
    this is exactly greedy decoding.

    Args:
        decoder: Any decoder with the ``CaptionDecoder`` interface.
        features: Image features, pooled ``(B, D)`` or a grid ``(B, N, D)``.
        bos_id: Token fed first.
        eos_id: Token that ends a caption.
        beam_size: Live hypotheses per image, ``K``.
        max_len: Maximum number of decoding steps.
        length_penalty: GNMT exponent ``alpha``.
        return_attention: Also return the attention weights of every token of the best hypothesis.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    _check_max_len(max_len)
    with _eval_mode(decoder):
        return _beam_search(
            decoder, features, bos_id, eos_id, beam_size, max_len, length_penalty, return_attention
        )


def _beam_search(
    decoder: CaptionDecoder,
    features: Tensor,
    bos_id: int,
    eos_id: int,
    beam_size: int,
    max_len: int,
    length_penalty: float,
    return_attention: bool,
) -> Generation:
    batch, k, device = features.size(0), beam_size, features.device
    neg_inf = float("-inf")
    state = decoder.init_state(features)
    tokens = torch.full((batch,), bos_id, dtype=torch.long, device=device)
    row_offset = torch.arange(batch, device=device).unsqueeze(1) * k  # (B, 1)

    # Live hypotheses. The K beams start identical, so only the first is extended at the first step.
    live_scores = torch.full((batch, k), neg_inf, device=device)  # (B, K) sum of log-probs
    live_scores[:, 0] = 0.0
    live_tokens = torch.zeros(batch, k, 0, dtype=torch.long, device=device)  # (B, K, t)
    live_alpha: Tensor | None = None  # (B, K, t, N)

    # Finished pool, best first; -inf scores are empty slots. Token rows are padded with <eos>.
    pool_scores = torch.full((batch, k), neg_inf, device=device)  # (B, K) penalised
    pool_tokens = torch.full((batch, k, max_len), eos_id, dtype=torch.long, device=device)
    pool_lengths = torch.zeros(batch, k, dtype=torch.long, device=device)
    pool_alpha: Tensor | None = None  # (B, K, max_len, N)
    done = torch.zeros(batch, dtype=torch.bool, device=device)

    def add_to_pool(scores: Tensor, parents: Tensor, length: int, with_alpha: Tensor | None) -> None:
        """Merge candidates ``scores`` ``(B, C)`` (penalised; -inf to skip) into the pool.

        Candidate ``c`` of image ``b`` has the tokens (and attention) of live beam ``parents[b, c]``.
        """
        nonlocal pool_scores, pool_tokens, pool_lengths, pool_alpha
        cand = parents.size(1)
        cand_tokens = live_tokens.gather(1, parents.unsqueeze(-1).expand(-1, -1, live_tokens.size(2)))
        cand_tokens = F.pad(cand_tokens, (0, max_len - cand_tokens.size(2)), value=eos_id)  # (B, C, max_len)
        merged_scores, order = torch.cat([pool_scores, scores], dim=1).topk(k, dim=1)  # (B, K)
        pool_scores = merged_scores
        pool_tokens = torch.cat([pool_tokens, cand_tokens], dim=1).gather(
            1, order.unsqueeze(-1).expand(-1, -1, max_len)
        )
        cand_lengths = torch.full((batch, cand), length, dtype=torch.long, device=device)
        pool_lengths = torch.cat([pool_lengths, cand_lengths], dim=1).gather(1, order)
        if with_alpha is not None and pool_alpha is not None:
            n = with_alpha.size(-1)
            cand_alpha = with_alpha.gather(1, parents[..., None, None].expand(-1, -1, *with_alpha.shape[2:]))
            cand_alpha = F.pad(cand_alpha, (0, 0, 0, max_len - cand_alpha.size(2)))  # (B, C, max_len, N)
            pool_alpha = torch.cat([pool_alpha, cand_alpha], dim=1).gather(
                1, order[..., None, None].expand(-1, -1, max_len, n)
            )

    for t in range(max_len):
        log_probs, state, alpha = decoder.step(tokens, state)  # (B*K, V), ..., (B*K, N) | None
        if t == 0:
            # The K beams start identical, so the first step runs once per image and is then copied:
            # from here on row b * K + j of the decoder state is beam j of image b.
            state = decoder.expand_state(state, k)
            log_probs = log_probs.repeat_interleave(k, dim=0)
            alpha = None if alpha is None else alpha.repeat_interleave(k, dim=0)
        vocab = log_probs.size(-1)
        track_alpha = return_attention and alpha is not None
        if track_alpha and live_alpha is None:
            live_alpha = alpha.new_zeros(batch, k, 0, alpha.size(-1))
            pool_alpha = alpha.new_zeros(batch, k, max_len, alpha.size(-1))

        # Rank the one-token extensions of the live beams, per image. An image's best 2K extensions are
        # among its beams' own best 2K tokens (a beam's score adds the same amount to all of its tokens),
        # so each row is cut to its top 2K first: K * 2K candidates per image instead of K * V.
        width = min(2 * k, vocab)
        row_scores, row_tokens = log_probs.topk(width, dim=1)  # (B*K, W)
        cand_scores = (live_scores.unsqueeze(-1) + row_scores.view(batch, k, width)).view(batch, k * width)
        cand_scores, cand_index = cand_scores.topk(min(2 * k, k * width), dim=1)  # (B, 2K), best first
        cand_parent = cand_index // width  # (B, 2K) beam extended
        cand_token = row_tokens.view(batch, k * width).gather(1, cand_index)  # (B, 2K)
        ends = cand_token == eos_id

        # Extensions ending with <eos> among the first K join the pool (the tokens exclude <eos>).
        joins = ends & (torch.arange(ends.size(1), device=device) < k) & ~done.unsqueeze(1)
        if bool(joins.any()):
            penalised = cand_scores / _length_penalty(t + 1, length_penalty)
            add_to_pool(penalised.masked_fill(~joins, neg_inf), cand_parent, t, live_alpha)

        # The K best extensions that do not end stay live. Each beam has one <eos> extension, so at least
        # K of the 2K do not end; a stable sort moves them first and keeps them in score order.
        live = torch.sort(ends.to(torch.uint8), dim=1, stable=True).indices[:, :k]  # (B, K)
        parent = cand_parent.gather(1, live)  # (B, K)
        tokens_now = cand_token.gather(1, live)  # (B, K)
        live_scores = cand_scores.gather(1, live)  # (B, K), best first
        live_tokens = torch.cat(
            [live_tokens.gather(1, parent.unsqueeze(-1).expand(-1, -1, t)), tokens_now.unsqueeze(-1)], dim=2
        )  # (B, K, t+1)
        if track_alpha:
            assert live_alpha is not None
            step_alpha = alpha.view(batch, k, 1, -1)  # (B, K, 1, N)
            history = torch.cat([live_alpha, step_alpha], dim=2)  # (B, K, t+1, N)
            live_alpha = history.gather(1, parent[..., None, None].expand(-1, -1, *history.shape[2:]))
        state = decoder.reorder_state(state, (row_offset + parent).view(-1))
        tokens = tokens_now.view(-1)

        # Done when no live beam can beat the worst pooled hypothesis: log-probs only lower the raw score
        # (<= 0), so its best penalised value is the current score over the largest penalty still possible.
        if t + 1 < max_len:
            best_penalty = max(
                _length_penalty(t + 2, length_penalty), _length_penalty(max_len, length_penalty)
            )
            worst_pooled = pool_scores[:, -1]
            done = done | ((worst_pooled > neg_inf) & (worst_pooled >= live_scores[:, 0] / best_penalty))
            if bool(done.all()):
                break
    else:
        # Out of steps: live hypotheses of unfinished images compete unended, with length max_len.
        penalised = live_scores / _length_penalty(max_len, length_penalty)
        parents = torch.arange(k, device=device).expand(batch, k)
        # add_to_pool gathers from live_tokens, which now hold max_len tokens.
        add_to_pool(penalised.masked_fill(done.unsqueeze(1), neg_inf), parents, max_len, live_alpha)

    scores = pool_scores.tolist()
    lengths = pool_lengths.tolist()
    rows = pool_tokens.tolist()
    hypotheses = [
        [(row[:n], s) for row, n, s in zip(rows[i], lengths[i], scores[i], strict=True) if s != neg_inf]
        for i in range(batch)
    ]
    attention = None
    if pool_alpha is not None:
        attention = [pool_alpha[i, 0, : lengths[i][0]] for i in range(batch)]
    return Generation(
        tokens=[h[0][0] for h in hypotheses],
        scores=[h[0][1] for h in hypotheses],
        attention=attention,
        hypotheses=hypotheses,
    )


def generate(
    decoder: CaptionDecoder,
    features: Tensor,
    bos_id: int,
    eos_id: int,
    settings: GenerationConfig,
    return_attention: bool = False,
) -> Generation:
    """Decode with ``settings``: ``greedy``, ``beam`` (batched beam search; a beam of 1 is greedy
    decoding, so it runs as such) or ``sample`` (temperature, top-k)."""
    common = dict(max_len=settings.max_len, return_attention=return_attention)
    if settings.strategy == "sample":
        return sample(
            decoder,
            features,
            bos_id,
            eos_id,
            temperature=settings.temperature,
            top_k=settings.top_k,
            **common,
        )
    if settings.strategy == "beam" and settings.beam_size > 1:
        return beam_search(
            decoder,
            features,
            bos_id,
            eos_id,
            beam_size=settings.beam_size,
            length_penalty=settings.length_penalty,
            **common,
        )
    if settings.strategy not in ("greedy", "beam"):
        raise ValueError(
            f"unknown strategy {settings.strategy!r}; expected one of ['beam', 'greedy', 'sample']"
        )
    return greedy(decoder, features, bos_id, eos_id, **common)


def with_settings(
    base: GenerationConfig,
    beam_size: int | None = None,
    max_len: int | None = None,
    length_penalty: float | None = None,
) -> GenerationConfig:
    """``base`` with the given values replaced; a beam size picks beam search (1: greedy).

    Raises:
        ConfigError: a value out of its range (``config.check_generation``).
    """
    from vision2seq.config import check_generation

    settings = base
    if beam_size is not None:
        settings = replace(settings, strategy="beam" if beam_size > 1 else "greedy", beam_size=beam_size)
    if max_len is not None:
        settings = replace(settings, max_len=max_len)
    if length_penalty is not None:
        settings = replace(settings, length_penalty=length_penalty)
    return check_generation(settings, "generation settings")  # bounded before any buffer is allocated
