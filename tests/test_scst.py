"""Show-and-Tell conditioning variants decode as they train, and SCST: the CIDEr-D reward on token ids with
fixed document frequencies and ``<eos>`` as a word, the direction of its updates with both baselines,
samples and baseline from the deployed (eval-mode) policy, its learning rate, and ``train.init_from``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tiny_models
import torch
from torch import Tensor

from vision2seq.config import GenerationConfig, load_config
from vision2seq.data.tokenizer import detokenize, tokenize
from vision2seq.data.vocab import SPECIALS, Vocabulary
from vision2seq.engine.optim import describe_schedule
from vision2seq.evaluation.cider import CiderD, corpus_cider
from vision2seq.evaluation.ptb_tokenizer import ptb_tokenize
from vision2seq.models.caption_model import AttentionDecoder, CaptionModel, ShowTellDecoder
from vision2seq.models.encoder import ImageEncoder
from vision2seq.models.generation import beam_search, generate
from vision2seq.models.video_caption_model import TemporalEncoder, VideoCaptionModel
from vision2seq.tasks.scst import EOS_WORD, CiderDReward, SelfCritical, SelfCriticalLoss, rollout
from vision2seq.train import describe_encoder

tiny_captioner = tiny_models.tiny_captioner
tiny_video = tiny_models.tiny_video
torch_one_thread = tiny_models.torch_one_thread

BOS, EOS, V = 1, 2, 12
ROOT = Path(__file__).resolve().parents[1]


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
WORDS = [*SPECIALS, "a", "red", "blue", "green", "circle", "square", "diamond", "the", "picture", "shows"]
WORDS += ["man's", ".", ",", "that", "is"]
VOCAB = Vocabulary(WORDS)


def ids(text: str, ended: bool = True) -> list[int]:
    """Token ids of a caption as the model writes them (no <bos>; <eos> when it ended it)."""
    row = VOCAB.encode(tokenize(text))[1:]
    return row if ended else row[:-1]


def cider_reward() -> CiderDReward:
    return CiderDReward(REFS, VOCAB.words, VOCAB.eos_id, (VOCAB.bos_id, VOCAB.pad_id))


def test_cider_reward() -> None:
    reward = cider_reward()
    right, wrong = reward(["a", "a"], [ids("a red circle"), ids("a blue square")])
    assert right > 1.0 > wrong
    # <eos> is a word, as in the SCST paper: a caption cut at the length limit misses the closing n-grams.
    [cut] = reward(["a"], [ids("a red circle", ended=False)])
    assert cut < right
    # Document frequencies come from the training references, not from the batch being scored.
    assert reward(["b"], [ids("a blue square")]) == reward(["b", "c"], [ids("a blue square"), ids("a")])[:1]
    with pytest.raises(KeyError, match="zzz"):
        reward(["zzz"], [ids("a")])


@pytest.mark.parametrize(
    "caption",
    ["a red circle.", "the picture shows a blue square", "a man's green diamond, that is", "a zebra circle"],
)
@pytest.mark.parametrize("ended", [True, False])
def test_reward_on_token_ids_equals_the_reward_on_text(caption: str, ended: bool) -> None:
    """Ids -> words -> text -> PTB tokens, as the reward was computed before it read ids: the same value
    (punctuation counts for nothing, "man's" is two PTB tokens, an unknown word is <unk>)."""
    row = ids(caption, ended)
    text = detokenize(VOCAB.decode(row))
    by_text = CiderD({k: [[*ptb_tokenize(r), EOS_WORD] for r in refs] for k, refs in REFS.items()})
    for key in REFS:
        expected = by_text(key, [*ptb_tokenize(text), *([EOS_WORD] if ended else [])])
        assert cider_reward()([key], [row]) == [pytest.approx(expected, rel=1e-12)]


def test_fixed_document_frequencies_score_as_the_metric_on_the_same_images() -> None:
    refs = [[r.rstrip(".").split() for r in refs] for refs in REFS.values()]
    captions = [["a", "red", "circle"], ["a", "blue", "circle"], ["a", "green", "diamond"]]
    scorer = CiderD(dict(enumerate(refs)))
    per_image = corpus_cider(captions, refs).per_image
    assert [scorer(i, c) for i, c in enumerate(captions)] == pytest.approx(per_image, rel=1e-12)
    assert per_image[0] > per_image[1] > 0  # a wrong word costs


def first_token_reward(targets: dict[str, int]):
    """A stub reward: 1 for a caption of image ``key`` whose first token is ``targets[key]``, else 0."""
    return lambda keys, rows: [
        float(bool(row) and row[0] == targets[k]) for k, row in zip(keys, rows, strict=True)
    ]


@pytest.mark.parametrize("kind", ["show_tell", "attention"])
@pytest.mark.parametrize("baseline", ["greedy", "mean"])
def test_scst_raises_the_probability_of_what_its_own_image_rewards(kind: str, baseline: str) -> None:
    """Image "a" rewards captions starting with word 5, image "b" with word 6. SCST makes each image's
    rewarded word its likeliest first word: a wrong sign of the advantage lowers both, and samples paired
    with another image's rewards teach each image the other's word."""
    torch.manual_seed(0)
    if kind == "show_tell":
        decoder = ShowTellDecoder(6, V, embed_dim=8, hidden_dim=16, dropout=0.0)
        memory = torch.randn(2, 6)
    else:
        decoder = AttentionDecoder(6, V, embed_dim=8, hidden_dim=16, attention_dim=8, dropout=0.0)
        memory = torch.randn(2, 4, 6)
    scst = SelfCritical(first_token_reward({"a": 5, "b": 6}), samples=4, baseline=baseline, max_len=3)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=0.05)

    def first_word() -> Tensor:  # (2, V): each image's first-word distribution
        with torch.no_grad():
            return decoder.step(torch.full((2,), BOS), decoder.init_state(memory))[0].exp()

    start = first_word()
    for _ in range(30):
        out = scst(decoder, memory, ["a", "b"], BOS, EOS)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    end = first_word()
    assert end[0, 5] > max(0.5, start[0, 5]) and end[1, 6] > max(0.5, start[1, 6])
    assert end[0, 6] < start[0, 6] + 0.05 and end[1, 5] < start[1, 5] + 0.05
    if baseline == "greedy":  # the greedy caption now starts with the rewarded word: baseline reward 1
        assert scst(decoder, memory, ["a", "b"], BOS, EOS)["baseline"].item() == 1.0
    with pytest.raises(ValueError):
        SelfCritical(scst.reward, samples=1, baseline="mean")


def token_sum_reward(keys, rows) -> list[float]:
    """A stub reward that tells captions apart: a weighted sum of their word ids (<eos> not counted)."""
    return [float(sum((j + 1) * t for j, t in enumerate(row) if t != EOS)) for row in rows]


def image_model() -> tuple[CaptionModel, dict[str, Any]]:
    """A captioner with a trained encoder (batch norm) and a decoder with dropout, and a batch of images."""
    encoder = ImageEncoder("resnet18", None, "pooled", "all", image_size=32)
    decoder = ShowTellDecoder(encoder.feature_dim, V, embed_dim=8, hidden_dim=16, dropout=0.5)
    return CaptionModel(encoder, decoder, BOS, EOS), {
        "images": torch.randn(3, 3, 32, 32),
        "keys": list("abc"),
    }


def video_model() -> tuple[VideoCaptionModel, dict[str, Any]]:
    """A video captioner reading cached frame features: batch-normed, dropped-out temporal encoder."""
    encoder = ImageEncoder("resnet18", None, "pooled", None, image_size=32)
    temporal = TemporalEncoder(6, hidden_dim=8, dropout=0.5)
    decoder = AttentionDecoder(
        temporal.output_dim, V, embed_dim=8, hidden_dim=16, attention_dim=8, dropout=0.5
    )
    model = VideoCaptionModel(encoder, temporal, decoder, BOS, EOS)
    return model, {"features": torch.randn(3, 5, 6) * 3 + 1, "keys": list("abc")}


@pytest.mark.parametrize("make", [image_model, video_model])
def test_samples_and_baseline_come_from_the_deployed_policy(make) -> None:
    """Every module between the batch and the words (encoder, temporal encoder, decoder) runs in eval mode
    for the samples and the greedy baseline, and the baseline is the reward of the caption that greedy
    generation deploys: with dropout or batch statistics on, the baseline's captions are other ones."""
    torch.manual_seed(0)
    model, batch = make()
    model.train()  # a frozen encoder stays in eval mode
    before = [m.training for m in model.modules()]
    modes: list[bool] = []
    hooks = [m.register_forward_pre_hook(lambda m, _: modes.append(m.training)) for m in model.modules()]
    step = SelfCriticalLoss(model, SelfCritical(token_sum_reward, samples=2, baseline="greedy", max_len=6))
    out = step(batch)
    for hook in hooks:
        hook.remove()
    assert modes and not any(modes)
    assert [m.training for m in model.modules()] == before  # put back for the rest of the epoch
    with torch.no_grad():  # as evaluation and the caption command run it
        model.eval()
        greedy = model.generate(model.features(batch), GenerationConfig(strategy="greedy", max_len=6))
    expected = sum(token_sum_reward(batch["keys"], greedy.tokens)) / len(greedy.tokens)
    assert out["baseline"].item() == pytest.approx(expected)


def test_every_trained_parameter_moves_and_no_running_statistic() -> None:
    torch.manual_seed(0)
    model, batch = image_model()
    model.train()
    step = SelfCriticalLoss(model, SelfCritical(token_sum_reward, samples=4, baseline="mean", max_len=6))
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    step(batch)["loss"].backward()
    optimizer.step()
    assert [n for n, p in model.named_parameters() if torch.equal(p, params[n])] == []
    # Eval mode: batch norm neither used batch statistics nor moved its running ones.
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())


def test_sampled_captions_count_their_eos() -> None:
    torch.manual_seed(0)
    decoder = ShowTellDecoder(6, V, embed_dim=8, hidden_dim=16)
    with torch.no_grad():
        decoder.fc.bias.fill_(-20.0)
        decoder.fc.bias[EOS] = 20.0  # always ends at once
    drawn = rollout(decoder, torch.randn(2, 6), BOS, EOS, k=3, max_len=5)
    assert drawn.tokens.shape == (6, 1) and drawn.mask.all() and drawn.rows() == [[EOS]] * 6
    assert drawn.log_probs.requires_grad


def test_scst_learning_rate_is_its_own_unless_chosen_for_it(tmp_path) -> None:
    """A shipped config's train.lr is cross-entropy's: SCST runs from it use train.scst_lr, unless the
    command line sets train.lr or the file itself trains with SCST."""
    config = ROOT / "configs" / "flickr8k_resnet50.yaml"
    assert load_config(config).train.lr == 4e-4
    scst = load_config(config, ["train.objective=scst"]).train
    assert scst.lr == scst.scst_lr == 5e-5
    assert (
        "lr 5e-05 (train.scst_lr, the SCST default: train.lr is cross-entropy's; train.lr=... to change)"
        in describe_schedule(scst, 100, 10)
    )
    assert load_config(config, ["train.objective=scst", "train.scst_lr=2e-5"]).train.lr == 2e-5
    chosen = load_config(config, ["train.objective=scst", "train.lr=1e-4"]).train
    assert chosen.lr == 1e-4 and "lr 0.0001 (train.lr, set for this SCST run)" in describe_schedule(
        chosen, 9, 9
    )
    own = tmp_path / "scst.yaml"
    own.write_text("train: {objective: scst, lr: 3.0e-5}\n")
    assert load_config(own).train.lr == 3e-5


def test_scst_keeps_a_trained_encoder_frozen_unless_asked(tmp_path, capsys) -> None:
    """An encoder the cross-entropy run trained (``trainable_from: auto``, random init) stays as init_from
    left it during SCST, and the run says so; a stage chosen for the SCST run is still trained."""
    config = ROOT / "configs" / "flickr8k_resnet50.yaml"
    trained = ["model.encoder.weights=null", "model.encoder.trainable_from=auto"]
    assert load_config(config, trained).model.encoder.trainable() == "all"
    scst = load_config(config, [*trained, "train.objective=scst"])
    assert scst.model.encoder.trainable() is None
    describe_encoder(scst)
    assert "frozen for SCST, with the weights of train.init_from" in capsys.readouterr().err
    layer4 = ["model.encoder.weights=null", "model.encoder.trainable_from=layer4", "train.objective=scst"]
    chosen = load_config(config, layer4)
    assert chosen.model.encoder.trainable() == "layer4"


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


@pytest.mark.slow  # two processes start torch
def test_scst_runs_under_torchrun_with_two_processes(tiny_captioner, tmp_path) -> None:
    """Under torchrun, DistributedDataParallel wraps the model and its SCST loss as one module: both ranks
    sample, their gradients are averaged through ``forward`` (an unsynchronised parameter would stop the
    run at the next step), and every trained parameter, the encoder's included, moves."""
    out = tmp_path / "scst"
    cmd = [
        *("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"),
        *("-m", "vision2seq", "train", str(tiny_captioner.config), f"output_dir={out}"),
        *("train.objective=scst", f"train.init_from={tiny_captioner.checkpoint}", "train.epochs=2"),
        *("train.scst_samples=2", "model.encoder.trainable_from=all", "train.device=cpu", "--quiet"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    start = torch.load(tiny_captioner.checkpoint, weights_only=True)
    tuned = torch.load(out / "last.pt", weights_only=True)
    assert tuned["step"] == 2 and len(tuned["rng"]) == 2  # one step per epoch: 8 images, 4 per rank
    statistics = ("running_mean", "running_var", "num_batches_tracked", "norm.mean", "norm.std")
    moved = {k for k, v in start["model"].items() if not torch.equal(v, tuned["model"][k])}
    trained = {k for k in start["model"] if not k.endswith(statistics)}  # the encoder's too
    assert trained == moved  # and the running statistics did not: sampled in eval mode
