"""Feature normalisation travels with the model: statistics of the training features, stored in the
checkpoint, applied on every path (train, caption, classify, stream), and identical after save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny_models
import torch
from PIL import Image

from vision2seq.config import with_overrides
from vision2seq.data.captions import load_caption_dataset, select_split
from vision2seq.engine.checkpoint import load_checkpoint, save_checkpoint
from vision2seq.inference.captioner import Captioner
from vision2seq.inference.classifier import VideoClassifier
from vision2seq.models.normalization import FeatureNorm, RunningMoments, floored
from vision2seq.tasks import captioning, video_classification

tiny_captioner = tiny_models.tiny_captioner
tiny_video = tiny_models.tiny_video
torch_one_thread = tiny_models.torch_one_thread


def test_feature_norm_standardises_each_dimension() -> None:
    rng = torch.Generator().manual_seed(0)
    features = 3.0 + 0.1 * torch.randn(500, 6, generator=rng)  # offset-dominated, like CNN features
    moments = RunningMoments()
    for chunk in features.split(64):
        moments.update(chunk)
    norm = FeatureNorm(6)
    norm.set_statistics(*moments.compute())
    out = norm(features)
    assert torch.allclose(out.mean(0), torch.zeros(6), atol=1e-4)
    assert torch.allclose(out.std(0, unbiased=False), torch.ones(6), atol=1e-3)
    grid = features[:12].view(2, 6, 6)  # a grid (B, N, D) is normalised per channel too
    assert torch.allclose(norm(grid), out[:12].view(2, 6, 6))


def test_near_dead_dimensions_stay_quiet() -> None:
    """Dimensions that hardly vary (dead units firing on a few images) are not blown up to unit scale
    beside the ones that describe the images, and the features keep unit variance on average."""
    rng = torch.Generator().manual_seed(0)
    live = 2.0 + 0.5 * torch.randn(1000, 6, generator=rng)
    spikes = (torch.rand(1000, 4, generator=rng) < 0.01).float() * 0.01  # rare tiny activations
    features = torch.cat([live, spikes], dim=1)
    std = features.std(0, unbiased=False)
    norm = FeatureNorm(10)
    norm.set_statistics(features.mean(0), floored(std))
    out = norm(features).std(0, unbiased=False)
    assert (out[6:] < 0.05).all()  # plain standardisation would make these 1
    assert ((out[:6] > 1.0) & (out[:6] < 1.5)).all()
    assert out.pow(2).mean().sqrt() == pytest.approx(1.0, abs=1e-3)


def test_disabled_norm_is_identity_and_old_checkpoints_load_as_identity() -> None:
    x = torch.randn(3, 4)
    assert torch.equal(FeatureNorm(4, enabled=False)(x), x)
    norm = FeatureNorm(4)
    norm.set_statistics(torch.ones(4), 2 * torch.ones(4))
    norm.load_state_dict({})  # written before normalisation existed: no statistics stored
    assert torch.equal(norm.mean, torch.zeros(4)) and torch.equal(norm.std, torch.ones(4))


def _images(run) -> list[Image.Image]:
    records = select_split(load_caption_dataset(run.annotations, run.data), "test")
    return [Image.open(r.path).convert("RGB") for r in records]


def test_caption_statistics_are_the_training_features_and_round_trip(tiny_captioner, tmp_path) -> None:
    checkpoint = load_checkpoint(tiny_captioner.checkpoint)
    state = checkpoint["model"]
    assert {"norm.mean", "norm.std"} <= set(state)
    restored = captioning.CaptioningTask.restore(checkpoint, str(tiny_captioner.checkpoint), device="cpu")
    # The stored statistics are those of the encoder's features of the training images.
    train = select_split(load_caption_dataset(tiny_captioner.annotations, tiny_captioner.data), "train")
    transform = restored.model.encoder.preprocessing.transform()
    existing = [r for r in train if r.path.exists()]
    with torch.no_grad():
        pixels = torch.stack([transform(Image.open(r.path).convert("RGB")) for r in existing])
        raw = restored.model.encoder(pixels)
    assert torch.allclose(state["norm.mean"], raw.mean(0), atol=1e-2)
    assert torch.allclose(state["norm.std"], floored(raw.std(0, unbiased=False)), atol=1e-2)
    assert state["norm.std"].min() >= 0 and state["norm.mean"].abs().sum() > 0

    images = torch.stack([transform(image) for image in _images(tiny_captioner)])
    before, _ = Captioner(restored.model, restored.task.vocab, restored.config).caption_tensors(images)
    resaved = tmp_path / "resaved.pt"
    save_checkpoint(resaved, {**checkpoint, "model": restored.model.state_dict()})
    after = Captioner.from_checkpoint(resaved, device="cpu")
    assert torch.equal(after.model.norm.mean, state["norm.mean"])
    assert after.caption_tensors(images)[0] == before
    # The transform is applied inside the model: the decoder reads standardised features.
    with torch.no_grad():
        features = after.model.features({"images": images})
    assert not torch.allclose(features, after.model.raw_features({"images": images}))


def test_classify_and_stream_use_the_stored_statistics(tiny_video, tmp_path) -> None:
    checkpoint = load_checkpoint(tiny_video.checkpoint)
    assert checkpoint["model"]["norm.std"].shape == checkpoint["model"]["norm.mean"].shape
    assert checkpoint["model"]["norm.mean"].abs().sum() > 0
    classifier = VideoClassifier.from_checkpoint(tiny_video.checkpoint, device="cpu")
    frames = [np.full((32, 32, 3), 40 * i, dtype=np.uint8) for i in range(4)]
    frames[2][8:20, 8:20] = (250, 30, 30)
    expected = classifier.classify_frames(frames)
    stream = classifier.stream()
    for frame in frames:
        streamed = stream.push(frame)
    assert torch.allclose(streamed, expected, atol=1e-5)

    resaved = tmp_path / "resaved.pt"
    restored = video_classification.VideoClassificationTask.restore(
        checkpoint, str(tiny_video.checkpoint), device="cpu"
    )
    save_checkpoint(resaved, {**checkpoint, "model": restored.model.state_dict()})
    again = VideoClassifier.from_checkpoint(resaved, device="cpu")
    assert torch.equal(again.classify_frames(frames), expected)
    # Zeroing the statistics changes the prediction: the classifier really reads normalised features.
    norm = again.model.norm
    norm.set_statistics(torch.zeros_like(norm.mean), torch.ones_like(norm.std))
    assert not torch.allclose(again.classify_frames(frames), expected)


@pytest.mark.parametrize("kind", ["show_tell", "attention"])
def test_feature_norm_none_stores_no_statistics(kind: str) -> None:
    from vision2seq.config import load_config
    from vision2seq.data.vocab import Vocabulary

    config = load_config(
        None,
        [
            "model.encoder.name=resnet18",
            "model.encoder.weights=null",
            "model.feature_norm=none",
            f"model.decoder.kind={kind}",
            f"model.encoder.output={'grid' if kind == 'attention' else 'pooled'}",
        ],
    )
    model = captioning.build_model(config, Vocabulary(["<pad>", "<bos>", "<eos>", "<unk>", "a"]))
    assert not any(k.startswith("norm.") for k in model.state_dict())


def test_checkpoints_from_before_normalisation_and_conditioning_load_as_they_were(
    tiny_captioner, tmp_path
) -> None:
    checkpoint = load_checkpoint(tiny_captioner.checkpoint)
    source = captioning.CaptioningTask.restore(checkpoint, "x", device="cpu")
    before = with_overrides(source.config, ["model.decoder.conditioning=pre", "model.feature_norm=none"])
    torch.manual_seed(0)
    model = captioning.build_model(before, source.task.vocab, load_weights=False).eval()
    config = json.loads(json.dumps(checkpoint["config"]))
    del config["model"]["decoder"]["conditioning"], config["model"]["feature_norm"]
    written_before = tmp_path / "old.pt"
    save_checkpoint(written_before, {**checkpoint, "config": config, "model": model.state_dict()})
    loaded = Captioner.from_checkpoint(written_before, device="cpu")
    assert loaded.model.decoder.conditioning == "pre"
    assert torch.equal(loaded.model.norm.mean, torch.zeros_like(loaded.model.norm.mean))  # identity
    images = torch.randn(2, 3, 32, 32)
    expected, _ = Captioner(model, source.task.vocab, before).caption_tensors(images)
    assert loaded.caption_tensors(images)[0] == expected
