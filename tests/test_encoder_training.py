"""An encoder without pretrained weights learns with the decoder (``trainable_from: auto``), and a trained
encoder reads each image once per batch however many captions it has (``CaptionGroups``)."""

from __future__ import annotations

import pytest
import tiny_models
import torch

from vision2seq.config import EncoderConfig, load_config
from vision2seq.data.caption_datasets import CaptionGroups, CaptionPairs, collate_captions
from vision2seq.engine.checkpoint import load_checkpoint
from vision2seq.tasks import captioning

torch_one_thread = tiny_models.torch_one_thread
tiny_captioner = tiny_models.tiny_captioner


@pytest.mark.parametrize(
    ("weights", "trainable", "lr", "expected"),
    [
        (None, "auto", None, ("all", 4e-4)),  # from scratch: the whole CNN, at the decoder's rate
        ("DEFAULT", "auto", None, (None, 1e-5)),  # pretrained: frozen (a fine-tuning rate if unfrozen)
        ("weights.pth", "auto", None, (None, 1e-5)),  # a local weights file is pretrained too
        (None, None, None, (None, 4e-4)),  # an explicit null keeps even a random encoder frozen
        ("DEFAULT", "layer4", 3e-5, ("layer4", 3e-5)),  # explicit choices win
    ],
)
def test_auto_trains_only_an_encoder_without_pretrained_weights(weights, trainable, lr, expected) -> None:
    enc = EncoderConfig(weights=weights, trainable_from=trainable, lr=lr)
    assert (enc.trainable(), enc.learning_rate(4e-4)) == expected


def _config(run: tiny_models.TinyRun, tmp_path, *extra: str):
    return load_config(run.config, [f"output_dir={tmp_path / 'run'}", *extra])


def test_random_init_encoder_is_trained_and_its_images_grouped(tiny_captioner, tmp_path) -> None:
    config = _config(tiny_captioner, tmp_path, "model.encoder.trainable_from=auto")
    built = captioning.CaptioningTask.build(config, torch.device("cpu"))
    assert not built.model.encoder.frozen
    assert isinstance(built.train.dataset, CaptionGroups)  # pixels, not cached features
    groups = {g["lr"] for g in built.task.parameter_groups(built.model)}
    assert groups == {config.train.lr}
    frozen = captioning.CaptioningTask.build(_config(tiny_captioner, tmp_path), torch.device("cpu"))
    assert frozen.model.encoder.frozen and isinstance(frozen.train.dataset, CaptionPairs)


def test_grouped_batch_gives_the_logits_of_one_item_per_caption(tiny_captioner, tmp_path) -> None:
    config = _config(tiny_captioner, tmp_path, "data.cache_features=false", "train.batch_size=12")
    built = captioning.CaptioningTask.build(config, torch.device("cpu"))
    dataset = built.train.dataset
    assert isinstance(dataset, CaptionGroups)
    # batch_size counts captions: three per image here, so four images make a batch of twelve.
    assert built.train.batch_size == 4
    batch = collate_captions([dataset[i] for i in range(4)])
    images, captions, rows = batch["images"], batch["captions"], batch["caption_image"]
    assert rows.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    for row, caption in zip(rows.tolist(), captions, strict=True):  # each caption next to its own image
        assert caption[caption != 0].tolist() in dataset.groups[row]
    model = built.model.eval()  # no dropout: the two layouts must give the same numbers
    with torch.no_grad():
        grouped = model(batch).logits
        one_per_caption = model({"images": images[rows], "captions": captions}).logits
    torch.testing.assert_close(grouped, one_per_caption, rtol=1e-5, atol=1e-5)


def test_training_from_scratch_changes_the_encoder_and_writes_no_cache(
    tiny_captioner, tmp_path, capsys
) -> None:
    cache = tmp_path / "cache"
    run = tmp_path / "run"
    code, _, err = tiny_models.run_cli(
        capsys,
        "train",
        tiny_captioner.config,
        f"output_dir={run}",
        f"data.cache_dir={cache}",
        "model.encoder.trainable_from=auto",
    )
    assert code == 0, err
    assert "encoder: resnet18 trained from random init (stages from all, lr 0.01)" in err
    trained = load_checkpoint(run / "best.pt")["model"]
    frozen = load_checkpoint(tiny_captioner.checkpoint)["model"]  # same seed, encoder frozen
    name = "encoder.stages.conv1.weight"
    assert not torch.equal(trained[name], frozen[name])
    assert not (cache / "features").exists() or not any((cache / "features").iterdir())


def test_statistics_of_a_trained_encoder_fit_the_features_it_trains_on(tiny_captioner, tmp_path) -> None:
    # Fitted with the random-init network in eval mode (running statistics of no data), the statistics
    # were of another scale than the training features and blew the decoder's input up (loss ~2,700).
    config = _config(tiny_captioner, tmp_path, "model.encoder.trainable_from=auto")
    built = captioning.CaptioningTask.build(config, torch.device("cpu"))
    items = [built.train.dataset[i] for i in range(len(built.train.dataset))]
    batch = collate_captions(items)
    with torch.no_grad():
        features = built.model.train().features(batch)
    assert features.mean(0).abs().max() < 1.0
    assert 0.5 < features.std(0).mean() < 2.0
