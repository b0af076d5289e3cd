"""Tests of greedy decoding, beam search and sampling over both caption decoders."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from vision2seq.config import GenerationConfig
from vision2seq.models.caption_model import (
    AttentionDecoder,
    CaptionDecoder,
    DecoderState,
    as_grid,
    attention_regularization,
    build_decoder,
)
from vision2seq.models.generation import Generation, beam_search, generate, greedy, sample, with_settings

FEATURE_DIM, VOCAB, POSITIONS = 12, 20, 5
PAD, BOS, EOS = 0, 1, 2
KINDS = ["markov", "show_tell", "attention"]


class MarkovDecoder(CaptionDecoder):
    """A toy decoder with controlled behaviour, to test the search algorithms apart from the LSTMs.

    The next token depends on the image and the previous token through a random table, and ``<eos>``
    becomes likelier at every step, so captions end at varied lengths. Its "attention" is a softmax over
    the grid positions that changes with the step.
    """

    def __init__(
        self, vocab: int = VOCAB, seed: int = 0, eos_bias: float = 0.0, eos_ramp: float = 0.7
    ) -> None:
        super().__init__()
        self.vocab_size = vocab
        self.eos_bias = eos_bias
        self.eos_ramp = eos_ramp
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("weights", 4 * torch.randn(FEATURE_DIM, vocab, vocab, generator=generator))

    def init_state(self, features: torch.Tensor) -> DecoderState:
        grid = as_grid(features)  # (B, N, D)
        table = torch.einsum("bd,dpv->bpv", grid.mean(1), self.weights) / FEATURE_DIM**0.5  # (B, V, V)
        steps = grid.new_zeros(grid.size(0), 1, 1)  # h counts the steps taken
        return DecoderState(h=steps, c=steps, memory=grid, memory_proj=table)

    def step(
        self, tokens: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        assert state.memory is not None and state.memory_proj is not None
        rows = state.h.size(0)
        image = torch.arange(rows) // (rows // state.memory.size(0))  # (B*G,) image of each hypothesis
        t = state.h[:, 0, 0]  # (B*G,)
        logits = state.memory_proj[image, tokens].clone()  # (B*G, V)
        logits[:, EOS] += self.eos_bias + self.eos_ramp * t
        alpha = F.softmax(state.memory[image].sum(-1) * (t + 1).unsqueeze(1), dim=-1)  # (B*G, N)
        return F.log_softmax(logits, dim=-1), replace(state, h=state.h + 1, c=state.c + 1), alpha


def make_decoder(kind: str, seed: int = 0, vocab: int = VOCAB, eos_bias: float = 1.0) -> CaptionDecoder:
    """A small random decoder; ``eos_bias`` is added to the ``<eos>`` logit of the LSTM decoders."""
    if kind == "markov":
        return MarkovDecoder(vocab, seed, eos_bias=eos_bias - 1.0)
    torch.manual_seed(seed)
    extra = {"attention_dim": 10} if kind == "attention" else {}
    decoder = build_decoder(kind, FEATURE_DIM, vocab, embed_dim=8, hidden_dim=16, **extra)
    with torch.no_grad():
        # Larger weights than at initialisation make the output depend more on the image and the words.
        for parameter in decoder.parameters():
            parameter.mul_(3.0)
        decoder.fc.bias[EOS] += eos_bias
    return decoder.eval()


def make_features(batch: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, POSITIONS, FEATURE_DIM, generator=torch.Generator().manual_seed(seed))


def step_log_probs(
    decoder: CaptionDecoder, features: torch.Tensor, tokens: list[int], ended: bool
) -> torch.Tensor:
    """Log-probabilities ``(T, V)`` at each step of feeding ``tokens`` (+ ``<eos>`` if ``ended``)."""
    fed = [BOS, *tokens, *([EOS] if ended else [])][:-1]
    with torch.no_grad():
        state = decoder.init_state(features)
        rows = []
        for token in fed:
            log_probs, state, _ = decoder.step(torch.tensor([token]), state)
            rows.append(log_probs[0])
    return torch.stack(rows)


def sequence_log_prob(
    decoder: CaptionDecoder, features: torch.Tensor, tokens: list[int], ended: bool
) -> float:
    """Sum of log-probabilities of ``tokens`` (+ ``<eos>`` if ``ended``) for one image ``(1, N, D)``."""
    targets = torch.tensor([*tokens, *([EOS] if ended else [])])
    log_probs = step_log_probs(decoder, features, tokens, ended)  # (T, V)
    return log_probs.gather(1, targets[:, None]).sum().item()


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_stops_at_eos_and_scores_are_log_probs(kind: str) -> None:
    decoder = make_decoder(kind)
    features = make_features()
    out = greedy(decoder, features, BOS, EOS, max_len=8)
    assert len(out.tokens) == len(out.scores) == 6
    assert out.attention is None and out.hypotheses is None
    lengths = {len(tokens) for tokens in out.tokens}
    assert max(lengths) <= 8
    if kind == "markov":
        assert len(lengths) > 2  # captions stop at different steps
    for i, tokens in enumerate(out.tokens):
        assert EOS not in tokens
        expected = sequence_log_prob(decoder, features[i : i + 1], tokens, ended=len(tokens) < 8)
        assert out.scores[i] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_max_len_is_respected(kind: str) -> None:
    never_ends = make_decoder(kind, eos_bias=-1e4)
    features = make_features(3)
    for out in (
        greedy(never_ends, features, BOS, EOS, max_len=7),
        beam_search(never_ends, features, BOS, EOS, beam_size=3, max_len=7),
        sample(never_ends, features, BOS, EOS, max_len=7, generator=torch.Generator().manual_seed(0)),
    ):
        assert [len(tokens) for tokens in out.tokens] == [7, 7, 7]
    always_ends = make_decoder(kind, eos_bias=1e4)
    assert greedy(always_ends, features, BOS, EOS).tokens == [[], [], []]
    assert beam_search(always_ends, features, BOS, EOS).tokens == [[], [], []]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_size_one_is_greedy(kind: str, seed: int) -> None:
    decoder = make_decoder(kind, seed=seed)
    features = make_features(8, seed=seed)
    expected = greedy(decoder, features, BOS, EOS, max_len=10, return_attention=True)
    out = beam_search(decoder, features, BOS, EOS, beam_size=1, max_len=10, return_attention=True)
    assert out.tokens == expected.tokens
    assert out.scores == pytest.approx(expected.scores, abs=1e-6)
    if kind != "show_tell":
        assert out.attention is not None and expected.attention is not None
        for got, want in zip(out.attention, expected.attention, strict=True):
            torch.testing.assert_close(got, want)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("length_penalty", [0.0, 0.7])
def test_batched_beam_equals_per_image_beam(kind: str, length_penalty: float) -> None:
    decoder = make_decoder(kind)
    features = make_features(5)
    kwargs = {"beam_size": 4, "max_len": 9, "length_penalty": length_penalty}
    batched = beam_search(decoder, features, BOS, EOS, **kwargs)
    assert batched.hypotheses is not None
    for i in range(5):
        alone = beam_search(decoder, features[i : i + 1], BOS, EOS, **kwargs)
        assert alone.tokens[0] == batched.tokens[i]
        assert alone.scores[0] == pytest.approx(batched.scores[i], abs=1e-5)
        assert alone.hypotheses is not None
        assert [h for h, _ in alone.hypotheses[0]] == [h for h, _ in batched.hypotheses[i]]


@pytest.mark.parametrize("kind", KINDS)
def test_beam_hypotheses_sorted_and_consistent(kind: str) -> None:
    decoder = make_decoder(kind)
    features = make_features(4)
    out = beam_search(decoder, features, BOS, EOS, beam_size=5, max_len=8, length_penalty=0.5)
    assert out.hypotheses is not None
    for i, hyps in enumerate(out.hypotheses):
        assert 1 <= len(hyps) <= 5
        scores = [score for _, score in hyps]
        assert scores == sorted(scores, reverse=True)
        assert hyps[0] == (out.tokens[i], out.scores[i])
        assert len({tuple(tokens) for tokens, _ in hyps}) == len(hyps)  # no duplicates
        for tokens, score in hyps:
            ended = len(tokens) < 8
            length = len(tokens) + ended
            raw = sequence_log_prob(decoder, features[i : i + 1], tokens, ended)
            assert score == pytest.approx(raw / ((5 + length) / 6) ** 0.5, abs=1e-4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_is_exhaustive_search(kind: str, length_penalty: float) -> None:
    # With 3 tokens and 3 steps there are 15 captions; a beam of 16 never prunes, so it must return
    # all of them, ranked exactly as brute force ranks them.
    vocab, max_len = 3, 3
    decoder = make_decoder(kind, vocab=vocab, eos_bias=0.0)
    features = make_features(2)
    out = beam_search(
        decoder, features, BOS, EOS, beam_size=16, max_len=max_len, length_penalty=length_penalty
    )
    assert out.hypotheses is not None
    others = [t for t in range(vocab) if t != EOS]
    for i in range(2):
        expected = []
        for n in range(max_len + 1):
            for tokens in itertools.product(others, repeat=n):
                ended = n < max_len
                raw = sequence_log_prob(decoder, features[i : i + 1], list(tokens), ended)
                expected.append((list(tokens), raw / ((5 + n + ended) / 6) ** length_penalty))
        expected.sort(key=lambda h: h[1], reverse=True)
        got = out.hypotheses[i]
        assert len(got) == len(expected) == 15
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-4)
        assert got[0][0] == expected[0][0]
        # The best found is the optimum, so no worse than the greedy caption's score.
        assert (
            out.scores[i] >= greedy(decoder, features[i : i + 1], BOS, EOS, max_len=max_len).scores[0] - 1e-5
        )


@pytest.mark.parametrize("kind", KINDS)
def test_sample_top_k_one_is_greedy(kind: str) -> None:
    decoder = make_decoder(kind)
    features = make_features()
    expected = greedy(decoder, features, BOS, EOS, max_len=10)
    out = sample(decoder, features, BOS, EOS, max_len=10, top_k=1, generator=torch.Generator().manual_seed(3))
    assert out.tokens == expected.tokens
    assert out.scores == pytest.approx(expected.scores, abs=1e-6)
    cold = sample(decoder, features, BOS, EOS, max_len=10, temperature=1e-4)
    assert cold.tokens == expected.tokens


@pytest.mark.parametrize("kind", KINDS)
def test_sample_is_reproducible_and_respects_top_k(kind: str) -> None:
    decoder = make_decoder(kind, eos_bias=0.0)
    features = make_features(16)

    def draw(seed: int, **kwargs) -> Generation:
        generator = torch.Generator().manual_seed(seed)
        return sample(decoder, features, BOS, EOS, max_len=6, generator=generator, **kwargs)

    assert draw(0).tokens == draw(0).tokens
    assert draw(0).tokens != draw(1).tokens
    # Every sampled token (and <eos>) is among the 2 most likely at its step.
    out = draw(0, top_k=2, temperature=2.0)
    for i, tokens in enumerate(out.tokens):
        ended = len(tokens) < 6
        targets = torch.tensor([*tokens, *([EOS] if ended else [])])
        top2 = step_log_probs(decoder, features[i : i + 1], tokens, ended).topk(2, dim=-1).indices  # (T, 2)
        assert (top2 == targets[:, None]).any(dim=1).all()
    # A high temperature gives more varied captions of one image than a low one.
    one_image = features[:1].expand(32, -1, -1)
    generator = torch.Generator().manual_seed(0)
    hot = sample(decoder, one_image, BOS, EOS, max_len=6, temperature=5.0, generator=generator).tokens
    cold = sample(decoder, one_image, BOS, EOS, max_len=6, temperature=0.05, generator=generator).tokens
    assert len({tuple(t) for t in hot}) > len({tuple(t) for t in cold})


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_attention_weights_on_request(strategy: str) -> None:
    features = make_features(4)
    decoder = make_decoder("attention")
    out = generate(decoder, features, BOS, EOS, GenerationConfig(strategy, max_len=8), return_attention=True)
    assert out.attention is not None
    for tokens, weights in zip(out.tokens, out.attention, strict=True):
        assert weights.shape == (len(tokens), POSITIONS)
        torch.testing.assert_close(weights.sum(-1), torch.ones(len(tokens)))
    settings = GenerationConfig(strategy)
    assert generate(decoder, features, BOS, EOS, settings).attention is None
    show_tell = make_decoder("show_tell")
    assert generate(show_tell, features, BOS, EOS, settings, return_attention=True).attention is None


def test_one_dispatcher_beam_of_one_is_greedy() -> None:
    decoder, features = make_decoder("attention"), make_features(4)
    beam_one = generate(decoder, features, BOS, EOS, GenerationConfig("beam", beam_size=1, max_len=8))
    assert beam_one.tokens == greedy(decoder, features, BOS, EOS, max_len=8).tokens
    beam_three = generate(decoder, features, BOS, EOS, GenerationConfig("beam", beam_size=3, max_len=8))
    assert beam_three.hypotheses is not None  # beam search ran
    settings = with_settings(GenerationConfig("greedy"), beam_size=3)
    assert (settings.strategy, settings.beam_size) == ("beam", 3)


def test_pooled_features_and_training_flag() -> None:
    decoder = make_decoder("attention").train()
    features = torch.randn(3, FEATURE_DIM)
    out = beam_search(decoder, features, BOS, EOS, return_attention=True)
    assert out.attention is not None and all(w.shape[1] == 1 for w in out.attention)
    assert decoder.training and decoder.dropout.training  # flags restored
    # Dropout is off while decoding, so the result does not depend on the training flag.
    assert greedy(decoder, features, BOS, EOS).tokens == greedy(decoder.eval(), features, BOS, EOS).tokens


def test_argument_checks() -> None:
    decoder, features = make_decoder("show_tell"), make_features(2)
    with pytest.raises(ValueError, match="strategy"):
        generate(decoder, features, BOS, EOS, GenerationConfig("nucleus"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(decoder, features, BOS, EOS, beam_size=0)
    with pytest.raises(ValueError, match="temperature"):
        sample(decoder, features, BOS, EOS, temperature=0.0)
    with pytest.raises(ValueError, match="max_len"):
        greedy(decoder, features, BOS, EOS, max_len=0)


@pytest.mark.parametrize("kind", ["show_tell", "attention"])
def test_overfits_three_images(kind: str) -> None:
    torch.manual_seed(0)
    features = torch.randn(3, 4, FEATURE_DIM)  # 3 "images", 4 grid positions each
    targets = [[5, 6, 7, 8], [9, 6, 10], [11, 12, 13, 14, 15, 16]]
    length = max(map(len, targets)) + 2
    captions = torch.tensor([[BOS, *t, EOS] + [PAD] * (length - len(t) - 2) for t in targets])
    extra = {"attention_dim": 16} if kind == "attention" else {}
    decoder = build_decoder(kind, FEATURE_DIM, VOCAB, embed_dim=16, hidden_dim=32, dropout=0.1, **extra)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    mask = captions[:, 1:] != PAD
    decoder.train()
    for _ in range(150):
        out = decoder(features, captions)
        loss = F.cross_entropy(out.logits.reshape(-1, VOCAB), captions[:, 1:].reshape(-1), ignore_index=PAD)
        if out.alphas is not None:
            loss = loss + 0.01 * attention_regularization(out.alphas, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert greedy(decoder, features, BOS, EOS, max_len=10).tokens == targets
    assert beam_search(decoder, features, BOS, EOS, beam_size=3, max_len=10).tokens == targets
    assert decoder.training
    assert math.isfinite(loss.item())


class PerStepAttention(AttentionDecoder):
    """Show, Attend and Tell written step by step the straightforward way (``nn.LSTMCell`` on the
    concatenated ``[word; beta * context]``, separate ``decoder_att`` and ``f_beta``): the reference the
    regrouped products of ``AttentionDecoder`` (word gates before the loop, one query product) must match.
    Same parameters, so it loads the optimised decoder's state dict strictly."""

    def init_state(self, features: torch.Tensor) -> DecoderState:
        memory = as_grid(features)
        mean = memory.mean(dim=1)
        if self.positions is not None:
            memory = self.positions(memory)
        shape = (memory.size(0), self.num_layers, self.hidden_dim)
        return DecoderState(
            h=self.init_h(mean).view(shape),
            c=self.init_c(mean).view(shape),
            memory=memory,
            memory_proj=self.encoder_att(memory),
        )

    def reference_step(self, words: torch.Tensor, state: DecoderState):
        assert state.memory is not None and state.memory_proj is not None
        query = state.h[:, -1]
        batch, positions, dim = state.memory.shape
        q = self.decoder_att(query).view(batch, -1, 1, self.attention_dim)
        energy = self.full_att(torch.tanh(state.memory_proj.unsqueeze(1) + q)).squeeze(-1)
        alpha = F.softmax(energy, dim=-1)
        context = torch.bmm(alpha, state.memory).view(-1, dim)
        x = torch.cat([words, torch.sigmoid(self.f_beta(query)) * context], dim=-1)
        hs, cs = [], []
        for layer, cell in enumerate(self.cells):
            h, c = cell(x, (state.h[:, layer], state.c[:, layer]))
            hs.append(h)
            cs.append(c)
            x = self.dropout(h)
        state = replace(state, h=torch.stack(hs, dim=1), c=torch.stack(cs, dim=1))
        return x, state, alpha.view(-1, positions)

    def forward(self, features: torch.Tensor, captions: torch.Tensor):
        state = self.init_state(features)
        words = self.embed(captions[:, :-1])
        outputs, alphas = [], []
        for t in range(words.size(1)):
            x, state, alpha = self.reference_step(words[:, t], state)
            outputs.append(x)
            alphas.append(alpha)
        return self.fc(torch.stack(outputs, dim=1)), torch.stack(alphas, dim=1)

    def step(self, tokens: torch.Tensor, state: DecoderState):
        x, state, alpha = self.reference_step(self.embed(tokens), state)
        return F.log_softmax(self.fc(x), dim=-1), state, alpha


@pytest.mark.parametrize("num_layers", [1, 2])
def test_attention_decoder_matches_per_step_reference(num_layers: int) -> None:
    """Teacher forcing (logits, attention, gradients) and greedy/beam decoding of the optimised attention
    decoder equal the per-step reference's, and its state dict loads into the reference unchanged."""
    torch.manual_seed(0)
    kwargs = dict(embed_dim=8, hidden_dim=16, attention_dim=6, num_layers=num_layers, dropout=0.0)
    fast = build_decoder("attention", FEATURE_DIM, VOCAB, positions=True, **kwargs)
    reference = PerStepAttention(FEATURE_DIM, VOCAB, positions=True, **kwargs)
    reference.load_state_dict(fast.state_dict(), strict=True)  # same keys: old checkpoints still load
    features = torch.randn(3, 9, FEATURE_DIM)
    captions = torch.randint(3, VOCAB, (3, 7))
    captions[:, 0] = BOS

    # Features that require a gradient (a trained encoder) get the same one through both decoders.
    fast_in, ref_in = features.clone().requires_grad_(), features.clone().requires_grad_()
    out = fast(fast_in, captions)
    ref_logits, ref_alphas = reference(ref_in, captions)
    torch.testing.assert_close(out.logits, ref_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.alphas, ref_alphas, rtol=1e-5, atol=1e-6)
    (out.logits.square().mean() + out.alphas[:, :, 0].sum()).backward()
    (ref_logits.square().mean() + ref_alphas[:, :, 0].sum()).backward()
    torch.testing.assert_close(fast_in.grad, ref_in.grad, rtol=1e-4, atol=1e-6)
    ref_grads = dict(reference.named_parameters())
    for name, param in fast.named_parameters():
        torch.testing.assert_close(param.grad, ref_grads[name].grad, rtol=1e-4, atol=1e-6, msg=name)

    for search in (
        lambda d: greedy(d, features, BOS, EOS, max_len=8, return_attention=True),
        lambda d: beam_search(d, features, BOS, EOS, beam_size=3, max_len=8, return_attention=True),
    ):
        got, want = search(fast), search(reference)
        assert got.tokens == want.tokens
        assert got.scores == pytest.approx(want.scores, abs=1e-5)
        assert got.attention is not None and want.attention is not None
        for a, b in zip(got.attention, want.attention, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
