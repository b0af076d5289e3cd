"""The video-caption model: shapes, order awareness, and decoding (greedy, beam search, sampling) over
the encoded frames through the one generation dispatcher."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vision2seq.config import GenerationConfig, config_to_dict, load_config
from vision2seq.data.vocab import Vocabulary
from vision2seq.engine.checkpoint import CheckpointError, save_checkpoint
from vision2seq.inference.video_captioner import VideoCaptioner, load_captioner
from vision2seq.models.video_caption_model import TemporalEncoder, VideoCaptionModel
from vision2seq.tasks.video_captioning import build_model

B, T, VOCAB_WORDS = 3, 6, 9
VOCAB = Vocabulary(["<pad>", "<bos>", "<eos>", "<unk>", *(f"w{i}" for i in range(VOCAB_WORDS))])


def tiny_config(kind: str = "lstm", bidirectional: bool = True):
    return load_config(
        None,
        [
            "task=video_captioning",
            "model.encoder.name=resnet18",
            "model.encoder.weights=null",
            "model.encoder.image_size=32",
            f"model.temporal.kind={kind}",
            f"model.temporal.bidirectional={str(bidirectional).lower()}",
            "model.temporal.hidden_dim=8",
            "model.decoder.embed_dim=8",
            "model.decoder.hidden_dim=12",
            "model.decoder.attention_dim=8",
            "generation.beam_size=2",
            "generation.max_len=6",
        ],
    )


def tiny_model(kind: str = "lstm", bidirectional: bool = True, seed: int = 0) -> VideoCaptionModel:
    torch.manual_seed(seed)
    model = build_model(tiny_config(kind, bidirectional), VOCAB, load_weights=False)
    with torch.no_grad():  # non-trivial normalisation statistics, as after training
        model.temporal.norm.running_mean.normal_()
        model.temporal.norm.running_var.uniform_(0.5, 2.0)
    return model.eval()


def features(seed: int = 1) -> torch.Tensor:
    return torch.randn(B, T, 512, generator=torch.Generator().manual_seed(seed))  # (B, T, D)


@pytest.mark.parametrize(
    ("kind", "bidirectional", "memory"),
    [("lstm", True, (T, 16)), ("lstm", False, (T, 8)), ("mean", True, (1, 512))],
)
def test_shapes_of_memory_teacher_forcing_and_attention(kind, bidirectional, memory):
    model = tiny_model(kind, bidirectional)
    captions = torch.tensor([[1, 4, 5, 2, 0], [1, 6, 2, 0, 0], [1, 7, 8, 9, 2]])  # (B, L)
    assert model.memory(features()).shape == (B, *memory)
    out = model({"features": features(), "captions": captions})
    assert out.logits.shape == (B, 4, len(VOCAB))
    assert out.alphas.shape == (B, 4, memory[0])  # attention over frames (one slot for the mean)
    torch.testing.assert_close(out.alphas.sum(-1), torch.ones(B, 4))


def test_frames_go_through_the_encoder_frame_by_frame():
    model = tiny_model()
    frames = torch.randn(2, T, 3, 32, 32)
    assert model.features({"frames": frames}).shape == (2, T, 512)
    one = model.encoder(frames[1, 3:4])  # (1, D)
    torch.testing.assert_close(model.features({"frames": frames})[1, 3], one[0], rtol=1e-4, atol=1e-5)


def test_frame_order_changes_the_lstm_memory_but_not_the_mean_baseline():
    reversed_ = features().flip(1)
    lstm, mean = tiny_model("lstm"), tiny_model("mean")
    assert not torch.allclose(lstm.memory(features()).mean(1), lstm.memory(reversed_).mean(1), atol=1e-3)
    torch.testing.assert_close(mean.memory(features()), mean.memory(reversed_))


def sequence_log_prob(model: VideoCaptionModel, feats: torch.Tensor, tokens: list[int], ended: bool) -> float:
    """Teacher-forced log-probability of ``tokens`` (and ``<eos>`` when ``ended``) for one clip."""
    caption = torch.tensor([[VOCAB.bos_id, *tokens, VOCAB.eos_id]])
    with torch.no_grad():
        logits = model({"features": feats[None], "captions": caption}).logits[0]  # (L-1, V)
    log_probs = F.log_softmax(logits, -1).gather(1, caption[0, 1:, None])[:, 0]
    return float(log_probs.sum() if ended else log_probs[:-1].sum())


@pytest.mark.parametrize("beam_size", [1, 3])
def test_beam_search_scores_are_the_teacher_forced_log_probabilities(beam_size):
    model = tiny_model()
    settings = GenerationConfig(strategy="beam", beam_size=beam_size, max_len=6)
    result = model.generate(features(), settings, return_attention=True)
    for i in range(B):
        tokens = result.tokens[i]
        expected = sequence_log_prob(model, features()[i], tokens, ended=len(tokens) < settings.max_len)
        assert result.scores[i] == pytest.approx(expected, abs=1e-4)
        assert result.attention[i].shape == (len(tokens), T)
    if beam_size > 1:
        for hypotheses in result.hypotheses:
            scores = [score for _, score in hypotheses]
            assert scores == sorted(scores, reverse=True) and len(scores) <= beam_size


def test_beam_search_finds_at_least_greedys_score_and_batches_like_single_clips():
    model = tiny_model(seed=3)
    greedy = model.generate(features(), GenerationConfig(strategy="greedy", max_len=6))
    beam = model.generate(features(), GenerationConfig(strategy="beam", beam_size=4, max_len=6))
    assert all(b >= g - 1e-5 for b, g in zip(beam.scores, greedy.scores, strict=True))
    for i in range(B):
        alone = model.generate(
            features()[i : i + 1], GenerationConfig(strategy="beam", beam_size=4, max_len=6)
        )
        assert alone.tokens[0] == beam.tokens[i]


def test_generation_runs_without_dropout_and_keeps_the_training_flags():
    model = tiny_model()
    settings = GenerationConfig(strategy="beam", beam_size=2, max_len=6)
    expected = model.generate(features(), settings).tokens
    model.train()
    model.temporal.dropout.p = model.decoder.dropout.p = 0.9
    assert model.generate(features(), settings).tokens == expected
    assert all(m.training for part in (model.temporal, model.decoder) for m in part.modules())


def test_sampling_draws_from_the_model():
    model = tiny_model()
    settings = GenerationConfig(strategy="sample", max_len=6, top_k=1)  # top-1 sampling is greedy
    torch.manual_seed(0)
    sampled = model.generate(features(), settings).tokens
    assert sampled == model.generate(features(), GenerationConfig(strategy="greedy", max_len=6)).tokens


def test_unknown_temporal_kind_and_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        TemporalEncoder(8, kind="gru")
    with pytest.raises(ValueError, match=r"must be \(B, T, D\)"):
        tiny_model().memory(torch.randn(2, 512))


def test_a_saved_model_is_restored_by_the_captioner_and_damaged_checkpoints_are_refused(tmp_path):
    model, config = tiny_model(), tiny_config()
    payload = {
        "task": "video_captioning",
        "config": config_to_dict(config),
        "extras": {"vocab": VOCAB.to_list()},
        "model": model.state_dict(),
    }
    save_checkpoint(tmp_path / "best.pt", payload)
    captioner = load_captioner(tmp_path / "best.pt", device="cpu")
    assert isinstance(captioner, VideoCaptioner)
    frames = torch.randn(2, T, 3, 32, 32)
    expected = model.generate(model.features({"frames": frames}), config.generation).tokens
    assert captioner.caption_frames(frames)[0] == [" ".join(VOCAB.decode(t)) for t in expected]

    save_checkpoint(tmp_path / "damaged.pt", {**payload, "extras": {}})
    with pytest.raises(CheckpointError, match=r"damaged 'video_captioning' checkpoint: .*extras\.vocab"):
        VideoCaptioner.from_checkpoint(tmp_path / "damaged.pt", device="cpu")
