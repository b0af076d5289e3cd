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
