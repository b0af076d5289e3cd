"""Tests of the LSTM caption decoders: shapes, step-by-step decoding, attention and its penalty."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vision2seq.models.caption_model import (
    AttentionDecoder,
    ShowTellDecoder,
    attention_regularization,
    build_decoder,
)

FEATURE_DIM, VOCAB = 12, 20
SMALL = {"embed_dim": 8, "hidden_dim": 16}
KINDS = ["show_tell", "attention"]


def make_decoder(kind: str, num_layers: int = 1, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    extra = {"attention_dim": 10} if kind == "attention" else {}
    return build_decoder(kind, FEATURE_DIM, VOCAB, num_layers=num_layers, **SMALL, **extra, **kwargs)


def make_captions(batch: int = 3, length: int = 6) -> torch.Tensor:
    captions = torch.randint(3, VOCAB, (batch, length))
    captions[:, 0] = 1  # <bos>
    captions[0, 4:] = 0  # padding
    return captions


def features_of(shape: str, batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, FEATURE_DIM) if shape == "pooled" else torch.randn(batch, 5, FEATURE_DIM)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", ["pooled", "grid"])
def test_forward_shapes(kind: str, shape: str) -> None:
    decoder = make_decoder(kind)
    features = features_of(shape)
    out = decoder(features, make_captions())
    assert out.logits.shape == (3, 5, VOCAB)
    if kind == "show_tell":
        assert out.alphas is None
    else:
        positions = 1 if shape == "pooled" else 5
        assert out.alphas is not None and out.alphas.shape == (3, 5, positions)
        torch.testing.assert_close(out.alphas.sum(-1), torch.ones(3, 5))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_step_by_step_matches_forward(kind: str, num_layers: int) -> None:
    decoder = make_decoder(kind, num_layers=num_layers).eval()
    features, captions = features_of("grid"), make_captions()
    with torch.no_grad():
        out = decoder(features, captions)
        state = decoder.init_state(features)
        log_probs, alphas = [], []
        for t in range(captions.size(1) - 1):
            step_log_probs, state, alpha = decoder.step(captions[:, t], state)
            log_probs.append(step_log_probs)
            alphas.append(alpha)
    torch.testing.assert_close(torch.stack(log_probs, 1), F.log_softmax(out.logits, -1), atol=1e-5, rtol=1e-5)
    if kind == "attention":
        torch.testing.assert_close(torch.stack(alphas, 1), out.alphas, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_expand_and_reorder_state(kind: str) -> None:
    decoder = make_decoder(kind).eval()
    features = features_of("grid", batch=2)
    with torch.no_grad():
        state = decoder.expand_state(decoder.init_state(features), 3)  # rows b * 3 + j
        tokens = torch.tensor([4, 5, 6, 7, 8, 9])
        log_probs, state, _ = decoder.step(tokens, state)
        # Swapping beams within each image swaps their next-step results, and only those.
        index = torch.tensor([2, 0, 1, 5, 3, 4])
        reordered, _, _ = decoder.step(tokens[index], decoder.reorder_state(state, index))
        expected, _, _ = decoder.step(tokens, state)
    assert log_probs.shape == (6, VOCAB)
    torch.testing.assert_close(reordered, expected[index])


def test_dropout_only_in_training() -> None:
    decoder = make_decoder("attention", dropout=0.5)
    features, captions = features_of("grid"), make_captions()
    decoder.train()
    assert not torch.equal(decoder(features, captions).logits, decoder(features, captions).logits)
    decoder.eval()
    assert torch.equal(decoder(features, captions).logits, decoder(features, captions).logits)


def test_attention_regularization() -> None:
    # Each of the 3 positions gets total attention 1 over the 3 real steps: no penalty.
    alphas = torch.eye(3).unsqueeze(0).repeat(2, 1, 1)  # (B=2, T=3, N=3)
    assert attention_regularization(alphas).item() == 0.0
    # A padded step is ignored, whatever its weights.
    padded = torch.cat([alphas, torch.full((2, 1, 3), 1 / 3)], dim=1)
    mask = torch.tensor([[True, True, True, False]] * 2)
    assert attention_regularization(padded, mask).item() == 0.0
    assert attention_regularization(padded).item() > 0.0
    # Always looking at one position: (1 - 3)^2 + 1 + 1 = 6 per caption, over its 3 words: 2 (the paper's
    # penalty per caption, scaled like the cross-entropy, which is averaged over words).
    focused = torch.zeros(2, 3, 3)
    focused[:, :, 0] = 1.0
    assert attention_regularization(focused).item() == pytest.approx(2.0)
    # Padded steps do not count as words: 3 real words of 5 give the same 2.
    longer = torch.cat([focused, torch.zeros(2, 2, 3)], dim=1)
    mask = torch.tensor([[True, True, True, False, False]] * 2)
    assert attention_regularization(longer, mask).item() == pytest.approx(2.0)
    assert AttentionDecoder.attention_regularization is attention_regularization


def test_build_decoder() -> None:
    assert isinstance(build_decoder("show_tell", FEATURE_DIM, VOCAB, **SMALL), ShowTellDecoder)
    assert isinstance(build_decoder("attention", FEATURE_DIM, VOCAB, attention_dim=4), AttentionDecoder)
    with pytest.raises(ValueError, match=r"attention.*show_tell"):
        build_decoder("transformer", FEATURE_DIM, VOCAB)


def test_rejects_bad_inputs() -> None:
    decoder = make_decoder("attention")
    with pytest.raises(ValueError, match="features"):
        decoder(torch.randn(2, 3, 4, FEATURE_DIM), make_captions(2))
    with pytest.raises(ValueError, match="captions"):
        decoder(features_of("grid", 2), torch.ones(2, 1, dtype=torch.long))


@pytest.mark.parametrize("conditioning", ["init", "pre", "merge", "par"])
def test_show_tell_step_by_step_matches_forward_for_every_conditioning(conditioning: str) -> None:
    decoder = make_decoder("show_tell", conditioning=conditioning).eval()
    features, captions = features_of("pooled"), make_captions()
    with torch.no_grad():
        out = decoder(features, captions)
        state = decoder.init_state(features)
        for t in range(captions.size(1) - 1):
            log_probs, state, _ = decoder.step(captions[:, t], state)
            torch.testing.assert_close(log_probs, F.log_softmax(out.logits[:, t], dim=-1))
    # The image reaches every prediction: another image changes the words' scores.
    other = decoder(features.flip(0), captions).logits
    assert not torch.allclose(other, out.logits)
