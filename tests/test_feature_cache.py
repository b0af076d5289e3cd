"""The on-disk feature cache: built once, reused, invalidated by encoder/weights/image changes, and
never read half-written."""

import os
import time

import numpy as np
import pytest
import torch
from PIL import Image

from vision2seq.data.features import FeatureStore, cached_features, files_fingerprint, module_fingerprint
from vision2seq.data.images import ImageFiles, collate_good
from vision2seq.models.encoder import ImageEncoder


@pytest.fixture
def images(tmp_path):
    paths = []
    for i in range(5):
        path = tmp_path / f"im{i}.png"
        Image.new("RGB", (40, 40), (40 * i, 100, 200 - 30 * i)).save(path)
        paths.append(path)
    (tmp_path / "bad.png").write_text("not an image")
    return [*paths, tmp_path / "bad.png"]


def build(encoder, paths, root, calls, encode=None):
    def counting(x):
        calls.append(len(x))
        return encoder(x)

    encode = encode or counting
    fingerprint = module_fingerprint(encoder, encoder.output, encoder.preprocessing, files_fingerprint(paths))
    return cached_features(
        root,
        fingerprint,
        [str(p) for p in paths],
        ImageFiles(paths, encoder.preprocessing.transform()),
        collate_good,
        encode,
        (encoder.feature_dim,),
        batch_size=2,
        num_workers=0,
        report=lambda line: None,
    )


def test_cache_is_built_once_memory_mapped_and_matches_the_encoder(images, tmp_path):
    torch.manual_seed(0)
    encoder = ImageEncoder("resnet18", weights=None, image_size=32)
    calls = []
    store = build(encoder, images, tmp_path / "cache", calls)
    assert sum(calls) == 5 and list(store.failed) == [str(images[-1])]  # the bad file is recorded, skipped
    assert isinstance(store.array, np.memmap)
    x = encoder.preprocessing.transform()(Image.open(images[2]).convert("RGB")).unsqueeze(0)
    torch.testing.assert_close(
        store[store.rows[str(images[2])]], encoder(x)[0], rtol=2e-3, atol=2e-3
    )  # float16
    calls.clear()
    again = build(encoder, images, tmp_path / "cache", calls)
    assert calls == [] and again.directory == store.directory  # reused: the CNN never runs again


def test_cache_is_invalidated_by_images_and_weights(images, tmp_path):
    torch.manual_seed(0)
    encoder = ImageEncoder("resnet18", weights=None, image_size=32)
    first = build(encoder, images, tmp_path / "cache", [])
    time.sleep(0.01)
    Image.new("RGB", (40, 40), (0, 0, 0)).save(images[0])  # an image changes
    os.utime(images[0], ns=(time.time_ns(), time.time_ns()))
    calls = []
    second = build(encoder, images, tmp_path / "cache", calls)
    assert second.directory != first.directory and sum(calls) == 5
    with torch.no_grad():
        encoder.stages["layer4"][0].conv1.weight.add_(1.0)  # the weights change
    third = build(encoder, images, tmp_path / "cache", [])
    assert third.directory not in (first.directory, second.directory)
    encoder.output = "grid"  # the output mode changes the fingerprint too
    assert module_fingerprint(encoder, encoder.output) != module_fingerprint(encoder, "pooled")


def test_interrupted_build_is_never_read(images, tmp_path):
    torch.manual_seed(0)
    encoder = ImageEncoder("resnet18", weights=None, image_size=32)

    def explode(x):
        raise KeyboardInterrupt  # killed in the middle of building

    with pytest.raises(KeyboardInterrupt):
        build(encoder, images, tmp_path / "cache", [], encode=explode)
    fingerprint = module_fingerprint(
        encoder, encoder.output, encoder.preprocessing, files_fingerprint(images)
    )
    assert not FeatureStore.is_complete(tmp_path / "cache" / fingerprint[:24])  # only a hidden temp folder
    calls = []
    store = build(encoder, images, tmp_path / "cache", calls)
    assert sum(calls) == 5 and len(store) == 6
