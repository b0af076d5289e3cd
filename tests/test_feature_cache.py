"""The on-disk feature cache: built once, reused, invalidated by encoder/weights/image changes, and
never read half-written."""

import errno
import hashlib
import json
import os
import re
import time
import zlib

import numpy as np
import pytest
import tiny_models
import torch
from PIL import Image
from tiny_models import assert_one_error, run_cli

from vision2seq.data.features import (
    FeatureCacheError,
    FeatureStore,
    cached_features,
    files_fingerprint,
    module_fingerprint,
)
from vision2seq.data.images import ImageFiles, collate_good
from vision2seq.models.encoder import ImageEncoder

tiny_captioner = tiny_models.tiny_captioner


@pytest.fixture
def images(tmp_path):
    paths = []
    for i in range(5):
        path = tmp_path / f"im{i}.png"
        Image.new("RGB", (40, 40), (40 * i, 100, 200 - 30 * i)).save(path)
        paths.append(path)
    (tmp_path / "bad.png").write_text("not an image")
    return [*paths, tmp_path / "bad.png"]


build = tiny_models.build_feature_cache


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


# --- integrity: a cache damaged after it was built is never used --------------------------------


def _built(images, root):
    torch.manual_seed(0)
    encoder = ImageEncoder("resnet18", weights=None, image_size=32)
    store = build(encoder, images, root, [])
    expected = [store[store.rows[str(p)]].clone() for p in images[:5]]
    return encoder, store, expected


def _edit_rows(store: FeatureStore, edit) -> None:
    """Apply ``edit`` to the rows of ``features.npy`` in place, as damage on disk would."""
    array = np.load(store.directory / "features.npy", mmap_mode="r+")
    edit(array)
    array.flush()
    del array


def _zero(a):
    a[2] = 0


def _flip(a):
    a.view(np.uint8).reshape(a.shape[0], -1)[1, 7] ^= 0x10


def _shuffle(a):
    a[[0, 1]] = a[[1, 0]]


def _nan(a):
    a[3, 5] = np.nan


ROW_DAMAGE = {
    "zeroed": (_zero, 2),
    "bytes_flipped": (_flip, 1),
    "rows_shuffled": (_shuffle, 0),
    "nan": (_nan, 3),
}


@pytest.mark.parametrize("case", sorted(ROW_DAMAGE))
def test_damaged_rows_are_refused_then_rebuilt(case, images, tmp_path):
    encoder, store, expected = _built(images, tmp_path / "cache")
    damage, row = ROW_DAMAGE[case]
    _edit_rows(store, damage)
    opened = FeatureStore(store.directory)  # sizes and metadata are intact: opening is cheap and passes
    for good in {0, 1, 2, 3, 4} - {0, 1, row}:
        torch.testing.assert_close(opened[good], expected[good])
    with pytest.raises(FeatureCacheError) as caught:
        opened[row]
    assert str(caught.value) == (
        f"{store.directory}: feature cache damaged (row {row} of features.npy does not match its checksum); "
        "it will be rebuilt on the next run"
    )
    calls = []
    rebuilt = build(encoder, images, tmp_path / "cache", calls)
    assert sum(calls) == 5  # the marked cache was rebuilt from the images
    for i in range(5):
        torch.testing.assert_close(rebuilt[i], expected[i])


def test_nan_built_into_a_row_is_refused(images, tmp_path):
    """A row that passes its checksum but holds NaN (as if built so) is still never returned."""
    _, store, _ = _built(images, tmp_path / "cache")
    _edit_rows(store, _nan)
    meta = json.loads((store.directory / "meta.json").read_text())
    meta.pop("sha256")
    meta["crc32"][3] = zlib.crc32(
        (store.directory / "features.npy").read_bytes()[store._offset + 3 * store._row_bytes :][
            : store._row_bytes
        ]
    )
    meta["sha256"] = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
    (store.directory / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(FeatureCacheError, match=r"row 3 of features.npy holds NaN or infinite values"):
        FeatureStore(store.directory)[3]


def _truncate(d):
    path = d / "features.npy"
    path.write_bytes(path.read_bytes()[:-100])


def _extend(d):
    with open(d / "features.npy", "ab") as f:
        f.write(b"\0" * 64)


def _garble_meta(d):
    (d / "meta.json").write_bytes(b"\x00\xffnot json")


def _edit_meta(d):  # valid JSON, different content: the digest no longer matches
    text = (d / "meta.json").read_text()
    (d / "meta.json").write_text(text.replace("im1.png", "im9.png"))


def _old_version(d):
    meta = json.loads((d / "meta.json").read_text())
    (d / "meta.json").write_text(json.dumps({"keys": meta["keys"], "failed": meta["failed"]}))


def _garble_header(d):
    data = bytearray((d / "features.npy").read_bytes())
    data[10:40] = b"#" * 30
    (d / "features.npy").write_bytes(bytes(data))


FILE_DAMAGE = {
    "truncated": (_truncate, "features.npy is"),
    "extended": (_extend, "features.npy is"),
    "meta_garbled": (_garble_meta, "meta.json unreadable"),
    "meta_edited": (_edit_meta, "meta.json does not match its checksum"),
    "meta_of_an_older_version": (_old_version, None),
    "npy_header_garbled": (_garble_header, "features.npy header unreadable"),
    "meta_missing": (lambda d: (d / "meta.json").unlink(), "meta.json unreadable: FileNotFoundError"),
}


@pytest.mark.parametrize("case", sorted(FILE_DAMAGE))
def test_damaged_files_are_detected_on_open_and_rebuilt(case, images, tmp_path, capsys):
    encoder, store, expected = _built(images, tmp_path / "cache")
    damage, reason = FILE_DAMAGE[case]
    damage(store.directory)
    start = f"{store.directory}: " + (
        f"feature cache damaged ({reason}"
        if reason
        else "feature cache written by another vision2seq version (cache format 1, this one reads 2)"
    )
    with pytest.raises(FeatureCacheError, match=re.escape(start)):
        FeatureStore(store.directory)
    capsys.readouterr()
    calls = []
    rebuilt = build(encoder, images, tmp_path / "cache", calls)
    assert sum(calls) == 5 and rebuilt.directory == store.directory
    for i in range(5):
        torch.testing.assert_close(rebuilt[i], expected[i])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].endswith("; rebuilding it"), err
    assert err[0].startswith(start)


def test_cache_folder_not_writable(images, tmp_path, monkeypatch):
    torch.manual_seed(0)
    encoder = ImageEncoder("resnet18", weights=None, image_size=32)
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    calls = []
    with pytest.raises(
        FeatureCacheError, match=re.escape(f"{blocker / 'cache'}: feature cache folder is not writable")
    ):
        build(encoder, images, blocker / "cache", calls)
    assert calls == []  # refused before any image was encoded

    def refuse(*args, **kwargs):  # permission bits do not stop root: the OS's refusal is simulated
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(type(tmp_path), "write_bytes", refuse)
    with pytest.raises(
        FeatureCacheError,
        match=re.escape(
            f"{tmp_path / 'ro'}: feature cache folder is not writable (permission denied); set data.cache_dir"
        ),
    ):
        build(encoder, images, tmp_path / "ro", calls)
    assert calls == []


def test_evaluate_with_a_damaged_cache_exits_1_then_rebuilds(tiny_captioner, tmp_path, capsys):
    args = ["evaluate", "--checkpoint", tiny_captioner.checkpoint, "--json", "--quiet"]
    args.append(f"data.cache_dir={tmp_path / 'cache'}")
    code, out, _ = run_cli(capsys, *args)
    assert code == 0  # the missing image the tiny dataset lists is in its train split
    scores = json.loads(out)
    (directory,) = (meta.parent for meta in (tmp_path / "cache").rglob("meta.json"))
    store = FeatureStore(directory)
    _edit_rows(store, lambda a: a.__setitem__(slice(None), 0))  # every row zeroed
    code, out, err = run_cli(capsys, *args)
    assert code == 1 and out == ""
    assert_one_error(
        err, "evaluate", f"{directory}: feature cache damaged (row ", "it will be rebuilt on the next run"
    )
    code, out, err = run_cli(capsys, *args)
    assert json.loads(out) == scores
    assert (
        f"{directory}: feature cache damaged (marked by an earlier run: row " in err
        and "rebuilding it" in err
    )


def test_non_finite_features_are_never_cached(images, tmp_path):
    torch.manual_seed(0)
    encoder = ImageEncoder("resnet18", weights=None, image_size=32)
    reported = []

    def poisoned(x):  # the encoder returns NaN for the first image of every batch
        out = encoder(x)
        out[0] = float("nan")
        return out

    fingerprint = module_fingerprint(encoder, "nan", files_fingerprint(images))
    store = cached_features(
        tmp_path / "cache",
        fingerprint,
        [str(p) for p in images],
        ImageFiles(images, encoder.preprocessing.transform()),
        collate_good,
        poisoned,
        (encoder.feature_dim,),
        batch_size=2,
        num_workers=0,
        report=reported.append,
    )
    nan_items = [str(images[i]) for i in (0, 2, 4)]  # first of each batch of 2
    for key in nan_items:
        assert store.failed[key] == f"{key}: the encoder produced NaN or infinite features"
        assert store.failed[key] in reported
    for key in (str(images[1]), str(images[3])):
        assert torch.isfinite(store[store.rows[key]]).all()


def test_production_cache_key_follows_images_weights_output_and_resize(images, tmp_path):
    """The caption data path's own cache key (``image_sources``), not a copy of its recipe: the same
    inputs find the same cache; a changed image, weights, output mode or resize mode get a new one."""
    from vision2seq.config import load_config
    from vision2seq.data.caption_datasets import image_sources
    from vision2seq.data.captions import CaptionedImage

    good = images[:-1]
    records = [CaptionedImage(str(i), p, ["a dog"], [["a", "dog"]], "train") for i, p in enumerate(good)]

    def cache_dir(encoder, *overrides):
        config = load_config(None, [f"data.cache_dir={tmp_path / 'cache'}", "train.batch_size=2", *overrides])
        [(source, _)] = image_sources(config, encoder, [records], torch.device("cpu"))
        return source.store.directory

    torch.manual_seed(0)
    encoder = ImageEncoder("resnet18", weights=None, image_size=32)
    first = cache_dir(encoder)
    assert cache_dir(encoder) == first  # found again, not rebuilt
    seen = {first}
    with torch.no_grad():
        encoder.stages["layer4"][0].conv1.weight.add_(1.0)  # the weights change
    seen.add(cache_dir(encoder))
    grid = ImageEncoder("resnet18", weights=None, output="grid", image_size=32)
    grid.load_state_dict(encoder.state_dict())
    seen.add(cache_dir(grid, "model.encoder.output=grid"))
    padded = ImageEncoder("resnet18", weights=None, image_size=32, resize="pad")
    padded.load_state_dict(encoder.state_dict())
    seen.add(cache_dir(padded))
    time.sleep(0.01)
    Image.new("RGB", (40, 40), (0, 0, 0)).save(good[0])  # an image changes
    os.utime(good[0], ns=(time.time_ns(), time.time_ns()))
    seen.add(cache_dir(encoder))
    assert len(seen) == 5
