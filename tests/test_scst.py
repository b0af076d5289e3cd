"""Show-and-Tell conditioning variants decode as they train, and the SCST pieces: the CIDEr-D reward with
fixed document frequencies and ``<eos>`` as a word, sampling with gradients, both baselines, and
``train.init_from``."""

from __future__ import annotations

import pytest
import tiny_models
import torch

from vision2seq.config import GenerationConfig
from vision2seq.evaluation.cider import corpus_cider
from vision2seq.models.captioner import AttentionDecoder, ShowTellDecoder
from vision2seq.models.generation import beam_search, generate
from vision2seq.scst import CiderDReward, SelfCritical, sample_captions

tiny_captioner = tiny_models.tiny_captioner
tiny_video = tiny_models.tiny_video
torch_one_thread = tiny_models.torch_one_thread

BOS, EOS, V = 1, 2, 12


@pytest.mark.parametrize("conditioning", ["init", "pre", "merge"])
def test_show_tell_steps_match_teacher_forcing(conditioning: str) -> None:
    torch.manual_seed(0)
    decoder = ShowTellDecoder(
        10, V, embed_dim=8, hidden_dim=16, num_layers=2, conditioning=conditioning
    ).eval()
    features = torch.randn(3, 10)
    captions = torch.tensor([[BOS, 5, 6, 7, EOS]] * 3)
    logits = decoder(features, captions).logits.log_softmax(-1)  # (B, 4, V)
    state = decoder.init_state(features)
    for t in range(4):
        log_probs, state, _ = decoder.step(captions[:, t], state)
        assert torch.allclose(log_probs, logits[:, t], atol=1e-5)
    # Beam search keeps each image's hypotheses together (merge reads the per-image memory).
    result = beam_search(decoder, features, BOS, EOS, beam_size=3, max_len=5)
    assert len(result.tokens) == 3
    # The image matters: other features give other next-word distributions.
    other = decoder(torch.randn(3, 10), captions).logits
    assert not torch.allclose(other, decoder(features, captions).logits)


def test_unknown_conditioning_is_refused() -> None:
    with pytest.raises(ValueError, match="conditioning"):
        ShowTellDecoder(4, V, conditioning="late")


REFS = {
    "a": ["a red circle.", "the picture shows a red circle."],
    "b": ["a blue square.", "the picture shows a blue square."],
    "c": ["a green diamond.", "a diamond that is green."],
}


def test_cider_reward() -> None:
    reward = CiderDReward(REFS)
    right, wrong = reward(["a", "a"], ["a red circle", "a blue square"], [True, True])
    assert right > 1.0 > wrong
    # <eos> is a word, as in the SCST paper: a caption cut at the length limit misses the closing n-grams.
    [cut] = reward(["a"], ["a red circle"], [False])
    assert cut < right
    # Document frequencies come from the training references, not from the batch being scored.
    assert (
        reward(["b"], ["a blue square"], [True])
        == reward(["b", "c"], ["a blue square", "x"], [True, True])[:1]
    )
    with pytest.raises(KeyError):
        reward(["zzz"], ["a"], [True])


def test_cider_reward_without_eos_counts_like_the_metric() -> None:
    # With the same images, a caption that is not ended scores as CIDEr-D would score it with <eos>
    # appended to the references only: check the plain metric's ordering is kept.
    reward = CiderDReward(REFS)
    captions = ["a red circle", "a blue circle", "a green diamond"]
    ours = reward(list(REFS), captions, [True] * 3)
    metric = corpus_cider(
        [c.split() for c in captions], [[r.rstrip(".").split() for r in refs] for refs in REFS.values()]
    )
    assert sorted(range(3), key=ours.__getitem__) == sorted(range(3), key=metric.per_image.__getitem__)


@pytest.mark.parametrize("kind", ["show_tell", "attention"])
@pytest.mark.parametrize("baseline", ["greedy", "mean"])
def test_self_critical_loss(kind: str, baseline: str) -> None:
    torch.manual_seed(0)
    words = [
        "<pad>",
        "<bos>",
        "<eos>",
        "<unk>",
        "a",
        "red",
        "blue",
        "circle",
        "square",
        "the",
        "picture",
        "shows",
    ]
    if kind == "show_tell":
        decoder = ShowTellDecoder(6, len(words), embed_dim=8, hidden_dim=16)
        features = torch.randn(2, 6)
    else:
        decoder = AttentionDecoder(6, len(words), embed_dim=8, hidden_dim=16, attention_dim=8)
        features = torch.randn(2, 4, 6)
    to_text = lambda ids: " ".join(words[i] for i in ids if i > EOS)  # noqa: E731
    scst = SelfCritical(CiderDReward(REFS), to_text, samples=4, baseline=baseline, max_len=6)
    out = scst(decoder.train(), features, ["a", "b"], BOS, EOS)
    assert set(out) == {"loss", "reward", "baseline"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None for p in decoder.fc.parameters())
    if baseline == "mean":  # the mean of the other samples averages to the samples' mean reward
        assert out["baseline"].item() == pytest.approx(out["reward"].item(), abs=1e-6)
    with pytest.raises(ValueError):
        SelfCritical(CiderDReward(REFS), to_text, samples=1, baseline="mean")


def test_sampled_captions_count_their_eos() -> None:
    torch.manual_seed(0)
    decoder = ShowTellDecoder(6, V, embed_dim=8, hidden_dim=16)
    with torch.no_grad():
        decoder.fc.bias.fill_(-20.0)
        decoder.fc.bias[EOS] = 20.0  # always ends at once
    drawn = sample_captions(decoder, torch.randn(2, 6), BOS, EOS, k=3, max_len=5)
    assert drawn.tokens.shape == (6, 1) and drawn.mask.all() and drawn.ended(EOS) == [True] * 6
    assert drawn.log_probs.requires_grad


def test_init_from_refuses_a_checkpoint_that_does_not_fit(
    tiny_captioner, tiny_video, tmp_path, capsys
) -> None:
    run = tiny_models.run_cli
    base = ["train", tiny_captioner.config]
    code, _, err = run(
        capsys, *base, f"output_dir={tmp_path / 'a'}", f"train.init_from={tiny_video.checkpoint}"
    )
    assert code == 1
    tiny_models.assert_one_error(err, "train", "train.init_from", "'video_classification' checkpoint")
    code, _, err = run(
        capsys,
        *base,
        f"output_dir={tmp_path / 'b'}",
        f"train.init_from={tiny_captioner.checkpoint}",
        "model.decoder.hidden_dim=24",
        "--quiet",
    )
    assert code == 1
    tiny_models.assert_one_error(err, "train", "train.init_from", "do not fit this config's model")
    code, _, err = run(
        capsys,
        *base,
        f"output_dir={tmp_path / 'c'}",
        f"train.init_from={tiny_captioner.checkpoint}",
        "data.min_word_freq=20",
        "--quiet",
    )
    assert code == 1
    tiny_models.assert_one_error(err, "train", "train.init_from", "another vocab")


def test_init_from_starts_from_the_weights_not_the_run(tiny_captioner, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code, _, _ = tiny_models.run_cli(
        capsys,
        "train",
        tiny_captioner.config,
        f"output_dir={out}",
        f"train.init_from={tiny_captioner.checkpoint}",
        "train.lr=1e-30",  # the smallest of steps: the weights stay the starting ones to float precision
        "--quiet",
    )
    assert code == 0
    start = torch.load(tiny_captioner.checkpoint, weights_only=True)
    trained = torch.load(out / "last.pt", weights_only=True)
    assert trained["epoch"] == 1 and trained["step"] > 0  # a fresh run, not a resume
    for key, value in start["model"].items():
        torch.testing.assert_close(trained["model"][key], value, rtol=1e-6, atol=1e-20, msg=key)


def test_generation_settings_unchanged_by_conditioning() -> None:
    decoder = ShowTellDecoder(6, V, embed_dim=8, hidden_dim=16, conditioning="merge")
    result = generate(decoder, torch.randn(2, 6), BOS, EOS, GenerationConfig(strategy="greedy", max_len=4))
    assert len(result.tokens) == 2
