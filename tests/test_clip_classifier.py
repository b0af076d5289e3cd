import pytest
import torch

from vision2seq.models.clip_classifier import ClipClassifier


@pytest.mark.parametrize(
    ("kind", "pooling", "bidirectional", "layers"),
    [
        ("lstm", "last", False, 1),
        ("lstm", "mean", False, 2),
        ("lstm", "attention", False, 1),
        ("lstm", "last", True, 1),
        ("lstm", "attention", True, 2),
        ("mean", "last", False, 1),
    ],
)
def test_streaming_equals_batch(kind, pooling, bidirectional, layers):
    torch.manual_seed(0)
    model = ClipClassifier(
        12, 5, kind=kind, hidden_dim=8, num_layers=layers, bidirectional=bidirectional, pooling=pooling
    ).eval()
    clips = torch.randn(3, 7, 12)  # (B, T, D)
    logits = model(clips)
    assert logits.shape == (3, 5)
    state = model.init_stream()
    for t in range(7):  # one frame at a time
        streamed, state = model.stream_step(clips[:, t], state)
    torch.testing.assert_close(streamed, logits, rtol=1e-5, atol=1e-5)
    state = model.init_stream()
    for chunk in clips.split([2, 4, 1], dim=1):  # or in chunks
        streamed, state = model.stream_step(chunk, state)
    torch.testing.assert_close(streamed, logits, rtol=1e-5, atol=1e-5)
    # after a reset (a fresh state) the first frame alone equals the batch model on that frame
    first, _ = model.stream_step(clips[:, :1], model.init_stream())
    torch.testing.assert_close(first, model(clips[:, :1]), rtol=1e-5, atol=1e-5)


def test_mean_baseline_ignores_frame_order_and_lstm_does_not():
    torch.manual_seed(0)
    clips = torch.randn(2, 6, 4)
    reversed_clips = clips.flip(1)
    mean = ClipClassifier(4, 3, kind="mean").eval()
    torch.testing.assert_close(mean(clips), mean(reversed_clips))
    lstm = ClipClassifier(4, 3, kind="lstm", hidden_dim=8).eval()
    assert not torch.allclose(lstm(clips), lstm(reversed_clips))


def test_attention_weights_and_bad_settings():
    model = ClipClassifier(4, 3, hidden_dim=8, pooling="attention").eval()
    weights = model.temporal_attention(torch.randn(2, 5, 4))
    assert weights.shape == (2, 5)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="pooling"):
        ClipClassifier(4, 3, pooling="max")
    with pytest.raises(ValueError, match="kind"):
        ClipClassifier(4, 3, kind="gru")


def _one_direction(lstm: torch.nn.LSTM, suffix: str) -> torch.nn.LSTM:
    """A one-layer unidirectional LSTM holding one direction's weights of ``lstm``."""
    single = torch.nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(single, f"{name}_l0").data.copy_(getattr(lstm, f"{name}_l0{suffix}").data)
    return single


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_bidirectional_stream_matches_an_independent_two_lstm_reference(pooling):
    """After every frame the streamed logits equal a reference built from two separate one-way LSTMs:
    the forward one over the frames so far, the backward one over the same frames reversed."""
    torch.manual_seed(0)
    model = ClipClassifier(6, 4, hidden_dim=5, bidirectional=True, pooling=pooling).eval()
    forward_lstm, backward_lstm = _one_direction(model.lstm, ""), _one_direction(model.lstm, "_reverse")
    clips = torch.randn(2, 5, 6)
    state = model.init_stream()
    for t in range(clips.shape[1]):
        streamed, state = model.stream_step(clips[:, t], state)
        seen = clips[:, : t + 1]
        ahead, _ = forward_lstm(seen)  # (B, t+1, H)
        behind = backward_lstm(seen.flip(1))[0].flip(1)  # (B, t+1, H), aligned with the frames
        if pooling == "last":  # each direction's final state: forward at the newest frame, backward at 0
            pooled = torch.cat([ahead[:, -1], behind[:, 0]], dim=-1)
        else:
            pooled = torch.cat([ahead, behind], dim=-1).mean(dim=1)
        torch.testing.assert_close(streamed, model.classifier(pooled), rtol=1e-5, atol=1e-6)
